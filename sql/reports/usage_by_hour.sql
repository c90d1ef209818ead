-- title: Usage by hour of day
-- question: At which hours of the day (the line's local time) are calls made — the traffic profile network planning sizes trunks for?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: hour_of_day, calls, seconds, minutes, rated_charge
with

local_calls as (
    select
        extract(hour from timezone(coalesce(state_time_zones.timezone, 'UTC'), rated_usage.start_utc at time zone 'UTC'))
            as hour_of_day,
        rated_usage.billsec,
        rated_usage.charge_amount
    from rated_usage
    left join state_time_zones on state_time_zones.state = rated_usage.service_state
    where rated_usage.cycle = $cycle
        and coalesce(rated_usage.service, 'voice') = 'voice'
)

select
    hours.hour_of_day::integer as hour_of_day,
    count(local_calls.billsec) as calls,
    coalesce(sum(local_calls.billsec), 0) as seconds,
    round(coalesce(sum(local_calls.billsec), 0) / 60, 1) as minutes,
    coalesce(sum(local_calls.charge_amount), 0)::decimal(18, 6) as rated_charge
from range(24) as hours(hour_of_day)
left join local_calls using (hour_of_day)
group by hours.hour_of_day
order by hours.hour_of_day
