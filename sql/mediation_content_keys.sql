-- mediation_content_keys.sql: the calls a duplicate by content is looked for among — the cycle's billable calls
-- that are not duplicates by source id (views billable_calls, source_id_duplicates) and the other cycles' call keys
-- within the duplicate window (prior_calls) — each with two 64-bit hashes that every pair of duplicates shares in
-- one or the other (sql/mediation_content_duplicates.sql has the rule). With no tolerance: answer_hash, of the
-- numbers, seconds, service and answer time (answered calls only), and start_hash, of the same with the start
-- time; with a tolerance (duplicate_tolerance_seconds > 0) the times may differ, so start_hash is of the numbers,
-- seconds and service alone. The units are in no hash: a stream written before they were kept has none, and then
-- they are not compared. pipeline/mediation.py counts the hashes in bounded parts (temp tables
-- repeated_answer_hashes, repeated_start_hashes: those held by two calls or more).

with

calls as not materialized (
    select source_id, charged_number, called_number, start_utc, answer_utc, billsec, service, units, record_ordinal,
           true as this_cycle
    from billable_calls
    anti join source_id_duplicates using (record_ordinal)
    union all
    select source_id, charged_number, called_number, start_utc, answer_utc, billsec, service, units, record_ordinal,
           false as this_cycle
    from prior_calls
)

select
    *,
    case
        when getvariable('duplicate_tolerance_seconds') = 0 and answer_utc is not null
            then hash(charged_number, called_number, billsec, service, answer_utc)
    end as answer_hash,
    case
        when getvariable('duplicate_tolerance_seconds') = 0
            then hash(charged_number, called_number, billsec, service, start_utc)
        else hash(charged_number, called_number, billsec, service)
    end as start_hash
from calls
