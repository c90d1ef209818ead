-- mediation_calls.sql: the cycle's usage records (normalised per file) → one row per record with the call
-- rules applied: one event per call (FreeSWITCH b-legs, forked legs and partial records are marked with the
-- leg rule that merges them and the record they merge into; a stitched call carries its total billed
-- seconds) and the account that held the charged number at the call time (numbers are reassigned: dates
-- matter). Records that intake already decided (status <> 'ok') pass through. Only the columns the rules read:
-- the raw text and the descriptive columns stay in the usage records.
-- Written to a Parquet file aside by pipeline/mediation.py (a COPY streams and spills) before the duplicate
-- rules (sql/mediation.sql) read it: DuckDB 2.0.1 materialises a step that later steps read several times even
-- when it is marked `not materialized`, and a materialised step cannot spill (at 10M it did not fit 1 GB).
-- A voice record whose called number is a service code (reference service_codes: 411 directory assistance,
-- *69 call return) is a value-added event: that service and event code, one unit, whatever it lasted.
-- Inputs: mediation_records (the cycle's usage records, the columns read here: pipeline/mediation.py writes them to
-- one file first), service_numbers, service_codes (reference).

with

-- only the columns the rules read: the raw text and the descriptive columns stay in the usage records
records as not materialized (
    select
        file_id,
        line_no,
        status,
        reason,
        source_id,
        source_record_id,
        call_id,
        peer_record_id,
        record_sequence,
        charged_number,
        called_number,
        start_utc,
        answer_utc,
        call_date,
        billsec,
        coalesce(code_service, service) as service,
        case when code_service is null then units else 1 end as units,
        coalesce(code_event, event_code) as event_code,
        file_id::bigint * 4294967296 + line_no as record_ordinal  -- file then line: earliest wins
    from mediation_records
    left join (
        select called_number as code_number, service as code_service, event_code as code_event
        from service_codes
    ) as codes
        on codes.code_number = mediation_records.called_number and mediation_records.service = 'voice'
),

candidates as not materialized (
    select * from records where status = 'ok'
),

-- only records that name a call (legs, partials) need the leg rules; the others are one event each
named as not materialized (
    select * from candidates where call_id is not null and call_id <> ''
),

-- most calls that are named have one record (every CUCM and BroadWorks record names its call, as real Asterisk
-- files fill linkedid): only the calls of several records (forked legs, partials, a record delivered again) need
-- the rules below. Found by aggregation, a small table to join, not by a window over every record that names a
-- call (a sort of them: at 10M in the realistic format mix, 4.2M records for 3,904 that share a call)
multi_record_calls as materialized (
    select source_id, call_id
    from named
    group by all
    having count(*) > 1
),

in_multi_record_calls as not materialized (
    select named.* from named semi join multi_record_calls using (source_id, call_id)
),

-- a record its source delivered again (the same id of the same call, in another file) is its earliest copy's
-- duplicate before the leg rules: as one more leg or partial of its own call, a partial's seconds would be billed
-- twice
redelivered as materialized (
    select source_id, call_id, source_record_id, min(record_ordinal) as first_copy_ordinal
    from in_multi_record_calls
    where source_record_id is not null and source_record_id <> ''
    group by all
    having count(*) > 1
),

copies as not materialized (
    select in_multi_record_calls.*, redelivered.first_copy_ordinal
    from in_multi_record_calls
    join redelivered using (source_id, call_id, source_record_id)
    where in_multi_record_calls.record_ordinal <> redelivered.first_copy_ordinal
),

-- FreeSWITCH b-legs: a record whose id another record of its source names as its b-leg belongs to that call
a_legs as not materialized (
    select source_id, peer_record_id, min(record_ordinal) as a_leg_ordinal
    from records
    where peer_record_id is not null and peer_record_id <> ''
    group by all
),

