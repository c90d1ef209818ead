-- rating.sql: the cycle's normalised events → rated events (price book, rate row, jurisdiction, billed seconds,
-- exact charge and how it was priced) or rating suspense (NO_PRICE_BOOK, NO_RATE).
-- Inputs: rating_input (the mediated events being rated, pipeline/rating.py), rating_number_areas
-- (the areas of the events' numbers, sql/jurisdiction.sql), accounts, price_books, price_book_levels (the declared fallback order,
-- pipeline/price_books.py), rating_destinations and rating_card_prefix_lengths (the rate cards' destinations,
-- numbered once per cycle: sql/rating_destinations.sql), and the table macro rating_destination_steps (a
-- destination's steps and shared terms from its rate rows: sql/rating_destination_steps.sql).
-- Output: one narrow row per event of accounts known to rating (key, rating_reason, how it was priced; the
-- destination by number, explained once per run by sql/rating_explanations.sql).
-- Rules:
-- * price book: the books of the line's plan that match its agent, service state and service (an empty scope
--   column matches any; an empty service only voice and vas) on the call date; the first level of the declared
--   fallback order wins (two books of one level cannot match the same event: reference.py refuses them at load).
-- * destination: the rate rows of the book's rate card whose prefix starts the called number and whose
--   jurisdiction is the call's (an empty prefix or jurisdiction matches any); the longest prefix always wins,
--   then a row naming the jurisdiction; a row with neither is the card's explicit fallback.
-- * steps: a destination's rows are steps of the call, from second S onwards at P per U seconds, billed in
--   the step's first increment and then its increments (60/60, 6/6, 30/6, "first minute then per second").
-- * charge = connect fee + Σ step billed seconds × P / U, rounded ONCE per event by the destination's method
--   and decimals, then at least the minimum charge and at most the maximum charge.

with

-- a voice call's jurisdiction (the rules of sql/jurisdiction.sql): the one its called number decides alone
-- (n11, toll_free, premium, international), else none when the called area is unknown, else its two areas
-- compared (the calling end's state falls back to the line's service state); other services have none.
-- Every event takes its called number's no. from the same join (0: no called number), the destination's key
events_with_jurisdiction as (
    select
        rating_input.*,
        coalesce(called_area.number_no, 0) as called_number_no,
        case when rating_input.service = 'voice' then
            case
                when called_area.called_jurisdiction is not null then called_area.called_jurisdiction
                when called_area.area_state is null then null
                when called_area.local_area = caller_area.local_area then 'local'
                when called_area.area_state = coalesce(caller_area.area_state, rating_input.service_state)
                    then 'intrastate'
                else 'interstate'
            end
        end as jurisdiction
    from rating_input
    left join rating_number_areas as called_area on called_area.number = rating_input.called_number
    left join rating_number_areas as caller_area on caller_area.number = rating_input.charged_number
),

