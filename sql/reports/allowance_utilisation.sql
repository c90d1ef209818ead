-- title: Allowance utilisation
-- question: How much of each plan allowance did each account use in the cycle (units included versus the allowance), and did it go over?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: account_id, plan_id, allowance_id, service, allowance_units, included_used, percent_used,
-- columns: overage_units
with

used as (
    select
        account_id,
        allowance_id,
        coalesce(service, 'voice') as service,
        sum(included_units)::bigint as included_used,
        sum(charged_units) filter (where charged_units > 0)::bigint as charged_after
    from rated_usage
    where cycle = $cycle
        and allowance_id is not null
    group by all
)

select
    used.account_id,
    allowances.plan_id,
    used.allowance_id,
    used.service,
    allowances.included_units as allowance_units,
    used.included_used,
    -- utilisation in whole percent, half_up on integers
    (used.included_used * 200 + allowances.included_units) // (2 * allowances.included_units) as percent_used,
    coalesce(used.charged_after, 0) as overage_units
from used
left join allowances using (allowance_id)
order by percent_used desc, used.account_id, used.allowance_id
