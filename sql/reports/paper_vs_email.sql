-- title: Paper versus e-mail
-- question: How many accounts prefer paper or e-mail, how many invoices went each way, and what did they bill?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: delivery_preference, delivered_by, invoices, billed
with

cycle_invoices as (
    select invoices.invoice_number, invoices.total_amount, accounts.delivery_preference
    from invoices
    join accounts using (account_id)
    where invoices.cycle = $cycle
),

channels as (
    select invoice_number, string_agg(channel, '+' order by channel) as channels
    from deliveries
    where cycle = $cycle
    group by invoice_number
)

select
    cycle_invoices.delivery_preference,
    coalesce(channels.channels, '(not delivered)') as delivered_by,
    count(*) as invoices,
    sum(cycle_invoices.total_amount)::decimal(18, 2) as billed
from cycle_invoices
left join channels using (invoice_number)
group by all
order by invoices desc, cycle_invoices.delivery_preference
