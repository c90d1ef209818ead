-- title: Agent sales
-- question: For each sales agent: how many accounts are active, how many were activated or deactivated in the cycle, and what did their accounts bill?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: agent_id, agent_name, active_accounts, activations, deactivations, billed
with

period as (
    select cast($cycle || '-01' as date) as first_day, last_day(cast($cycle || '-01' as date)) as last_day
),

billed as (
    select account_id, sum(total_amount) as billed from invoices where cycle = $cycle group by account_id
)

select
    agents.agent_id,
    agents.agent_name,
    count(accounts.account_id) filter (
        where accounts.activated_on <= period.last_day
            and (accounts.deactivated_on is null or accounts.deactivated_on >= period.first_day)
    ) as active_accounts,
    count(accounts.account_id) filter (where accounts.activated_on between period.first_day and period.last_day)
        as activations,
    count(accounts.account_id) filter (where accounts.deactivated_on between period.first_day and period.last_day)
        as deactivations,
    coalesce(sum(billed.billed), 0)::decimal(18, 2) as billed
from agents
cross join period
left join accounts using (agent_id)
left join billed using (account_id)
group by agents.agent_id, agents.agent_name
order by billed desc, agents.agent_id