events as (
    select
        normalised.file_id,
        normalised.line_no,
        normalised.service_state,
        normalised.service,
        normalised.call_date,
        normalised.billsec,
        normalised.start_utc,
        normalised.event_code,
        normalised.visited_country,
        normalised.called_number_no,
        accounts.agent_id,
        accounts.plan_id,
        normalised.jurisdiction,
        -- the allowance zone: abroad (roaming) or an international call; a premium call is in no zone
        case
            when normalised.visited_country is not null or normalised.jurisdiction = 'international'
                then 'international'
            when normalised.jurisdiction = 'premium' then 'premium'
            else 'domestic'
        end as allowance_zone,
        normalised.account_id,
        normalised.cycle,
        normalised.late_from_cycle,  -- late usage of a closed cycle (pipeline/late_usage.py): no allowance
        -- the units the service is priced in: voice seconds; SMS messages, or segments of 153 characters
        -- for a message longer than 160 (plan setting); MMS messages; data bytes, rounded up per session
        -- to the plan's unit (1 KB = 1024 bytes, 1 MB = 1024 KB), or exact bytes when the plan rounds per
        -- cycle ('cycle': the cycle's rounding is a step after rating, sql/data_rounding.sql); value-added events
        case normalised.service
            when 'voice' then coalesce(normalised.units, normalised.billsec)
            when 'sms' then coalesce(normalised.units, 1) * case
                when plan_usage_settings.sms_charging = 'segment' and normalised.sms_chars > 160
                    then (normalised.sms_chars + 152) // 153
                else 1
            end
            when 'data' then case
                when plan_usage_settings.data_rounding = 'session' then
                    (normalised.units + data_unit_bytes - 1) // data_unit_bytes * data_unit_bytes
                else normalised.units
            end
            else coalesce(normalised.units, 1)
        end as rating_units
    from events_with_jurisdiction as normalised
    join accounts using (account_id)
    left join (
        select
            *,
            case data_unit when 'MB' then 1048576 when 'KB' then 1024 else 1 end as data_unit_bytes
        from plan_usage_settings
    ) as plan_usage_settings using (plan_id)
),

price_book_ranked as (
    select
        price_books.*,
        price_book_levels.level,
        price_book_levels.level_name
    from price_books
    join price_book_levels
        on price_book_levels.with_agent = (price_books.agent_id is not null)
        and price_book_levels.with_state = (price_books.state is not null)
        and price_book_levels.with_service = (price_books.service is not null)
),

-- price books are chosen once per distinct (plan, agent, state, service, day), not per event
price_book_keys as (
    select distinct plan_id, agent_id, service_state, service, call_date from events
),

price_book_by_key as (
    select
        price_book_keys.plan_id,
        price_book_keys.agent_id,
        price_book_keys.service_state,
        price_book_keys.service,
        price_book_keys.call_date,
        arg_min(
            {
                'price_book_id': price_book_ranked.price_book_id,
                'rate_card_id': price_book_ranked.rate_card_id,
                'level_name': price_book_ranked.level_name
            },
            price_book_ranked.level
        ) as book
    from price_book_keys
    join price_book_ranked
        on price_book_ranked.plan_id = price_book_keys.plan_id
        and (price_book_ranked.agent_id is null or price_book_ranked.agent_id = price_book_keys.agent_id)
        and (price_book_ranked.state is null or price_book_ranked.state = price_book_keys.service_state)
        -- a book without a service prices calls and value-added events (its card is priced in seconds and
        -- events); messages and data need a book that names their service, else NO_PRICE_BOOK: a voice card
        -- would price an SMS as a 1-second call and a data session's bytes as seconds
        and (price_book_ranked.service = price_book_keys.service
             or (price_book_ranked.service is null and price_book_keys.service in ('voice', 'vas')))
        and price_book_keys.call_date >= price_book_ranked.valid_from
        and (price_book_ranked.valid_to is null or price_book_keys.call_date < price_book_ranked.valid_to)
    group by all
),

-- each event with its book (an event of no book: NO_PRICE_BOOK), streamed into the destination join below (the
-- reason pass of the few unpriced events reads it for price_book_chosen too)
events_with_book as (
    select
        events.*,
        price_book_by_key.book
    from events
    join price_book_by_key
        on price_book_by_key.plan_id = events.plan_id
        and price_book_by_key.agent_id is not distinct from events.agent_id
        and price_book_by_key.service_state is not distinct from events.service_state
        and price_book_by_key.service is not distinct from events.service
        and price_book_by_key.call_date is not distinct from events.call_date
),

price_book_chosen as (
    select file_id, line_no, book from events_with_book
),

-- every destination (rate card, prefix, jurisdiction, event code) of the cards, keys only, numbered once per
-- cycle (rating_destinations): the longest prefix is looked up here; only the destinations some event uses are
-- shaped into steps (below). card_prefix_lengths: the prefix lengths each card has, so an event is joined only
-- to the lengths that can match
destination_catalogue as (
    select * from rating_destinations
),

card_prefix_lengths as (
    select * from rating_card_prefix_lengths
),

-- destinations are chosen once per distinct (rate card, called number, jurisdiction, event code): every
-- leading digit string of the number as long as a prefix of the card is looked up. The called number is keyed
-- by its no. (sql/jurisdiction.sql), an integer, and its digits are read from the numbers once per key, so
-- neither the stored event row nor the destination join carries the digits. The keys are read from
-- `events` with each event's book (the join of events_with_book, on the keys' few columns), not from
-- events_with_book: the event row is then stored once (`events`, which the price-book keys, these keys and
-- events_with_book read) and events_with_book streams into the destination join, where a second stored copy of
-- every event was read by these keys and by that join
destination_keys as (
    select distinct
        price_book_by_key.book.rate_card_id as rate_card_id,
        events.called_number_no,
        events.jurisdiction,
        events.event_code
    from events
    join price_book_by_key
        on price_book_by_key.plan_id = events.plan_id
        and price_book_by_key.agent_id is not distinct from events.agent_id
        and price_book_by_key.service_state is not distinct from events.service_state
        and price_book_by_key.service is not distinct from events.service
        and price_book_by_key.call_date is not distinct from events.call_date
),

