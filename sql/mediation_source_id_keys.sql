-- mediation_source_id_keys.sql: the calls a duplicate by source id is looked for among (views billable_calls:
-- this cycle's, prior_calls: the other cycles' call keys within the duplicate window), each with its key's 64-bit
-- hash. pipeline/mediation.py counts the hashes in bounded parts (the temp table repeated_key_hashes: those held
-- by two calls or more) before sql/mediation_source_id_duplicates.sql joins the calls whose hash repeats.

select source_id, source_record_id, record_ordinal, this_cycle, hash(source_id, source_record_id) as key_hash
from (
    select source_id, source_record_id, record_ordinal, true as this_cycle from billable_calls
    union all
    select source_id, source_record_id, record_ordinal, false as this_cycle from prior_calls
)
where source_record_id is not null and source_record_id <> ''
