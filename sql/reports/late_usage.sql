-- title: Late usage by original cycle
-- question: Which usage of already final cycles did this cycle bill late, per cycle the calls fall in: how many events, how many rated and suspended (too old or otherwise), and what did they charge?
-- param: cycle varchar  the bill cycle that billed the late usage, YYYY-MM
-- columns: original_cycle, route, events, rated_events, suspended_events, too_old, charge_amount
with routed as (
    select file_id, line_no, call_cycle, route
    from late_usage
    where billed_cycle = $cycle
),

rated as (
    select file_id, line_no, charge_amount
    from rated_usage
    where cycle = $cycle and late_from_cycle is not null
),

suspended as (
    select file_id, line_no, any_value(reason) as reason
    from suspense
    where cycle = $cycle and late_from_cycle is not null
    group by all
)

select
    routed.call_cycle as original_cycle,
    routed.route,
    count(*) as events,
    count(rated.file_id) as rated_events,
    count(suspended.file_id) as suspended_events,
    count(*) filter (where suspended.reason = 'LATE_USAGE_TOO_OLD') as too_old,
    coalesce(sum(rated.charge_amount), 0)::decimal(18, 6) as charge_amount
from routed
left join rated using (file_id, line_no)
left join suspended using (file_id, line_no)
group by all
order by original_cycle, route
