-- mediation.sql: the cycle's calls (sql/mediation_calls.sql: the leg rules applied, the account resolved at
-- the call time) → one mediation outcome per record: normalised (billable, with its account), suspended
-- (reason), duplicate (of which record) or discarded (by a written rule, including the legs and partial records
-- merged into the one event of their call). The outcome is narrow — the record's key (file_id, line_no) and
-- what mediation decides: status, reason, billed seconds and units (a stitched call's total), account, and the
-- record it duplicates or was merged into; pipeline/mediation.py puts each outcome beside its usage record
-- (every column, the raw text) per stream.
-- Inputs: mediation_calls (the Parquet file sql/mediation_calls.sql wrote), service_numbers (reference),
-- prior_call_keys (the call-key index of the other cycles: records already billed, within the duplicate
-- window), and the variable duplicate_tolerance_seconds (0 = exact start time; > 0 = the same call seen by two
-- switches).
-- Every step is "not materialized": a step read twice is computed twice (a scan of the calls file) rather than
-- held whole in memory (a materialised step does not spill).

with

calls as not materialized (
    select
        *,
        file_id::bigint * 4294967296 + line_no as record_ordinal  -- file then line: earliest wins
    from mediation_calls
),

-- the calls an account held at the call time
billable as not materialized (
    select * from calls where status = 'ok' and leg_reason is null and account_id is not null
),

known_numbers as not materialized (
    select distinct service_number from service_numbers
),

-- the few calls no account held at the call time: a number nobody has, or one not in service that day
unresolved as not materialized (
    select
        calls.*,
        case
            when known_numbers.service_number is null then 'UNKNOWN_SUBSCRIBER'
            else 'NOT_IN_SERVICE'
        end as resolve_reason
    from calls
    left join known_numbers on known_numbers.service_number = calls.charged_number
    where calls.status = 'ok' and calls.leg_reason is null and calls.account_id is null
),

prior as not materialized (
    select * from prior_call_keys
    where start_utc >= (select min(start_utc) from mediation_calls) - to_days(getvariable('duplicate_window_days'))
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
    from calls where status <> 'ok'
    union all
    select file_id, line_no, 'discarded' as status, leg_reason as reason, billsec, units,
           null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no,
           (merged_into_ordinal // 4294967296)::integer as merged_into_file_id,
           (merged_into_ordinal % 4294967296)::uinteger as merged_into_line_no
    from calls where leg_reason is not null
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
