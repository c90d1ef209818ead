-- title: Rerate adjustments
-- question: Which rerate adjustments were posted for the cycle after it was final, and which invoice carried them (null: still pending)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: adjustment_id, account_id, amount, currency, reason, posted_at, invoice_number
select
    adjustment_id,
    account_id,
    amount,
    currency,
    reason,
    posted_at,
    invoice_number
from adjustments
where category = 'rerate'
    and source = 'rerate:' || $cycle
order by account_id, adjustment_id
