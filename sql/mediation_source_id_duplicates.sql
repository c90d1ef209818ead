-- mediation_source_id_duplicates.sql: the cycle's billable calls (view billable_calls: sql/mediation_calls.sql's
-- calls with an account at the call time) → the duplicate calls by the source's own unique id, each with the
-- record it duplicates: the earliest file and line wins, this cycle's or an earlier one's (prior_calls: the
-- other cycles' call keys within the duplicate window). One join, streamed to a Parquet file by pipeline/mediation.py:
-- its hash table spills past DuckDB's memory limit.

select
    later.record_ordinal,
    min(earlier.record_ordinal) as first_ordinal
from billable_calls as later
join (
    select source_id, source_record_id, record_ordinal from billable_calls
    union all
    select source_id, source_record_id, record_ordinal from prior_calls
) as earlier
    on earlier.source_id = later.source_id
    and earlier.source_record_id = later.source_record_id
    and earlier.record_ordinal < later.record_ordinal
where later.source_record_id is not null and later.source_record_id <> ''
group by all