called_prefixes as (
    select
        destination_keys.*,
        left(coalesce(called.digits, ''), card_prefix_lengths.prefix_length) as candidate_prefix
    from destination_keys
    left join rating_number_areas as called on called.number_no = destination_keys.called_number_no
    join card_prefix_lengths using (rate_card_id)
),

-- the longest prefix first, then a row naming the jurisdiction, then one naming the event code
destination_by_key as (
    select
        called_prefixes.rate_card_id,
        called_prefixes.called_number_no,
        called_prefixes.jurisdiction,
        called_prefixes.event_code,
        arg_max(
            {
                'destination_no': destinations.destination_no,
                'prefix': destinations.prefix,
                'jurisdiction': destinations.jurisdiction,
                'event_code': destinations.event_code
            },
            length(destinations.prefix) * 4
                + (destinations.jurisdiction is not null)::integer * 2
                + (destinations.event_code is not null)::integer
        ) as destination_key
    from called_prefixes
    join destination_catalogue as destinations
        on destinations.rate_card_id = called_prefixes.rate_card_id
        and destinations.prefix = called_prefixes.candidate_prefix
    where (destinations.jurisdiction is null
            or destinations.jurisdiction is not distinct from called_prefixes.jurisdiction)
        and (destinations.event_code is null
            or destinations.event_code is not distinct from called_prefixes.event_code)
    group by all
),

-- the destinations the cycle's events use, each with its steps in order and the terms its steps share (the
-- table macro of sql/rating_destination_steps.sql, which sql/rating_explanations.sql reads too)
used_destinations as (
    select distinct destination_key.destination_no as destination_no from destination_by_key
),

destinations as (
    select * from rating_destination_steps(used_destinations)
),

-- one numbered row per destination: its shared terms, its first step as plain columns (most destinations have
-- one step, priced in closed form below) and the step list only when there are several (the general path). How
-- a destination is explained on the rated event (name, rate, increments, rounding rule…) is not carried by the
-- events: sql/rating_explanations.sql computes it once per run and pipeline/rating.py joins it by number
destination_dim as materialized (
    select
        destinations.destination_no,
        destinations.rate_card_id,
        destinations.prefix,
        destinations.jurisdiction,
        destinations.event_code,
        len(destinations.steps) as step_count,
        destinations.steps[1].from_second as step_from,
        destinations.steps[1].first_increment as step_first_increment,
        destinations.steps[1].increment as step_increment,
        destinations.steps[1].rate_micros as step_rate_micros,
        destinations.steps[1].band_rates as step_band_rates,
        case when len(destinations.steps) > 1 then destinations.steps end as multi_steps,
        destinations.* exclude (destination_no, rate_card_id, prefix, jurisdiction, event_code, steps),
        [1000000, 100000, 10000, 1000, 100, 10, 1][destinations.rounding_decimals + 1] as quantum_micros,
        micros(destinations.connect_fee) as connect_fee_micros,
        micros(destinations.minimum_charge) as minimum_micros,
        micros(destinations.maximum_charge) as maximum_micros
    from destinations
),

-- the band rates of the one-step destinations, one row per (destination, band): a piece finds its rate by
-- destination number and band, so no event carries its destination's map of band rates
destination_band_rates as (
    select
        destination_no,
        band_rate.key as time_band,
        band_rate.value as rate_micros
    from (
        select
            destination_no,
            unnest(map_entries(step_band_rates)) as band_rate
        from destination_dim
        where step_count = 1
    )
),

destination_ranked as (
    select
        events_with_book.file_id,
        events_with_book.line_no,
        events_with_book.book,
        events_with_book.account_id,
        events_with_book.agent_id,
        events_with_book.plan_id,
        events_with_book.jurisdiction as call_jurisdiction,
        events_with_book.rating_units,
        events_with_book.service,
        events_with_book.start_utc,
        events_with_book.service_state,
        events_with_book.visited_country,
        events_with_book.allowance_zone,
        events_with_book.cycle,
        events_with_book.late_from_cycle,
        destination_by_key.destination_key
    from events_with_book
    join destination_by_key
        on destination_by_key.rate_card_id = events_with_book.book.rate_card_id
        and destination_by_key.called_number_no = events_with_book.called_number_no
        and destination_by_key.jurisdiction is not distinct from events_with_book.jurisdiction
        and destination_by_key.event_code is not distinct from events_with_book.event_code
),

