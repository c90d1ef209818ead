-- title: Payments received
-- question: Which payments did the cycle's finalisation post, by method, and how much of them was applied to invoices?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: method, payments, accounts, received, applied, unapplied
with

applied as (
    select payment_id, sum(amount) as applied from payment_allocations group by payment_id
)

select
    payments.method,
    count(*) as payments,
    count(distinct payments.account_id) as accounts,
    sum(payments.amount)::decimal(18, 2) as received,
    coalesce(sum(applied.applied), 0)::decimal(18, 2) as applied,
    (sum(payments.amount) - coalesce(sum(applied.applied), 0))::decimal(18, 2) as unapplied
from payments
left join applied using (payment_id)
where payments.posted_cycle = $cycle
group by payments.method
order by received desc, payments.method
