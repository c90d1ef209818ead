-- mediation_content_duplicates.sql: the cycle's billable calls that are not duplicates by source id (views
-- billable_calls, source_id_duplicates) → the duplicate calls by content, across files and switches: same
-- charged and called number, answer time, billed seconds, service and units (an SMS's messages, a data
-- session's bytes: both bill no seconds), each with the record it duplicates (the
-- earliest file and line wins, this cycle's or an earlier one's: prior_calls). Two switches that see one call
-- start their legs at different moments but see it answered at the same one. Where either record has no answer
-- time (a source that gave none, a file loaded before it was kept) the start times are compared instead. With
-- the variable duplicate_tolerance_seconds > 0 the times of two different sources may differ by that many
-- seconds (clocks a little apart). One join on the numbers, seconds and service, the times a filter of it;
-- streamed to a Parquet file by pipeline/mediation.py.

with

unique_by_source_id as not materialized (
    select billable_calls.*
    from billable_calls
    anti join source_id_duplicates using (record_ordinal)
)

select
    later.record_ordinal,
    min(earlier.record_ordinal) as first_ordinal
from unique_by_source_id as later
join (
    select source_id, charged_number, called_number, start_utc, answer_utc, billsec, service, units, record_ordinal
    from unique_by_source_id
    union all
    select source_id, charged_number, called_number, start_utc, answer_utc, billsec, service, units, record_ordinal
    from prior_calls
) as earlier
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
group by all
