-- title: One-time charges
-- question: Which one-time charges (activations, installations, number ports, equipment sales) did the cycle bill?
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
    and section = 'one_time'
group by all
order by amount desc, category, code
