-- mediation_content_duplicates.sql: the cycle's billable calls that are not duplicates by source id → the
-- duplicate calls by content, across files and switches: same charged and called number, answer time, billed
-- seconds, service and units (an SMS's messages, a data session's bytes: both bill no seconds), each with the
-- record it duplicates (the earliest file and line wins, this cycle's or an earlier one's; view content_keys:
-- sql/mediation_content_keys.sql). Two switches that see one call start their legs at different moments but see
-- it answered at the same one. Where either record has no answer time (a source that gave none, a file loaded
-- before it was kept) the start times are compared instead. With the variable duplicate_tolerance_seconds > 0 the
-- times of two different sources may differ by that many seconds (clocks a little apart).
-- Only the calls whose answer_hash or start_hash repeats are joined (temp tables repeated_answer_hashes,
-- repeated_start_hashes, counted by pipeline/mediation.py): every pair of duplicates shares one of the two, and
-- calls that only hash alike are told apart by the join on the values — a hash collision costs a comparison, never
-- a call. (A join of every call spilled 6.5 GB at 50M CDRs.) Streamed to a Parquet file by pipeline/mediation.py.

with

candidates as materialized (
    select * from content_keys
    where answer_hash in (select answer_hash from repeated_answer_hashes)
        or start_hash in (select start_hash from repeated_start_hashes)
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
