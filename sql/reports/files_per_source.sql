-- title: Files per source
-- question: How many files did each usage source deliver for the cycle, how many were loaded, duplicates or quarantined, and how many records and bytes?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: source_id, files, loaded, duplicate_files, quarantined, records, bytes, first_registered,
-- columns: last_registered
select
    coalesce(source_id, '(unknown source)') as source_id,
    count(*) as files,
    count(*) filter (where status = 'loaded') as loaded,
    count(*) filter (where status = 'duplicate_file') as duplicate_files,
    count(*) filter (where status = 'quarantined') as quarantined,
    coalesce(sum(records), 0) as records,
    sum(size_bytes) as bytes,
    min(registered_at) as first_registered,
    max(registered_at) as last_registered
from usage_files
where registered_cycle = $cycle
group by all
order by source_id
