-- mediation.sql: the cycle's usage records (normalised per file) → one mediation outcome per record:
-- normalised (billable, with its account), suspended (reason), duplicate (of which record) or discarded
-- (by a written rule, including the legs and partial records merged into the one event of their call). The
-- outcome is narrow — the record's key (file_id, line_no) and what mediation decides: status, reason, billed
-- seconds and units (a stitched call's total), account, and the record it duplicates or was merged into;
-- pipeline/mediation.py puts each outcome beside its usage record (every column, the raw text) per stream.
-- Inputs: cycle_records (lake/usage_records of the cycle), service_numbers (reference), prior_call_keys (the
-- call-key index of the other cycles: records already billed, within the duplicate window), and the
-- variable duplicate_tolerance_seconds (0 = exact start time; > 0 = the same call seen by two switches).
-- Every step is "not materialized": a step read twice is computed twice rather than held whole in memory (a
-- materialised step does not spill; at 1M this needs less CPU, 1.72 -> 1.48 s, and memory, 1,156 -> 866 MiB
-- peak). DuckDB 2.0.1 still materialises `resolved`, which at 10M does not fit 1 GB (docs/SCALE.md).

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
        call_date,
        billsec,
        service,
        units,
        file_id::bigint * 4294967296 + line_no as record_ordinal  -- file then line: earliest wins
    from cycle_records
),

candidates as not materialized (
    select * from records where status = 'ok'
),

-- only records that name a call (legs, partials) need the leg rules; the others are one event each
linked as not materialized (
    select * from candidates where call_id is not null and call_id <> ''
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
    from linked
    left join a_legs
        on a_legs.source_id = linked.source_id
        and a_legs.peer_record_id = linked.source_record_id
        and a_legs.a_leg_ordinal <> linked.record_ordinal
    window call as (partition by linked.source_id, linked.call_id)
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
                   case when is_partial_call then call_billsec else units end as units)
    from with_leg_rule
    where leg_reason is null
    union all by name
    select * from candidates where call_id is null or call_id = ''
),

-- the account that owned the charged number on the day of the call (numbers are reassigned: dates matter)
resolved as not materialized (
    select
        calls.*,
        service_numbers.account_id,
        service_numbers.service_state
    from calls
    left join service_numbers
        on service_numbers.service_number = calls.charged_number
        and calls.call_date >= service_numbers.valid_from
        and (service_numbers.valid_to is null or calls.call_date < service_numbers.valid_to)
),

billable as not materialized (
    select * from resolved where account_id is not null
),

known_numbers as not materialized (
    select distinct service_number from service_numbers
),

-- the few calls no account held at the call time: a number nobody has, or one not in service that day
unresolved as not materialized (
    select
        resolved.*,
        case
            when known_numbers.service_number is null then 'UNKNOWN_SUBSCRIBER'
            else 'NOT_IN_SERVICE'
        end as resolve_reason
    from resolved
    left join known_numbers on known_numbers.service_number = resolved.charged_number
    where resolved.account_id is null
),

prior as not materialized (
    select * from prior_call_keys
    where start_utc >= (select min(start_utc) from cycle_records) - to_days(getvariable('duplicate_window_days'))
),

-- duplicate calls, first by the source's own unique id: the earliest file and line wins, this cycle's or
-- an earlier one's (the call-key index)
source_id_matches as not materialized (
    select later.record_ordinal, min(earlier.record_ordinal) as first_ordinal
    from billable as later
    join (
        select source_id, source_record_id, record_ordinal from billable
        union all
        select source_id, source_record_id, record_ordinal from prior
    ) as earlier
        on earlier.source_id = later.source_id
        and earlier.source_record_id = later.source_record_id
        and earlier.record_ordinal < later.record_ordinal
    where later.source_record_id is not null and later.source_record_id <> ''
    group by all
),

unique_by_source_id as not materialized (
    select billable.*
    from billable
    anti join source_id_matches using (record_ordinal)
),

-- then by content, across files and switches: same charged and called number, start, billed seconds and
-- service; with a tolerance, the start may differ by that many seconds between two sources
content_matches as not materialized (
    select later.record_ordinal, min(earlier.record_ordinal) as first_ordinal
    from unique_by_source_id as later
    join (
        select source_id, charged_number, called_number, start_utc, billsec, service, record_ordinal
        from unique_by_source_id
        union all
        select source_id, charged_number, called_number, start_utc, billsec, service, record_ordinal from prior
    ) as earlier
        on earlier.charged_number = later.charged_number
        and earlier.called_number is not distinct from later.called_number
        and earlier.billsec = later.billsec
        and earlier.service = later.service
        and earlier.record_ordinal < later.record_ordinal
        and (
            earlier.start_utc = later.start_utc
            or (
                earlier.source_id <> later.source_id
                and abs(epoch(earlier.start_utc) - epoch(later.start_utc))
                    <= getvariable('duplicate_tolerance_seconds')
            )
        )
    group by all
),

duplicates as not materialized (
    select record_ordinal, first_ordinal, 'DUPLICATE_SOURCE_ID' as reason from source_id_matches
    union all
    select record_ordinal, first_ordinal, 'DUPLICATE_CONTENT' as reason from content_matches
),

outcomes as not materialized (
    select file_id, line_no, status, reason, billsec, units,
           null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no,
           null::integer as merged_into_file_id, null::uinteger as merged_into_line_no
    from records where status <> 'ok'
    union all
    select file_id, line_no, 'discarded' as status, leg_reason as reason, billsec, units,
           null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no,
           (merged_into_ordinal // 4294967296)::integer as merged_into_file_id,
           (merged_into_ordinal % 4294967296)::uinteger as merged_into_line_no
    from with_leg_rule where leg_reason is not null
    union all
    select file_id, line_no, 'suspended' as status, resolve_reason as reason, billsec, units,
           null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no,
           null::integer as merged_into_file_id, null::uinteger as merged_into_line_no
    from unresolved
    union all
    select billable.file_id, billable.line_no,
           case when duplicates.reason is null then 'normalised' else 'duplicate' end as status,
           duplicates.reason as reason, billable.billsec, billable.units,
           billable.account_id, billable.service_state,
           (duplicates.first_ordinal // 4294967296)::integer as duplicate_of_file_id,
           (duplicates.first_ordinal % 4294967296)::uinteger as duplicate_of_line_no,
           null::integer as merged_into_file_id, null::uinteger as merged_into_line_no
    from billable
    left join duplicates using (record_ordinal)
)

select * from outcomes
order by file_id, line_no
-- in file and line order, as the usage records are stored: pipeline/mediation.py lays each file's outcomes
-- beside its records a chunk of lines at a time, row for row, and splits them into the four streams
