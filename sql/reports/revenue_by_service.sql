-- title: Revenue by service
-- question: What did the cycle bill for each service (voice, sms, data … usage; plans and products; fees, taxes, discounts), so that the rows sum to the invoice register?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: service, accounts, lines, billed
with

cycle_lines as (
    select
        -- usage lines by their service; every other line by its section (recurring, taxes, …)
        case when section = 'usage' then 'usage_' || category else section end as service,
        invoice_number,
        account_id,
        amount
    from invoice_lines
    where cycle = $cycle
)

select
    service,
    count(distinct account_id) as accounts,
    count(*) as lines,
    sum(amount)::decimal(18, 2) as billed
from cycle_lines
group by service
order by billed desc, service
