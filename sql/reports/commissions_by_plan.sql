-- title: Commissions by agent and plan
-- question: Which commission plans applied to which rate plans and states, on what base, for how much?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: agent_id, plan_id, service_state, commission_plan_id, basis, percent, accounts, commission_base,
-- columns: commission
select
    agent_id,
    plan_id,
    service_state,
    commission_plan_id,
    basis,
    percent,
    count(*) as accounts,
    sum(commission_base)::decimal(18, 2) as commission_base,
    sum(commission)::decimal(18, 2) as commission
from commission_lines
where cycle = $cycle
group by all
order by agent_id, plan_id, service_state, commission_plan_id
