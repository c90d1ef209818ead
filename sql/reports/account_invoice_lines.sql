-- title: One account's invoice, line by line
-- question: What exactly did one account's invoice for the cycle carry (for a customer call)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- param: account varchar  the account id, e.g. ACC-0001
-- columns: invoice_number, line_no, section, category, service_number, jurisdiction, description, quantity,
-- columns: unit, amount
select
    invoice_number,
    line_no,
    section,
    category,
    service_number,
    jurisdiction,
    description,
    quantity,
    unit,
    amount
from invoice_lines
where cycle = $cycle
    and account_id = $account
order by invoice_number, line_no
