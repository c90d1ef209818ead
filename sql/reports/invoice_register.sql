-- title: Invoice register
-- question: Which invoices did the cycle issue, to whom, for how much, split by section of the bill?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: invoice_number, account_id, account_name, plan_id, issue_date, due_date, currency, recurring,
-- columns: one_time, usage, discounts, taxes_and_fees, adjustments, late_fees, total_amount
with

cycle_invoices as (
    select * from invoices where cycle = $cycle
),

sections as (
    select
        invoice_number,
        sum(amount) filter (where section = 'recurring') as recurring,
        sum(amount) filter (where section = 'one_time') as one_time,
        sum(amount) filter (where section = 'usage') as usage,
        sum(amount) filter (where section = 'discounts') as discounts,
        sum(amount) filter (where section in ('taxes', 'carrier_fees')) as taxes_and_fees,
        sum(amount) filter (where section = 'adjustments') as adjustments,
        sum(amount) filter (where section = 'late_fees') as late_fees
    from invoice_lines
    where cycle = $cycle
    group by invoice_number
)

select
    cycle_invoices.invoice_number,
    cycle_invoices.account_id,
    accounts.account_name,
    accounts.plan_id,
    cycle_invoices.issue_date,
    cycle_invoices.due_date,
    cycle_invoices.currency,
    coalesce(sections.recurring, 0)::decimal(18, 2) as recurring,
    coalesce(sections.one_time, 0)::decimal(18, 2) as one_time,
    coalesce(sections.usage, 0)::decimal(18, 2) as usage,
    coalesce(sections.discounts, 0)::decimal(18, 2) as discounts,
    coalesce(sections.taxes_and_fees, 0)::decimal(18, 2) as taxes_and_fees,
    coalesce(sections.adjustments, 0)::decimal(18, 2) as adjustments,
    coalesce(sections.late_fees, 0)::decimal(18, 2) as late_fees,
    cycle_invoices.total_amount
from cycle_invoices
left join sections using (invoice_number)
left join accounts using (account_id)
order by cycle_invoices.sequence_no
