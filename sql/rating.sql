-- rating.sql: the cycle's normalised events → rated events (price book, destination, billed seconds, exact
-- charge and how it was priced) or rating suspense (NO_PRICE_BOOK, NO_RATE).
-- Inputs: normalised (mediated events of the cycle), accounts, price_books, rate_cards (reference).
-- Rules: price book by agent × plan × the line's service state, most specific match wins
-- (agent+plan+state > agent+plan > plan+state > plan); destination by the longest matching prefix, always;
-- billed seconds by first increment then increments; charge = connect fee + billed seconds × rate / unit,
-- rounded once per event by the rate row's method and decimals, then at least the minimum charge.

with

events as (
    select
        normalised.*,
        accounts.agent_id,
        accounts.plan_id
    from normalised
    join accounts using (account_id)
),

price_book_candidates as (
    select
        events.file_id,
        events.line_no,
        price_books.price_book_id,
        price_books.rate_card_id,
        (price_books.agent_id is not null)::integer * 2
            + (price_books.state is not null)::integer as specificity
    from events
    join price_books
        on price_books.plan_id = events.plan_id
        and (price_books.agent_id is null or price_books.agent_id = events.agent_id)
        and (price_books.state is null or price_books.state = events.service_state)
        and events.call_date >= price_books.valid_from
        and (price_books.valid_to is null or events.call_date < price_books.valid_to)
),

price_book_chosen as (
    select * exclude (specificity)
    from price_book_candidates
    qualify row_number() over (partition by file_id, line_no order by specificity desc, price_book_id) = 1
),

-- every leading digit string of the called number, to equi-join the rate card's prefixes
called_prefixes as (
    select
        price_book_chosen.*,
        left(ltrim(events.called_number, '+'), prefix_length) as prefix,
        prefix_length
    from price_book_chosen
    join events using (file_id, line_no)
    cross join unnest(range(1, length(ltrim(events.called_number, '+')) + 1)) as lengths(prefix_length)
),

destination_chosen as (
    select
        called_prefixes.file_id,
        called_prefixes.line_no,
        called_prefixes.price_book_id,
        rate_cards.*
    from called_prefixes
    join rate_cards
        on rate_cards.rate_card_id = called_prefixes.rate_card_id
        and rate_cards.prefix = called_prefixes.prefix
    qualify row_number() over (partition by file_id, line_no order by called_prefixes.prefix_length desc) = 1
),

billed as (
    select
        events.*,
        destination_chosen.* exclude (file_id, line_no),
        case
            when events.billsec <= 0 then 0
            when events.billsec <= destination_chosen.first_increment_seconds
                then destination_chosen.first_increment_seconds
            else destination_chosen.first_increment_seconds
                + (events.billsec - destination_chosen.first_increment_seconds
                   + destination_chosen.increment_seconds - 1)
                  // destination_chosen.increment_seconds
                  * destination_chosen.increment_seconds
        end as billed_seconds,
        [1000000, 100000, 10000, 1000, 100, 10, 1][destination_chosen.rounding_decimals + 1] as quantum_micros
    from events
    join destination_chosen using (file_id, line_no)
),

priced as (
    select
        *,
        greatest(
            round_div(
                micros(connect_fee) * unit_seconds + billed_seconds * micros(rate_per_unit),
                unit_seconds * quantum_micros,
                rounding_method
            ) * quantum_micros,
            micros(minimum_charge)
        ) as charge_micros
    from billed
),

rated as (
    select
        file_id,
        line_no,
        cycle,
        source_id,
        account_id,
        agent_id,
        plan_id,
        service_state,
        charged_number,
        calling_number,
        called_number,
        start_utc,
        call_date,
        billsec,
        service,
        price_book_id,
        rate_card_id,
        prefix,
        destination,
        rate_per_unit,
        unit_seconds,
        first_increment_seconds || '/' || increment_seconds as billing_increment,
        connect_fee,
        minimum_charge,
        rounding_method || ':' || rounding_decimals as rounding_rule,
        billed_seconds,
        from_micros(charge_micros) as charge_amount
    from priced
),

outcomes as (
    select
        normalised.file_id,
        normalised.line_no,
        case
            when rated.file_id is not null then null
            when price_book_chosen.file_id is null then 'NO_PRICE_BOOK'
            else 'NO_RATE'
        end as rating_reason
    from normalised
    left join rated using (file_id, line_no)
    left join price_book_chosen using (file_id, line_no)
)

-- one row per normalised event: rated (rating_reason null) or for suspense (rating_reason set)
select
    normalised.*,
    outcomes.rating_reason,
    rated.* exclude (file_id, line_no, cycle, source_id, account_id, service_state, charged_number,
                     calling_number, called_number, start_utc, call_date, billsec, service)
from normalised
join outcomes using (file_id, line_no)
left join rated using (file_id, line_no)
order by file_id, line_no
