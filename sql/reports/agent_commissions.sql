-- title: Agent commissions
-- question: What commission does each agent earn for the cycle, on which revenue (billed or collected)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: agent_id, agent_name, accounts, billed_revenue, collected_revenue, commission
select
    agent_id,
    agent_name,
    accounts,
    billed_revenue,
    collected_revenue,
    commission
from agent_statements
where cycle = $cycle
order by commission desc, agent_id
