-- title: Carrier fees
-- question: Which carrier fees (cost recovery fees and the like, kept by the carrier, not remitted) did the cycle bill, per state?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: fee_code, category, jurisdiction, lines, accounts, amount
select
    code as fee_code,
    category,
    jurisdiction,
    count(*) as lines,
    count(distinct account_id) as accounts,
    sum(amount)::decimal(18, 2) as amount
from invoice_lines
where cycle = $cycle
    and section = 'carrier_fees'
group by all
order by fee_code, jurisdiction
