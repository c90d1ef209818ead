-- rating_destinations.sql: the rate cards → their destinations, numbered, once per rating run (not per slice):
-- rating_destinations (one row per rate card, prefix, jurisdiction and event code: the keys the longest-prefix
-- match looks up), rating_card_prefix_lengths (the prefix lengths each card has) and rating_rate_rows (every
-- rate row with its destination's number, so the rows of the destinations a slice uses are found by number).
-- Inputs: rate_cards (reference). An empty prefix is stored as '' (it matches any number: the card's fallback).

create or replace temp table rating_destinations as
select
    row_number() over (order by rate_card_id, prefix, jurisdiction, event_code) as destination_no,
    rate_card_id,
    prefix,
    jurisdiction,
    event_code
from (
    select distinct
        rate_card_id,
        coalesce(prefix, '') as prefix,
        jurisdiction,
        event_code
    from rate_cards
);

create or replace temp table rating_card_prefix_lengths as
select distinct
    rate_card_id,
    length(prefix) as prefix_length
from rating_destinations;

create or replace temp table rating_rate_rows as
select
    rating_destinations.destination_no,
    rate_cards.*
from rate_cards
join rating_destinations
    on rating_destinations.rate_card_id = rate_cards.rate_card_id
    and rating_destinations.prefix = coalesce(rate_cards.prefix, '')
    and rating_destinations.jurisdiction is not distinct from rate_cards.jurisdiction
    and rating_destinations.event_code is not distinct from rate_cards.event_code;