destination_chosen as (
    select
        destination_ranked.* exclude (book, destination_key),
        destination_ranked.book.price_book_id as price_book_id,
        destination_ranked.book.level_name as price_book_level,
        destination_dim.destination_no,
        destination_dim.rate_card_id,
        destination_dim.step_count,
        destination_dim.step_from,
        destination_dim.step_first_increment,
        destination_dim.step_increment,
        destination_dim.step_rate_micros,
        destination_dim.multi_steps as steps,
        destination_dim.unit_seconds,
        destination_dim.rounding_method,
        destination_dim.quantum_micros,
        destination_dim.connect_fee_micros,
        destination_dim.minimum_micros,
        destination_dim.maximum_micros
    from destination_ranked
    join destination_dim
        on destination_dim.destination_no = destination_ranked.destination_key.destination_no
),

-- each step bills the part of the call inside it: its first increment, then whole increments. A destination
-- with one step is billed in closed form (no lists); the step lists are built only for the others
stepped as (
    select
        destination_chosen.*,
        rate_card_policies.band_set,
        -- an SMS, a data session or an event is priced at one instant: only voice is split at band boundaries
        case when destination_chosen.service = 'voice' then coalesce(rate_card_policies.band_policy, 'start')
            else 'start' end as band_policy,
        coalesce(rate_card_policies.holidays, 'none') as holidays,
        greatest(destination_chosen.rating_units - destination_chosen.step_from, 0) as single_step_units,
        case when destination_chosen.step_count > 1 then list_transform(
            list_zip(steps, list_concat(list_transform(steps[2:], lambda s: s.from_second), [null::bigint])),
            lambda z: greatest(
                least(destination_chosen.rating_units, coalesce(z[2], destination_chosen.rating_units))
                    - z[1].from_second,
                0
            )
        ) end as step_seconds
    from destination_chosen
    left join rate_card_policies using (rate_card_id)
),

billed as (
    select
        *,
        case when step_count > 1 then list_transform(
            list_zip(steps, step_seconds),
            lambda p: case
                when p[2] <= 0 then 0
                when p[2] <= p[1].first_increment then p[1].first_increment
                else p[1].first_increment
                    + (p[2] - p[1].first_increment + p[1].increment - 1) // p[1].increment * p[1].increment
            end
        ) end as step_billed_units,
        -- the same rule for a single step
        case
            when single_step_units <= 0 then 0
            when single_step_units <= step_first_increment then step_first_increment
            else step_first_increment
                + (single_step_units - step_first_increment + step_increment - 1) // step_increment * step_increment
        end as single_step_billed
    from stepped
),

billed_units as (
    select
        *,
        case when step_count > 1 then list_sum(step_billed_units) else single_step_billed end::bigint
            as billed_units,
        -- where each step starts on the call's billed time line (a single step starts at 0)
        case when step_count > 1 then
            list_transform(step_billed_units, lambda b, i: coalesce(list_sum(step_billed_units[:i - 1]), 0))
        end as step_offsets
    from billed
),

-- allowances: the plan's included units of the service and zone, prorated for a partial cycle (active days /
-- cycle days, rounded down to whole units), consumed in call order across the cycle (start, file, line);
-- the call that crosses the allowance is split: its first units included, the rest charged.
-- Which allowance an event consumes depends only on its plan, service and zone: it is chosen once per
-- (plan, service, zone) for the three zones an event can be in (events.allowance_zone) — the zone's own
-- allowance before the plan's 'any' one — and the running sum runs over the consuming events only, narrow
allowance_by_zone as (
    select
        allowances.plan_id,
        allowances.service,
        zones.allowance_zone,
        arg_min(
            {'allowance_id': allowances.allowance_id, 'included_units': allowances.included_units},
            allowances.zone = 'any'
        ) as allowance
    from allowances
    join (select unnest(['domestic', 'international', 'premium']) as allowance_zone) as zones
        on allowances.zone in ('any', zones.allowance_zone)
    group by all
),