legs as not materialized (
    select
        linked.*,
        a_legs.a_leg_ordinal,
        count(*) over call as legs_in_call,
        bool_or(record_sequence is not null) over call as is_partial_call,
        (sum(billsec) over call)::bigint as call_billsec,
        -- forked legs: the answered leg that talked longest is billed; partials: the first carries the call
        first_value(record_ordinal) over (call order by billsec desc, record_ordinal) as longest_leg_ordinal,
        first_value(record_ordinal) over (call order by record_ordinal) as first_leg_ordinal
    from in_multi_record_calls as linked
    anti join copies using (record_ordinal)
    left join a_legs
        on a_legs.source_id = linked.source_id
        and a_legs.peer_record_id = linked.source_record_id
        and a_legs.a_leg_ordinal <> linked.record_ordinal
    window call as (partition by linked.source_id, linked.call_id)
    union all by name
    -- a call of one record is its own leg (a FreeSWITCH b-leg still merges into the a-leg that names it)
    select
        linked.*,
        a_legs.a_leg_ordinal,
        1 as legs_in_call,
        record_sequence is not null as is_partial_call,
        billsec::bigint as call_billsec,
        record_ordinal as longest_leg_ordinal,
        record_ordinal as first_leg_ordinal
    from named as linked
    anti join multi_record_calls using (source_id, call_id)
    left join a_legs
        on a_legs.source_id = linked.source_id
        and a_legs.peer_record_id = linked.source_record_id
        and a_legs.a_leg_ordinal <> linked.record_ordinal
),

with_leg_rule as not materialized (
    select
        *,
        case
            when a_leg_ordinal is not null then 'LEG_MERGED'
            when is_partial_call and record_ordinal <> first_leg_ordinal then 'PARTIAL_MERGED'
            when not is_partial_call and legs_in_call > 1 and record_ordinal <> longest_leg_ordinal then 'LEG_MERGED'
        end as leg_reason,
        case
            when a_leg_ordinal is not null then a_leg_ordinal
            when is_partial_call then first_leg_ordinal
            else longest_leg_ordinal
        end as merged_into_ordinal
    from legs
),

calls as not materialized (
    select
        * exclude (a_leg_ordinal, legs_in_call, is_partial_call, call_billsec, longest_leg_ordinal,
                   first_leg_ordinal, leg_reason, merged_into_ordinal)
          replace (case when is_partial_call then call_billsec else billsec end as billsec,
                   case when is_partial_call and service = 'voice' then call_billsec else units end as units)
    from with_leg_rule
    where leg_reason is null
    union all by name
    -- one scan for the records of one event each and those intake already decided (they pass through)
    select * from records where status <> 'ok' or (status = 'ok' and (call_id is null or call_id = ''))
),

-- the account that owned the charged number on the day of the call (numbers are reassigned: dates matter); a
-- record intake already decided gets none
resolved as not materialized (
    select
        calls.*,
        service_numbers.account_id,
        service_numbers.service_state
    from calls
    left join service_numbers
        on service_numbers.service_number = calls.charged_number
        and calls.status = 'ok'
        and calls.call_date >= service_numbers.valid_from
        and (service_numbers.valid_to is null or calls.call_date < service_numbers.valid_to)
)

-- one row per record of the cycle, in no particular order: the calls with their account and the records intake
-- already decided, then the legs and partial records merged into their call
select
    file_id, line_no, status, reason, source_id, source_record_id, charged_number, called_number, start_utc,
    answer_utc, billsec, service, units, event_code, account_id, service_state,
    null::varchar as leg_reason,
    null::bigint as merged_into_ordinal
from resolved
union all
select
    file_id, line_no, status, reason, source_id, source_record_id, charged_number, called_number, start_utc,
    answer_utc, billsec, service, units, event_code, null::varchar as account_id,
    null::varchar as service_state,
    leg_reason,
    merged_into_ordinal
from with_leg_rule
where leg_reason is not null
union all
select
    file_id, line_no, status, reason, source_id, source_record_id, charged_number, called_number, start_utc,
    answer_utc, billsec, service, units, event_code, null::varchar as account_id,
    null::varchar as service_state,
    'DUPLICATE_SOURCE_ID' as leg_reason,
    first_copy_ordinal as merged_into_ordinal
from copies
