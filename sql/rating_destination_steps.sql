-- rating_destination_steps.sql: the table macro rating_destination_steps(used_destinations) — the rate rows of
-- some destinations → one row per destination with its steps in order and the terms its steps share. Defined
-- once per rating run (pipeline/rating.py) over rating_rate_rows (sql/rating_destinations.sql), and read by both
-- the pricing passes (sql/rating.sql: the destinations a slice's events use) and the explanation of the rated
-- events (sql/rating_explanations.sql: the destinations the cycle's events were priced at), so the steps are read
-- from the rate rows in one place.
-- Parameter: used_destinations, the name of a table, view or CTE with a column destination_no.
-- Rules:
-- * steps: a destination's rows are steps of the call, from second S onwards; each step has its first increment
--   and increment, the rate (micros) of its rows without a time band, and the rates of its time bands (a map).
-- * terms: the columns every step of a destination shares (reference.py checks they are equal): destination name,
--   unit, connect fee, minimum, maximum, rounding method and decimals; an empty prefix is ''.

create or replace temp macro rating_destination_steps(used_destinations) as table

with

used_rate_rows as (
    select rating_rate_rows.*
    from rating_rate_rows
    semi join query_table(used_destinations) as used using (destination_no)
),

-- a destination's steps; each step has the rate of the rows without a band and the rates of its time bands
step_rates as (
    select
        destination_no,
        from_second,
        any_value(first_increment_seconds) as first_increment,
        any_value(increment_seconds) as increment,
        max(micros(rate_per_unit)) filter (where time_band is null) as rate_micros,
        map_from_entries(
            list({'key': time_band, 'value': micros(rate_per_unit)}) filter (where time_band is not null)
        ) as band_rates
    from used_rate_rows
    group by all
),

destination_step_lists as (
    select
        destination_no,
        list(
            {
                'from_second': from_second,
                'first_increment': first_increment,
                'increment': increment,
                'rate_micros': rate_micros,
                'band_rates': band_rates
            }
            order by from_second
        ) as steps
    from step_rates
    group by all
),

-- the columns every step of a destination shares
destination_terms as (
    select
        destination_no,
        any_value(rate_card_id) as rate_card_id,
        any_value(coalesce(prefix, '')) as prefix,
        any_value(jurisdiction) as jurisdiction,
        any_value(event_code) as event_code,
        any_value(destination) as destination,
        any_value(unit_seconds) as unit_seconds,
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
    destination_terms.rate_card_id,
    destination_terms.prefix,
    destination_terms.jurisdiction,
    destination_terms.event_code,
    destination_step_lists.steps,
    destination_terms.* exclude (destination_no, rate_card_id, prefix, jurisdiction, event_code)
from destination_terms
join destination_step_lists using (destination_no)
