-- title: Churn and growth in the cycle
-- question: Per plan, how many accounts were active at the start, activated, deactivated, changed plan in or out during the cycle, and active at the end — and the churn rate?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: plan_id, active_at_start, activations, deactivations, plan_changes_in, plan_changes_out,
-- columns: active_at_end, churn_percent
with

period as (
    select cast($cycle || '-01' as date) as first_day, last_day(cast($cycle || '-01' as date)) as last_day
),

movements as (
    select
        accounts.plan_id,
        (accounts.activated_on < period.first_day
            and (accounts.deactivated_on is null or accounts.deactivated_on >= period.first_day)) as active_at_start,
        (accounts.activated_on between period.first_day and period.last_day) as activated,
        (accounts.deactivated_on between period.first_day and period.last_day) as deactivated,
        (accounts.activated_on <= period.last_day
            and (accounts.deactivated_on is null or accounts.deactivated_on > period.last_day)) as active_at_end
    from accounts, period
),

plan_moves as (
    select plan_id, sum(moves_in)::bigint as moves_in, sum(moves_out)::bigint as moves_out
    from (
        select new_plan_id as plan_id, 1 as moves_in, 0 as moves_out
        from plan_changes, period where effective_on between period.first_day and period.last_day
        union all
        select old_plan_id, 0, 1
        from plan_changes, period where effective_on between period.first_day and period.last_day
    )
    group by plan_id
)

select
    plans.plan_id,
    count(*) filter (where movements.active_at_start) as active_at_start,
    count(*) filter (where movements.activated) as activations,
    count(*) filter (where movements.deactivated) as deactivations,
    coalesce(any_value(plan_moves.moves_in), 0) as plan_changes_in,
    coalesce(any_value(plan_moves.moves_out), 0) as plan_changes_out,
    count(*) filter (where movements.active_at_end) as active_at_end,
    -- churn: deactivations per 100 accounts active at the start, to 2 decimals half_up (integers, no float)
    case when count(*) filter (where movements.active_at_start) > 0 then
        ((count(*) filter (where movements.deactivated) * 20000 + count(*) filter (where movements.active_at_start))
            // (2 * count(*) filter (where movements.active_at_start)) * 0.01)::decimal(18, 2)
    end as churn_percent
from plans
left join movements using (plan_id)
left join plan_moves using (plan_id)
group by plans.plan_id
order by plans.plan_id
