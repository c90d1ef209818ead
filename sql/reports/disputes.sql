-- title: Disputes
-- question: Which disputes concern the cycle's invoices or are still open, for how much, and how were they resolved?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: dispute_id, account_id, invoice_number, invoice_cycle, amount, reason, opened_on, status,
-- columns: resolved_on, credit_granted, adjustment_id
select
    disputes.dispute_id,
    disputes.account_id,
    disputes.invoice_number,
    invoices.cycle as invoice_cycle,
    disputes.amount,
    disputes.reason,
    disputes.opened_on,
    disputes.status,
    disputes.resolved_on,
    disputes.credit_granted,
    disputes.adjustment_id
from disputes
left join invoices using (invoice_number)
where invoices.cycle = $cycle
    or disputes.status = 'open'
order by disputes.opened_on, disputes.dispute_id
