-- mediation.sql: the cycle's calls (view mediation_calls: sql/mediation_calls.sql's file, the leg rules applied
-- and the account resolved at the call time) and their duplicates (views source_id_duplicates,
-- content_duplicates: sql/mediation_*_duplicates.sql) → one mediation outcome per record, unsorted:
-- normalised (billable, with its account), suspended (reason), duplicate (of which record) or discarded
-- (by a written rule, including the legs and partial records merged into the one event of their call). The
-- outcome is narrow — the record's key (file_id, line_no) and what mediation decides: status, reason, billed
-- seconds and units (a stitched call's total), service and event code (a service code's value-added event),
-- account, and the record it duplicates or was merged into;
-- pipeline/mediation.py puts each outcome beside its usage record (every column, the raw text) per stream.
-- Inputs: those views and service_numbers (reference). Every step is "not materialized": a step read twice is
-- computed twice (a scan of the calls file) rather than held whole in memory (a materialised step does not
-- spill); the large joins of duplicate detection run before, each in its own statement.

with

calls as not materialized (
    select * from mediation_calls
),

-- the calls an account held at the call time
billable as not materialized (
    select * from billable_calls
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

duplicates as not materialized (
    select record_ordinal, first_ordinal, 'DUPLICATE_SOURCE_ID' as reason from source_id_duplicates
    union all
    select record_ordinal, first_ordinal, 'DUPLICATE_CONTENT' as reason from content_duplicates
),

outcomes as not materialized (
    select file_id, line_no, status, reason, billsec, units, service, event_code,
           null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no,
           null::integer as merged_into_file_id, null::uinteger as merged_into_line_no
    from calls where status <> 'ok'
    union all
    select file_id, line_no, 'discarded' as status, leg_reason as reason, billsec, units, service, event_code,
           null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no,
           (merged_into_ordinal // 4294967296)::integer as merged_into_file_id,
           (merged_into_ordinal % 4294967296)::uinteger as merged_into_line_no
    from calls where leg_reason is not null and leg_reason <> 'DUPLICATE_SOURCE_ID'
    union all
    -- a leg or partial record its source delivered again: a duplicate of its earliest copy
    -- (sql/mediation_calls.sql)
    select file_id, line_no, 'duplicate' as status, leg_reason as reason, billsec, units, service, event_code,
           null::varchar as account_id, null::varchar as service_state,
           (merged_into_ordinal // 4294967296)::integer as duplicate_of_file_id,
           (merged_into_ordinal % 4294967296)::uinteger as duplicate_of_line_no,
           null::integer as merged_into_file_id, null::uinteger as merged_into_line_no
    from calls where leg_reason = 'DUPLICATE_SOURCE_ID'
    union all
    select file_id, line_no, 'suspended' as status, resolve_reason as reason, billsec, units, service, event_code,
           null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no,
           null::integer as merged_into_file_id, null::uinteger as merged_into_line_no
    from unresolved
    union all
    select billable.file_id, billable.line_no,
           case when duplicates.reason is null then 'normalised' else 'duplicate' end as status,
           duplicates.reason as reason, billable.billsec, billable.units, billable.service,
           billable.event_code,
           billable.account_id, billable.service_state,
           (duplicates.first_ordinal // 4294967296)::integer as duplicate_of_file_id,
           (duplicates.first_ordinal % 4294967296)::uinteger as duplicate_of_line_no,
           null::integer as merged_into_file_id, null::uinteger as merged_into_line_no
    from billable
    left join duplicates using (record_ordinal)
)

-- in no particular order (a sort of every outcome does not spill: at 10M it ran out of 1 GB): pipeline/mediation.py
-- writes them split by file and block of lines, sorts a block as it reads it, then lays each file's outcomes
-- beside its records a chunk of lines at a time, row for row, and splits them into the four streams
select * from outcomes
