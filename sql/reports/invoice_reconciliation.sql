-- title: Invoice reconciliation
-- question: Does every invoice total equal the sum of its lines (rows appear only where they differ: an empty result is a clean cycle)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: invoice_number, account_id, total_amount, lines_total, lines, difference
with

line_totals as (
    select invoice_number, sum(amount)::decimal(18, 2) as lines_total, count(*) as lines
    from invoice_lines
    where cycle = $cycle
    group by invoice_number
)

select
    invoices.invoice_number,
    invoices.account_id,
    invoices.total_amount,
    coalesce(line_totals.lines_total, 0) as lines_total,
    coalesce(line_totals.lines, 0) as lines,
    (invoices.total_amount - coalesce(line_totals.lines_total, 0))::decimal(18, 2) as difference
from invoices
left join line_totals using (invoice_number)
where invoices.cycle = $cycle
    and invoices.total_amount <> coalesce(line_totals.lines_total, 0)
order by invoices.invoice_number