allowance_consumed as (
    select
        consuming.file_id,
        consuming.line_no,
        consuming.allowance.allowance_id as allowance_id,
        consuming.allowance.included_units
            * greatest(
                date_diff(
                    'day',
                    greatest(accounts.activated_on, consuming.cycle_first_day),
                    least(coalesce(accounts.deactivated_on, consuming.cycle_next_day), consuming.cycle_next_day)
                ),
                0
            )
            // date_diff('day', consuming.cycle_first_day, consuming.cycle_next_day) as allowance_units,
        sum(consuming.billed_units) over (
            partition by consuming.account_id, consuming.allowance.allowance_id
            order by consuming.start_utc, consuming.file_id, consuming.line_no
            rows between unbounded preceding and current row
        ) - consuming.billed_units as used_before
    from (
        select
            billed_units.file_id,
            billed_units.line_no,
            billed_units.account_id,
            billed_units.start_utc,
            billed_units.billed_units,
            allowance_by_zone.allowance,
            strptime(billed_units.cycle || '-01', '%Y-%m-%d')::date as cycle_first_day,
            (strptime(billed_units.cycle || '-01', '%Y-%m-%d') + interval 1 month)::date as cycle_next_day
        from billed_units
        join allowance_by_zone using (plan_id, service, allowance_zone)
        -- late usage is charged without allowance: the closed cycle's is not re-opened, the current one is not its
        where billed_units.late_from_cycle is null
    ) as consuming
    join accounts using (account_id)
),

billed_calls as (
    select
        billed_units.*,
        allowance_consumed.allowance_id,
        -- (least/greatest skip nulls in DuckDB: an event without allowance is tested first)
        case
            when allowance_consumed.allowance_id is null then 0
            else greatest(
                least(allowance_consumed.allowance_units - allowance_consumed.used_before, billed_units.billed_units),
                0
            )
        end::bigint as included_units
    from billed_units
    left join allowance_consumed using (file_id, line_no)
),

-- time bands: band periods come from the precomputed calendar (pipeline/bands.py), in the line's state's local
-- time. The calendar is keyed by the UTC days each period overlaps, so a call is compared with the few periods
-- of its days, not with every period of the cycle
band_periods as materialized (
    select
        band_set,
        holidays,
        state,
        period_start_utc,
        period_end_utc,
        time_band,
        period_start_utc::date as period_first_day,
        unnest(generate_series(
            period_start_utc::date, (period_end_utc - interval 1 microsecond)::date, interval 1 day
        ))::date as utc_day
    from band_calendar
),

