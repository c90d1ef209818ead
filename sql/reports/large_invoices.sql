-- title: Large invoices
-- question: Which invoices of the cycle are at or above an amount (a review before bills go out)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- param: threshold decimal = 100  the amount an invoice must reach
-- columns: invoice_number, account_id, account_name, account_type, plan_id, total_amount
select
    invoices.invoice_number,
    invoices.account_id,
    accounts.account_name,
    accounts.account_type,
    accounts.plan_id,
    invoices.total_amount
from invoices
left join accounts using (account_id)
where invoices.cycle = $cycle
    and invoices.total_amount >= $threshold
order by invoices.total_amount desc, invoices.invoice_number
