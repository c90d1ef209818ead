-- title: Delivery outcomes
-- question: How were the cycle's invoices delivered (e-mail, print) with which status, and which invoices have no delivery yet?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: channel, status, invoices, percent_of_invoices
with

cycle_deliveries as (
    select invoices.invoice_number, deliveries.channel, deliveries.status
    from invoices
    left join deliveries using (invoice_number)
    where invoices.cycle = $cycle
),

total as (
    select count(*) as invoices from invoices where cycle = $cycle
)

select
    coalesce(channel, '(none)') as channel,
    coalesce(status, 'not delivered') as status,
    count(*) as invoices,
    -- share of the cycle's invoices in whole percent, half_up on integers
    (count(*) * 200 + any_value(total.invoices)) // (2 * any_value(total.invoices)) as percent_of_invoices
from cycle_deliveries, total
group by all
order by invoices desc, channel, status
