-- mediation.sql: the cycle's usage records (normalised per file) → one mediation outcome per record:
-- normalised (billable, with its account), suspended (reason), duplicate (of which record) or discarded.
-- Inputs: cycle_records (lake/usage_records of the cycle), service_numbers (reference).

with

records as (
    select * from cycle_records
),

candidates as (
    select * from records where status = 'ok'
),

-- the account that owned the charged number on the day of the call (numbers are reassigned: dates matter)
resolved as (
    select
        candidates.file_id,
        candidates.line_no,
        service_numbers.account_id,
        service_numbers.service_state
    from candidates
    join service_numbers
        on service_numbers.service_number = candidates.charged_number
        and candidates.call_date >= service_numbers.valid_from
        and (service_numbers.valid_to is null or candidates.call_date < service_numbers.valid_to)
),

known_numbers as (
    select distinct service_number from service_numbers
),

with_account as (
    select
        candidates.*,
        resolved.account_id,
        resolved.service_state,
        case
            when resolved.account_id is not null then null
            when known_numbers.service_number is null then 'UNKNOWN_SUBSCRIBER'
            else 'NOT_IN_SERVICE'
        end as resolve_reason
    from candidates
    left join resolved using (file_id, line_no)
    left join known_numbers on known_numbers.service_number = candidates.charged_number
),

billable as (
    select * from with_account where resolve_reason is null
),

-- duplicate calls, first by the source's own unique id: the earliest file and line wins
by_source_id as (
    select
        *,
        case when source_record_id is null or source_record_id = '' then 1
             else row_number() over source_key end as source_rank,
        first_value(file_id) over source_key as first_file_id,
        first_value(line_no) over source_key as first_line_no
    from billable
    window source_key as (partition by source_id, source_record_id order by file_id, line_no)
),

-- then by content, across files and switches: same charged and called number, start, billed seconds, service
by_content as (
    select
        * exclude (first_file_id, first_line_no),
        row_number() over content_key as content_rank,
        first_value(file_id) over content_key as first_file_id,
        first_value(line_no) over content_key as first_line_no
    from by_source_id
    where source_rank = 1
    window content_key as (
        partition by charged_number, called_number, start_utc, billsec, service order by file_id, line_no
    )
),

outcomes as (
    select *, null::varchar as account_id, null::varchar as service_state,
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no
    from records where status <> 'ok'
    union all by name
    select * exclude (resolve_reason) replace ('suspended' as status, resolve_reason as reason),
           null::integer as duplicate_of_file_id, null::uinteger as duplicate_of_line_no
    from with_account where resolve_reason is not null
    union all by name
    select * exclude (source_rank, first_file_id, first_line_no, resolve_reason)
               replace ('duplicate' as status, 'DUPLICATE_SOURCE_ID' as reason),
           first_file_id as duplicate_of_file_id, first_line_no as duplicate_of_line_no
    from by_source_id where source_rank > 1
    union all by name
    select * exclude (source_rank, content_rank, first_file_id, first_line_no, resolve_reason)
               replace (case when content_rank = 1 then 'normalised' else 'duplicate' end as status,
                        case when content_rank = 1 then null else 'DUPLICATE_CONTENT' end as reason),
           case when content_rank > 1 then first_file_id end as duplicate_of_file_id,
           case when content_rank > 1 then first_line_no end as duplicate_of_line_no
    from by_content
)

-- shared-contract columns of normalised events (the mediation branch derives them from the sources; until
-- then: units = billsec for voice, the others unknown)
select
    *,
    case when service = 'voice' then billsec end::bigint as units,
    null::integer as sms_chars,
    null::varchar as event_code,
    null::varchar as visited_country
from outcomes
order by file_id, line_no
