-- title: Busy hour per day
-- question: For each day of the cycle, which local hour carried the most call minutes (the day's busy hour), and how much?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: call_date, busy_hour, calls, seconds, minutes
with

local_calls as (
    select
        timezone(coalesce(state_time_zones.timezone, 'UTC'), rated_usage.start_utc at time zone 'UTC') as local_start,
        rated_usage.billsec
    from rated_usage
    left join state_time_zones on state_time_zones.state = rated_usage.service_state
    where rated_usage.cycle = $cycle
        and coalesce(rated_usage.service, 'voice') = 'voice'
),

hourly as (
    select
        cast(local_start as date) as call_date,
        extract(hour from local_start)::integer as hour_of_day,
        count(*) as calls,
        sum(billsec) as seconds
    from local_calls
    group by all
)

select
    call_date,
    hour_of_day as busy_hour,
    calls,
    seconds,
    round(seconds / 60, 1) as minutes
from hourly
qualify row_number() over (partition by call_date order by seconds desc, hour_of_day) = 1
order by call_date
