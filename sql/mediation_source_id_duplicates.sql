-- mediation_source_id_duplicates.sql: the cycle's billable calls (view billable_calls: sql/mediation_calls.sql's
-- calls with an account at the call time) → the duplicate calls by the source's own unique id, each with the
-- record it duplicates: the earliest file and line wins, this cycle's or an earlier one's (prior_calls: the
-- other cycles' call keys within the duplicate window). Streamed to a Parquet file by pipeline/mediation.py.
-- First the candidates: the calls whose key (source, unique id) hashes alike with another call's — a grouping of
-- 64-bit hashes, not a join of every call's key (at 50M CDRs that join spilled 2.6 GB). Two different keys that
-- hash alike are candidates too, and the join of the candidates on the key itself tells them apart: a hash
-- collision costs a comparison, never a call.

with

keyed as not materialized (
    select source_id, source_record_id, record_ordinal, true as this_cycle,
           hash(source_id, source_record_id) as key_hash
    from billable_calls
    where source_record_id is not null and source_record_id <> ''
    union all
    select source_id, source_record_id, record_ordinal, false as this_cycle,
           hash(source_id, source_record_id) as key_hash
    from prior_calls
    where source_record_id is not null and source_record_id <> ''
),

repeated as materialized (
    select key_hash
    from keyed
    group by key_hash
    having count(*) > 1
),

candidates as materialized (
    select * from keyed semi join repeated using (key_hash)
)

select
    later.record_ordinal,
    min(earlier.record_ordinal) as first_ordinal
from candidates as later
join candidates as earlier
    on earlier.source_id = later.source_id
    and earlier.source_record_id = later.source_record_id
    and earlier.record_ordinal < later.record_ordinal
where later.this_cycle
group by all
