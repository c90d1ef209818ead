-- title: Bill composition by section
-- question: How does the cycle's total break down into recurring, one-time, usage, discounts, taxes, fees, adjustments and late fees?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: section, lines, invoices, amount
select
    section,
    count(*) as lines,
    count(distinct invoice_number) as invoices,
    sum(amount)::decimal(18, 2) as amount
from invoice_lines
where cycle = $cycle
group by section
order by amount desc, section
