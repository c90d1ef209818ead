-- mediation_source_id_duplicates.sql: the cycle's billable calls → the duplicate calls by the source's own unique
-- id, each with the record it duplicates: the earliest file and line wins, this cycle's or an earlier one's
-- (view source_id_keys: sql/mediation_source_id_keys.sql). Only the calls whose key hashes alike with another
-- call's are joined (temp table repeated_key_hashes, counted by pipeline/mediation.py): every pair of duplicates
-- is among them, and two different keys that only hash alike are told apart by the join on the key itself — a
-- hash collision costs a comparison, never a call. (A join of every call's key spilled 2.6 GB at 50M CDRs.)
-- Streamed to a Parquet file by pipeline/mediation.py.

with

candidates as materialized (
    select * from source_id_keys
    where key_hash in (select key_hash from repeated_key_hashes)
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