-- the band a call starts in: the period of its band set, holiday policy and state that holds its start (one at
-- most: a band set's periods neither overlap nor leave gaps, reference.py checks it; the period is met on the
-- call's first UTC day only). A call is whole in its start band when its policy is 'start', or when its billed
-- time line ends inside the start period (policy split: no boundary crossed) — most calls. Only the others (a
-- split call that crosses a boundary, a banded call without a start period: NO_BAND) are cut into pieces below.
-- The start band's rate of a one-step destination is found here, by destination number and band.
-- rating_whole_by_start_band() is false only in tests: every banded call is then cut into pieces (one, if whole).
-- rating_has_band_sets() is false when no rate card of the deck has a band set (pipeline/rating.py): every call is
-- then priced whole without a band, the joins below are on a false condition (no join is run) and the cut calls'
-- path reads nothing, so this step is not stored for a second reader (the query has one)
call_start_bands as (
    select
        billed_calls.*,
        start_period.time_band as start_band,
        start_band_rate.rate_micros as start_band_rate_micros,
        billed_calls.band_set is not null and not coalesce(
            rating_whole_by_start_band()
                and start_period.time_band is not null
                and billed_calls.billed_units is not null
                and (
                    billed_calls.band_policy = 'start'
                    or (
                        date_diff('second', billed_calls.start_utc, start_period.period_end_utc)
                            >= billed_calls.billed_units
                        and start_period.period_end_utc
                            >= billed_calls.start_utc + to_seconds(greatest(billed_calls.billed_units, 1))
                    )
                ),
            false
        ) as is_cut
    from billed_calls
    left join band_periods as start_period
        on rating_has_band_sets()
        and start_period.band_set = billed_calls.band_set
        and start_period.holidays = billed_calls.holidays
        and start_period.state = billed_calls.service_state
        and start_period.utc_day = billed_calls.start_utc::date
        and start_period.period_start_utc <= billed_calls.start_utc
        and start_period.period_end_utc > billed_calls.start_utc
    left join destination_band_rates as start_band_rate
        on rating_has_band_sets()
        and start_band_rate.destination_no = billed_calls.destination_no
        and start_band_rate.time_band = start_period.time_band
),

-- a call priced whole: Σ over steps of billed units × the step's rate — in its start band (the band's rate,
-- else the step's rate without a band) for a banded call, the rate without a band for a call without time bands.
-- Every charge step below carries the call's columns along (no join back to billed_calls by key)
whole_charges as (
    select
        call_start_bands.* exclude (start_band, start_band_rate_micros, is_cut),
        case
            when band_set is null then
                case when step_count > 1 then list_sum(list_transform(
                    list_zip(steps, step_offsets, step_billed_units),
                    lambda z: greatest(z[2] + z[3] - greatest(included_units, z[2]), 0) * z[1].rate_micros
                )) else greatest(billed_units - greatest(included_units, 0), 0) * step_rate_micros end
            -- the piece from 0 to billed_units of the pieces below
            when step_count > 1 then list_sum(list_transform(
                list_zip(steps, step_offsets, step_billed_units),
                lambda z: greatest(least(billed_units, z[2] + z[3]) - greatest(0, z[2], included_units), 0)
                    * coalesce(z[1].band_rates[start_band], z[1].rate_micros)
            ))
            else greatest(billed_units - greatest(0, 0, included_units), 0)
                * coalesce(start_band_rate_micros, step_rate_micros)
        end as usage_numerator,
        -- no rate: a banded call's numerator is null (each step's billed units are a number, so only a missing
        -- rate makes it null, and list_sum is null only when every step's is); stated on the rates, not on the
        -- numerator, as the filter on it is pushed down to this scan
        case
            when band_set is null and step_count > 1
                then list_bool_or(list_transform(steps, lambda s: s.rate_micros is null))
            when band_set is null then step_rate_micros is null
            when step_count > 1 then list_bool_and(list_transform(
                steps, lambda s: coalesce(s.band_rates[start_band], s.rate_micros) is null
            ))
            else coalesce(start_band_rate_micros, step_rate_micros) is null
        end as missing_rate,
        case when band_set is not null then start_band || ' ' || billed_units || 's' end as time_bands
    from call_start_bands
    where not is_cut
),

-- a call cut at band boundaries (policy split): its billed time line cut into the periods it overlaps. A call
-- meets a period on the first UTC day both overlap (the later of their first days), so each (call, period) pair
-- is met once. Kept apart (few rows, read twice below), so call_start_bands has two readers, not three
banded_calls as materialized (
    select
        * exclude (start_band, start_band_rate_micros, is_cut),
        start_utc::date as call_first_day,
        (start_utc + to_seconds(greatest(billed_units, 1)) - interval 1 microsecond)::date as call_last_day
    from call_start_bands
    where is_cut and rating_has_band_sets()
),

-- the call's first day, and (a split call that runs past midnight UTC) each later day it overlaps
call_days as (
    select
        *,
        call_first_day as call_day
    from banded_calls
    union all
    select
        *,
        unnest(generate_series(call_first_day + 1, call_last_day, interval 1 day))::date as call_day
    from banded_calls
    where band_policy = 'split' and call_last_day > call_first_day
),

pieces as (
    select
        call_days.* exclude (call_first_day, call_last_day, call_day),
        band_periods.time_band,
        case when call_days.band_policy = 'split'
            then greatest(date_diff('second', call_days.start_utc, band_periods.period_start_utc), 0)
            else 0 end as piece_from,
        case when call_days.band_policy = 'split'
            then least(date_diff('second', call_days.start_utc, band_periods.period_end_utc),
                       call_days.billed_units)
            else call_days.billed_units end as piece_to
    from call_days
    join band_periods
        on band_periods.band_set = call_days.band_set
        and band_periods.holidays = call_days.holidays
        and band_periods.state = call_days.service_state
        and band_periods.utc_day = call_days.call_day
        and band_periods.utc_day = greatest(call_days.call_first_day, band_periods.period_first_day)
        and band_periods.period_end_utc > call_days.start_utc
        and band_periods.period_start_utc
            < call_days.start_utc + to_seconds(greatest(call_days.billed_units, 1))
        and (call_days.band_policy = 'split' or band_periods.period_start_utc <= call_days.start_utc)
),

-- each piece: Σ over steps of (units of the step inside the piece) × (the step's rate in the piece's band)
piece_charges as (
    select
        pieces.*,
        case when pieces.step_count > 1 then list_sum(list_transform(
            list_zip(pieces.steps, pieces.step_offsets, pieces.step_billed_units),
            lambda z: greatest(
                least(pieces.piece_to, z[2] + z[3])
                    - greatest(pieces.piece_from, z[2], pieces.included_units),
                0
            )
                * coalesce(z[1].band_rates[pieces.time_band], z[1].rate_micros)
        )) else greatest(
            least(pieces.piece_to, pieces.billed_units)
                - greatest(pieces.piece_from, 0, pieces.included_units),
            0
        ) * coalesce(destination_band_rates.rate_micros, pieces.step_rate_micros)
        end as piece_numerator,
        coalesce(pieces.piece_from = 0 and pieces.piece_to = pieces.billed_units, false) as is_whole_call
    from pieces
    left join destination_band_rates
        on destination_band_rates.destination_no = pieces.destination_no
        and destination_band_rates.time_band = pieces.time_band
),

-- a piece that is the whole billed time line is its call's only piece (a band set's periods neither overlap nor
-- leave gaps: reference.py checks it), so only the calls cut at a boundary are grouped
call_charges as (
    select * from whole_charges
    union all by name
    select
        piece_charges.* exclude (time_band, piece_from, piece_to, piece_numerator, is_whole_call),
        piece_charges.piece_numerator as usage_numerator,
        piece_charges.piece_numerator is null as missing_rate,
        piece_charges.time_band || ' ' || (piece_charges.piece_to - piece_charges.piece_from) || 's' as time_bands
    from piece_charges
    where piece_charges.is_whole_call
    union all by name
    -- the few calls cut at a boundary: their pieces summed over the call (a window, so the call's columns come
    -- along with its first piece instead of a join back by key)
    select * exclude (piece_order, pieces)
        replace (array_to_string(list_transform(list_sort(pieces), lambda p: p.label), ', ') as time_bands)
    from (
        select
            piece_charges.* exclude (time_band, piece_from, piece_to, piece_numerator, is_whole_call),
            sum(piece_charges.piece_numerator) over call as usage_numerator,
            bool_or(piece_charges.piece_numerator is null) over call as missing_rate,
            -- pieces in call order: a per-call list sort of the (few) pieces, cheaper than an ordered aggregate
            list({
                'piece_from': piece_charges.piece_from,
                'label': piece_charges.time_band || ' ' || (piece_charges.piece_to - piece_charges.piece_from) || 's'
            }) over call as pieces,
            null::varchar as time_bands,
            row_number() over (call order by piece_charges.piece_from) as piece_order
        from piece_charges
        where not piece_charges.is_whole_call
        window call as (partition by piece_charges.file_id, piece_charges.line_no)
    )
    where piece_order = 1
),

