-- title: Adjustments by category
-- question: How much was credited or debited through adjustments, by category, carried on the cycle's invoices or still pending?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: category, state, adjustments, accounts, amount
with

cycle_invoices as (
    select invoice_number from invoices where cycle = $cycle
)

select
    adjustments.category,
    case when adjustments.invoice_number is null then 'pending' else 'invoiced' end as state,
    count(*) as adjustments,
    count(distinct adjustments.account_id) as accounts,
    sum(adjustments.amount)::decimal(18, 2) as amount
from adjustments
left join cycle_invoices using (invoice_number)
where adjustments.invoice_number is null
    or cycle_invoices.invoice_number is not null
group by all
order by adjustments.category, state
