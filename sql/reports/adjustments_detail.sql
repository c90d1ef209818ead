-- title: Adjustments carried by the cycle
-- question: Which adjustments did the cycle's invoices carry, who approved them and why?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: adjustment_id, account_id, category, amount, currency, reason, approved_by, source, effective_date,
-- columns: invoice_number
select
    adjustments.adjustment_id,
    adjustments.account_id,
    adjustments.category,
    adjustments.amount,
    adjustments.currency,
    adjustments.reason,
    adjustments.approved_by,
    adjustments.source,
    adjustments.effective_date,
    adjustments.invoice_number
from adjustments
join invoices using (invoice_number)
where invoices.cycle = $cycle
order by adjustments.account_id, adjustments.adjustment_id
