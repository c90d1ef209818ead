-- title: Discounts granted
-- question: How much did each discount take off the cycle's bills, and for how many accounts?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: discount_code, description, lines, accounts, amount
select
    code as discount_code,
    description,
    count(*) as lines,
    count(distinct account_id) as accounts,
    sum(amount)::decimal(18, 2) as amount
from invoice_lines
where cycle = $cycle
    and section = 'discounts'
group by all
order by amount, discount_code
