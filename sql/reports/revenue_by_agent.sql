-- title: Revenue by agent
-- question: How much did the accounts each sales agent brought in bill in the cycle (rows sum to the invoice register)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: agent_id, agent_name, accounts, invoices, charges, taxes_and_fees, billed
with

cycle_lines as (
    select invoice_lines.*, accounts.service_state, accounts.agent_id, accounts.plan_id
    from invoice_lines
    left join accounts using (account_id)
    where invoice_lines.cycle = $cycle
)

select
    cycle_lines.agent_id,
    agents.agent_name,
    count(distinct cycle_lines.account_id) as accounts,
    count(distinct cycle_lines.invoice_number) as invoices,
    sum(amount) filter (where section not in ('taxes', 'carrier_fees'))::decimal(18, 2) as charges,
    coalesce(sum(amount) filter (where section in ('taxes', 'carrier_fees')), 0)::decimal(18, 2) as taxes_and_fees,
    sum(amount)::decimal(18, 2) as billed
from cycle_lines
left join agents using (agent_id)
group by all
order by billed desc, 1
