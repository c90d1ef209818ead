-- title: Overage
-- question: Which accounts on plans with an allowance used more than it included, and what did the overage cost?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: account_id, plan_id, service, included_units, overage_units, overage_charge
with

plan_allowances as (
    select distinct plan_id, service from allowances
)

select
    rated_usage.account_id,
    rated_usage.plan_id,
    coalesce(rated_usage.service, 'voice') as service,
    sum(rated_usage.included_units)::bigint as included_units,
    sum(rated_usage.charged_units)::bigint as overage_units,
    sum(rated_usage.charge_amount)::decimal(18, 6) as overage_charge
from rated_usage
join plan_allowances
    on plan_allowances.plan_id = rated_usage.plan_id
    and plan_allowances.service = coalesce(rated_usage.service, 'voice')
where rated_usage.cycle = $cycle
group by all
having sum(rated_usage.charged_units) > 0
order by overage_charge desc, rated_usage.account_id
