-- title: Payment allocations
-- question: To which invoices were the payments posted in the cycle applied (oldest invoice first)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: payment_id, account_id, received_on, invoice_number, invoice_cycle, amount
select
    payment_allocations.payment_id,
    payments.account_id,
    payments.received_on,
    payment_allocations.invoice_number,
    invoices.cycle as invoice_cycle,
    payment_allocations.amount
from payment_allocations
join payments using (payment_id)
left join invoices using (invoice_number)
where payment_allocations.allocated_cycle = $cycle
order by payments.account_id, payments.received_on, payment_allocations.invoice_number
