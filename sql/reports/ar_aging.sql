-- title: Accounts receivable aging
-- question: What does each account owe as of the cycle's issue date, and how long past due is it (current, 1–30, 31–60, 61–90, over 90 days)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: account_id, account_name, current, days_1_30, days_31_60, days_61_90, days_over_90, total_open
with

as_of as (
    select max(issue_date) as as_of_date from invoices where cycle = $cycle
),

open_items as (
    -- each invoice up to the cycle, less the payments applied to it and the credit notes against it
    select
        invoices.account_id,
        invoices.invoice_number,
        invoices.due_date,
        invoices.total_amount
            - coalesce((select sum(amount) from payment_allocations
                        where payment_allocations.invoice_number = invoices.invoice_number), 0)
            - coalesce((select sum(amount) from credit_notes
                        where credit_notes.invoice_number = invoices.invoice_number), 0) as open_amount
    from invoices
    where invoices.cycle <= $cycle
),

unapplied as (
    -- payments not (yet) applied to an invoice are a credit on the account
    select payments.account_id, -(payments.amount - coalesce(sum(payment_allocations.amount), 0)) as open_amount
    from payments
    left join payment_allocations using (payment_id)
    where payments.posted_cycle <= $cycle
    group by payments.payment_id, payments.account_id, payments.amount
),

aged as (
    select
        open_items.account_id,
        open_items.open_amount,
        date_diff('day', open_items.due_date, as_of.as_of_date) as days_past_due
    from open_items, as_of
    union all
    select account_id, open_amount, null from unapplied
)

select
    aged.account_id,
    accounts.account_name,
    coalesce(sum(open_amount) filter (where days_past_due is null or days_past_due <= 0), 0)::decimal(18, 2) as current,
    coalesce(sum(open_amount) filter (where days_past_due between 1 and 30), 0)::decimal(18, 2) as days_1_30,
    coalesce(sum(open_amount) filter (where days_past_due between 31 and 60), 0)::decimal(18, 2) as days_31_60,
    coalesce(sum(open_amount) filter (where days_past_due between 61 and 90), 0)::decimal(18, 2) as days_61_90,
    coalesce(sum(open_amount) filter (where days_past_due > 90), 0)::decimal(18, 2) as days_over_90,
    sum(open_amount)::decimal(18, 2) as total_open
from aged
left join accounts using (account_id)
group by all
having sum(open_amount) <> 0
order by total_open desc, aged.account_id
