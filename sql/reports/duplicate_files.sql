-- title: Duplicate files
-- question: Which landed files were refused whole as copies of a file already loaded (and of which)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: file_id, source_id, file_name, registered_at, duplicate_of, original_file_name,
-- columns: original_registered_at
select
    copies.file_id,
    copies.source_id,
    copies.file_name,
    copies.registered_at,
    copies.duplicate_of,
    originals.file_name as original_file_name,
    originals.registered_at as original_registered_at
from usage_files as copies
left join usage_files as originals on originals.file_id = copies.duplicate_of
where copies.registered_cycle = $cycle
    and copies.status = 'duplicate_file'
order by copies.file_id
