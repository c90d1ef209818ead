-- rating_explanations.sql: the destinations the cycle's rated events were priced at → how each is explained on
-- the rated event (prefix, jurisdiction, destination name, rate, billing increments, connect fee, minimum, maximum,
-- rounding rule, event code), one row per destination, computed once per rating run instead of carried by every
-- event through the rating passes (pipeline/rating.py joins them back by destination number).
-- Inputs: rating_results (the passes' outcomes, with the destination number of each priced event) and the table
-- macro rating_destination_steps (sql/rating_destination_steps.sql: a destination's steps and shared terms, read
-- from rating_rate_rows as the rating passes read them).

with

used_destinations as (
    select distinct destination_no from rating_results
),

destinations as (
    select * from rating_destination_steps(used_destinations)
)

select
    destinations.destination_no,
    nullif(destinations.prefix, '') as prefix,
    destinations.jurisdiction as rate_jurisdiction,
    destinations.destination,
    (destinations.steps[1].rate_micros::decimal(38, 0) * 0.000001)::decimal(18, 6) as rate_per_unit,
    -- the steps as read on a bill: "6/6", or "from 0s 60/60 @ 0.100000; from 60s 1/1 @ 0.020000"
    array_to_string(
        list_transform(
            destinations.steps,
            lambda s: case when len(destinations.steps) > 1 then 'from ' || s.from_second || 's ' else '' end
                || s.first_increment || '/' || s.increment
                || case when len(destinations.steps) > 1
                    then ' @ ' || coalesce(
                        ((s.rate_micros::decimal(38, 0) * 0.000001)::decimal(18, 6))::varchar, 'band rates'
                    ) else '' end
        ),
        '; '
    ) as billing_increment,
    destinations.connect_fee,
    destinations.minimum_charge,
    destinations.maximum_charge,
    destinations.rounding_method || ':' || destinations.rounding_decimals as rounding_rule,
    destinations.event_code as rate_event_code
from destinations
