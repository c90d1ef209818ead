-- title: Revenue by state
-- question: How much did the accounts of each service state bill in the cycle (every invoice line, taxes included, so the rows sum to the invoice register)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: service_state, accounts, invoices, charges, taxes_and_fees, billed
with

cycle_lines as (
    select invoice_lines.*, accounts.service_state, accounts.agent_id, accounts.plan_id
    from invoice_lines
    left join accounts using (account_id)
    where invoice_lines.cycle = $cycle
)

select
    cycle_lines.service_state,
    count(distinct cycle_lines.account_id) as accounts,
    count(distinct cycle_lines.invoice_number) as invoices,
    sum(amount) filter (where section not in ('taxes', 'carrier_fees'))::decimal(18, 2) as charges,
    coalesce(sum(amount) filter (where section in ('taxes', 'carrier_fees')), 0)::decimal(18, 2) as taxes_and_fees,
    sum(amount)::decimal(18, 2) as billed
from cycle_lines

group by all
order by billed desc, 1
