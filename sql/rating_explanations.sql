-- rating_explanations.sql: the destinations the cycle's rated events were priced at → how each is explained on
-- the rated event (prefix, jurisdiction, destination name, rate, billing increments, connect fee, minimum, maximum,
-- rounding rule, event code), one row per destination, computed once per rating run instead of carried by every
-- event through the rating passes (pipeline/rating.py joins them back by destination number).
-- Inputs: rating_results (the passes' outcomes, with the destination number of each priced event) and
-- rating_rate_rows (every rate row with its destination's number: sql/rating_destinations.sql).

with

used_rate_rows as (
    select rating_rate_rows.*
    from rating_rate_rows
    semi join (select distinct destination_no from rating_results) as used using (destination_no)
),

-- a destination's steps, each with the rate of its rows without a time band
step_rates as (
    select
        destination_no,
        from_second,
        any_value(first_increment_seconds) as first_increment,
        any_value(increment_seconds) as increment,
        max(micros(rate_per_unit)) filter (where time_band is null) as rate_micros
    from used_rate_rows
    group by all
),

steps as (
    select
        destination_no,
        list(
            {
                'from_second': from_second,
                'first_increment': first_increment,
                'increment': increment,
                'rate_micros': rate_micros
            }
            order by from_second
        ) as steps
    from step_rates
    group by all
),

-- the columns every step of a destination shares (reference.py checks they are equal)
destination_terms as (
    select
        destination_no,
        any_value(coalesce(prefix, '')) as prefix,
        any_value(jurisdiction) as jurisdiction,
        any_value(event_code) as event_code,
        any_value(destination) as destination,
        any_value(connect_fee) as connect_fee,
        any_value(minimum_charge) as minimum_charge,
        any_value(maximum_charge) as maximum_charge,
        any_value(rounding_method) as rounding_method,
        any_value(rounding_decimals) as rounding_decimals
    from used_rate_rows
    group by all
)

select
    destination_terms.destination_no,
    nullif(destination_terms.prefix, '') as prefix,
    destination_terms.jurisdiction as rate_jurisdiction,
    destination_terms.destination,
    (steps.steps[1].rate_micros::decimal(38, 0) * 0.000001)::decimal(18, 6) as rate_per_unit,
    -- the steps as read on a bill: "6/6", or "from 0s 60/60 @ 0.100000; from 60s 1/1 @ 0.020000"
    array_to_string(
        list_transform(
            steps.steps,
            lambda s: case when len(steps.steps) > 1 then 'from ' || s.from_second || 's ' else '' end
                || s.first_increment || '/' || s.increment
                || case when len(steps.steps) > 1
                    then ' @ ' || coalesce(
                        ((s.rate_micros::decimal(38, 0) * 0.000001)::decimal(18, 6))::varchar, 'band rates'
                    ) else '' end
        ),
        '; '
    ) as billing_increment,
    destination_terms.connect_fee,
    destination_terms.minimum_charge,
    destination_terms.maximum_charge,
    destination_terms.rounding_method || ':' || destination_terms.rounding_decimals as rounding_rule,
    destination_terms.event_code as rate_event_code
from destination_terms
join steps using (destination_no)
