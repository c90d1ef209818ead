-- title: Usage by day of week
-- question: On which days of the week (the line's local time) are calls made?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: iso_day, day_of_week, calls, seconds, minutes, rated_charge
with

local_calls as (
    select
        timezone(coalesce(state_time_zones.timezone, 'UTC'), rated_usage.start_utc at time zone 'UTC') as local_start,
        rated_usage.billsec,
        rated_usage.charge_amount
    from rated_usage
    left join state_time_zones on state_time_zones.state = rated_usage.service_state
    where rated_usage.cycle = $cycle
        and coalesce(rated_usage.service, 'voice') = 'voice'
)

select
    isodow(local_start) as iso_day,
    dayname(local_start) as day_of_week,
    count(*) as calls,
    sum(billsec) as seconds,
    round(sum(billsec) / 60, 1) as minutes,
    sum(charge_amount)::decimal(18, 6) as rated_charge
from local_calls
group by all
order by iso_day
