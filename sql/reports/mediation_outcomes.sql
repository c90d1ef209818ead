-- title: Mediation outcomes per file
-- question: For each file with records in the cycle, how many records left by each door — rated, suspended, duplicate, discarded — and do they add up to what was read?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: file_id, source_id, file_name, records, rated, suspended, duplicates, discarded, unaccounted
with

records_in as (
    select file_id, count(*) as records from usage_records where cycle = $cycle group by file_id
),

rated as (
    select file_id, count(*) as n from rated_usage where cycle = $cycle group by file_id
),

suspended as (
    select file_id, count(*) as n from suspense where cycle = $cycle group by file_id
),

duplicate as (
    select file_id, count(*) as n from duplicates where cycle = $cycle group by file_id
),

dropped as (
    select file_id, count(*) as n from discarded where cycle = $cycle group by file_id
)

select
    records_in.file_id,
    usage_files.source_id,
    usage_files.file_name,
    records_in.records,
    coalesce(rated.n, 0) as rated,
    coalesce(suspended.n, 0) as suspended,
    coalesce(duplicate.n, 0) as duplicates,
    coalesce(dropped.n, 0) as discarded,
    records_in.records - coalesce(rated.n, 0) - coalesce(suspended.n, 0) - coalesce(duplicate.n, 0)
        - coalesce(dropped.n, 0) as unaccounted
from records_in
left join usage_files using (file_id)
left join rated using (file_id)
left join suspended using (file_id)
left join duplicate using (file_id)
left join dropped using (file_id)
order by records_in.file_id