-- the exact charge is num / (unit_seconds) micro-units; it is rounded once, to the destination's decimals
-- roaming: an event abroad pays its card's surcharge for the visited country's zone, per the card's unit, on
-- its charged units (no surcharge row for the zone: suspense NO_ROAMING_RATE)
-- each card's surcharge per visited country (a small table: cards × countries with a zone), joined once
roaming_rates as (
    select
        roaming_surcharges.rate_card_id,
        roaming_zones.country,
        roaming_zones.zone,
        roaming_surcharges.surcharge_per_unit,
        micros(roaming_surcharges.surcharge_per_unit) as surcharge_micros
    from roaming_zones
    join roaming_surcharges on roaming_surcharges.zone = roaming_zones.zone
),

-- an event abroad finds its card's surcharge for the visited country by a join on (card, country): the surcharge
-- table is small, so the join builds on it and an event at home (visited country null) matches nothing
charged_calls as (
    select
        call_charges.* exclude (missing_rate),
        roaming_rates.zone as roaming_zone,
        roaming_rates.surcharge_per_unit as roaming_surcharge,
        roaming_rates.surcharge_micros as roaming_surcharge_micros
    from call_charges
    left join roaming_rates
        on roaming_rates.rate_card_id = call_charges.rate_card_id
        and roaming_rates.country = call_charges.visited_country
    where not call_charges.missing_rate
),

