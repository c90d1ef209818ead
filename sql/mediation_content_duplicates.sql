-- mediation_content_duplicates.sql: the cycle's billable calls that are not duplicates by source id (views
-- billable_calls, source_id_duplicates) → the duplicate calls by content, across files and switches: same
-- charged and called number, answer time, billed seconds, service and units (an SMS's messages, a data
-- session's bytes: both bill no seconds), each with the record it duplicates (the
-- earliest file and line wins, this cycle's or an earlier one's: prior_calls). Two switches that see one call
-- start their legs at different moments but see it answered at the same one. Where either record has no answer
-- time (a source that gave none, a file loaded before it was kept) the start times are compared instead. With
-- the variable duplicate_tolerance_seconds > 0 the times of two different sources may differ by that many
-- seconds (clocks a little apart). Streamed to a Parquet file by pipeline/mediation.py.
-- First the candidates, by groupings of 64-bit hashes (not a join of every call: at 50M CDRs that join spilled
-- 6.5 GB): with no tolerance, the calls whose numbers, seconds, service and answer time hash alike with another
-- answered call's, or whose numbers, seconds, service and start time hash alike with another call's; with a
-- tolerance, those whose numbers, seconds and service do. Every pair of duplicates is in one of those groups;
-- two calls that only hash alike are candidates too, and the join of the candidates on the values themselves
-- tells them apart: a hash collision costs a comparison, never a call. The units are in no hash: a stream
-- written before they were kept has none, and then they are not compared.

with

unique_by_source_id as not materialized (
    select billable_calls.*
    from billable_calls
    anti join source_id_duplicates using (record_ordinal)
),

calls as not materialized (
    select source_id, charged_number, called_number, start_utc, answer_utc, billsec, service, units, record_ordinal,
           true as this_cycle
    from unique_by_source_id
    union all
    select source_id, charged_number, called_number, start_utc, answer_utc, billsec, service, units, record_ordinal,
           false as this_cycle
    from prior_calls
),

content_hashed as not materialized (
    select *, hash(charged_number, called_number, billsec, service) as content_hash
    from calls
),

hashed as not materialized (
    select
        *,
        case
            when getvariable('duplicate_tolerance_seconds') = 0 and answer_utc is not null
                then hash(content_hash, answer_utc)
        end as answer_hash,
        case
            when getvariable('duplicate_tolerance_seconds') = 0 then hash(content_hash, start_utc)
            else content_hash
        end as start_hash
    from content_hashed
),

repeated_answers as materialized (
    select answer_hash from hashed where answer_hash is not null group by answer_hash having count(*) > 1
),

repeated_starts as materialized (
    select start_hash from hashed group by start_hash having count(*) > 1
),

candidates as materialized (
    select * from hashed
    where answer_hash in (select answer_hash from repeated_answers)
        or start_hash in (select start_hash from repeated_starts)
)

select
    later.record_ordinal,
    min(earlier.record_ordinal) as first_ordinal
from candidates as later
join candidates as earlier
    on earlier.charged_number = later.charged_number
    and earlier.called_number is not distinct from later.called_number
    and earlier.billsec = later.billsec
    and earlier.service = later.service
    -- units = billed seconds for voice; a stream written before units were kept has none: not compared
    and (earlier.units is null or earlier.units = later.units)
    and earlier.record_ordinal < later.record_ordinal
    and abs(epoch(
        case
            when earlier.answer_utc is null or later.answer_utc is null then earlier.start_utc - later.start_utc
            else earlier.answer_utc - later.answer_utc
        end
    )) <= case when earlier.source_id <> later.source_id then getvariable('duplicate_tolerance_seconds') else 0 end
where later.this_cycle
group by all
