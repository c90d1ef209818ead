-- title: Recurring charges
-- question: What did plans, add-ons and equipment leases bill in the cycle (monthly recurring charges, prorated)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: category, code, lines, accounts, amount
select
    category,
    code,
    count(*) as lines,
    count(distinct account_id) as accounts,
    sum(amount)::decimal(18, 2) as amount
from invoice_lines
where cycle = $cycle
    and section = 'recurring'
group by all
order by amount desc, category, code
