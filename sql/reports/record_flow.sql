-- title: Record flow of the cycle
-- question: Did every record that entered the cycle leave by exactly one door (records in = rated + suspended + duplicate + discarded)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: records_in, rated, suspended, duplicates, discarded, unaccounted
with

doors as (
    select 'rated' as door, count(*) as records from rated_usage where cycle = $cycle
    union all
    select 'suspended', count(*) from suspense where cycle = $cycle
    union all
    select 'duplicate', count(*) from duplicates where cycle = $cycle
    union all
    select 'discarded', count(*) from discarded where cycle = $cycle
)

select
    (select count(*) from usage_records where cycle = $cycle) as records_in,
    sum(records) filter (where door = 'rated')::bigint as rated,
    sum(records) filter (where door = 'suspended')::bigint as suspended,
    sum(records) filter (where door = 'duplicate')::bigint as duplicates,
    sum(records) filter (where door = 'discarded')::bigint as discarded,
    (select count(*) from usage_records where cycle = $cycle) - sum(records)::bigint as unaccounted
from doors