priced as (
    select
        charged_calls.* exclude (usage_numerator, roaming_surcharge_micros),
        -- a call wholly inside the allowance costs nothing (no connect fee, no minimum)
        charged_calls.included_units > 0 and charged_calls.included_units = charged_calls.billed_units
            as wholly_included,
        case when wholly_included then 0
            else charged_calls.connect_fee_micros * charged_calls.unit_seconds + charged_calls.usage_numerator
                + coalesce(
                    (charged_calls.billed_units - charged_calls.included_units)
                        * charged_calls.roaming_surcharge_micros,
                    0
                )
        end as charge_numerator
    from charged_calls
    where charged_calls.visited_country is null or charged_calls.roaming_zone is not null
),

-- the divisions of the exact charge run in BIGINT when the numerator fits: within ±rating_bigint_bound()
-- (2^62 / 10^6, so the numerator × 10^6 of the unrounded charge and round_div's 2 × numerator fit in 64 bits)
-- DuckDB divides natively, ~10× cheaper than its HUGEINT division; a larger numerator (an absurd call) takes the
-- HUGEINT path. round_div is exact in either type, so both give the same whole numbers (pipeline/rating.py)
numerators as (
    select
        *,
        charge_numerator between -rating_bigint_bound() and rating_bigint_bound() as numerator_fits_bigint
    from priced
),

rounded as (
    select
        *,
        case
            when numerator_fits_bigint
                then round_div(charge_numerator::bigint, unit_seconds * quantum_micros, rounding_method)
            else round_div(charge_numerator, unit_seconds * quantum_micros, rounding_method)
        end * quantum_micros as rounded_micros
    from numerators
),

limited as (
    select
        *,
        greatest(
            least(rounded_micros, coalesce(maximum_micros, 9223372036854775807::hugeint)),
            case when wholly_included then 0 else minimum_micros end
        ) as charge_micros
    from rounded
),

rated as (
    select
        limited.file_id,
        limited.line_no,
        limited.agent_id,
        limited.plan_id,
        limited.call_jurisdiction as jurisdiction,
        limited.price_book_id,
        limited.price_book_level,
        limited.rate_card_id,
        limited.destination_no,
        limited.unit_seconds,
        limited.band_set,
        case when limited.band_set is not null then limited.band_policy end as band_policy,
        limited.time_bands,
        case when limited.service = 'voice' then limited.billed_units end as billed_seconds,
        limited.billed_units,
        limited.allowance_id,
        limited.included_units,
        limited.billed_units - limited.included_units as charged_units,
        limited.roaming_zone,
        limited.roaming_surcharge,
        -- the exact charge before rounding, to 12 decimals (half_even), so the rounding applied can be shown
        (case
            when limited.numerator_fits_bigint
                then round_div(limited.charge_numerator::bigint * 1000000, limited.unit_seconds, 'half_even')
            else round_div(limited.charge_numerator * 1000000, limited.unit_seconds, 'half_even')
        end::decimal(38, 0) * 0.000000000001)::decimal(30, 12) as unrounded_charge,
        case
            when limited.charge_micros > limited.rounded_micros then 'minimum'
            when limited.charge_micros < limited.rounded_micros then 'maximum'
        end as charge_limit,
        from_micros(limited.charge_micros) as charge_amount
    from limited
),

-- the few events that could not be priced, and why
unrated as (
    select
        events.file_id,
        events.line_no,
        events.jurisdiction,
        case
            when price_book_chosen.file_id is null then 'NO_PRICE_BOOK'
            when billed_calls.band_set is not null and call_charges.file_id is null then 'NO_BAND'
            when billed_calls.visited_country is not null and not call_charges.missing_rate then 'NO_ROAMING_RATE'
            else 'NO_RATE'
        end as rating_reason
    from events
    anti join rated using (file_id, line_no)
    left join price_book_chosen using (file_id, line_no)
    left join billed_calls using (file_id, line_no)
    left join call_charges using (file_id, line_no)
),

outcomes as (
    select * from rated
    union all by name
    select * from unrated
)

-- one row per rated or unratable event: its key, rating_reason (null: rated) and how it was priced — narrow, the
-- normalised columns are joined back once, when the rated events are written, and the destination's explanation
-- by its number (pipeline/rating.py).
-- pipeline/rating.py runs this with `select … from rated` in place of the last line first, then this whole query
-- over the few events that pass did not price (so the costly `unrated` step runs only over those)
select * from outcomes
