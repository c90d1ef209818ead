-- title: Quarantined files
-- question: Which files were refused whole, why, and what fixes them?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: file_id, source_id, file_name, registered_at, reason, reason_detail, fix
select
    usage_files.file_id,
    usage_files.source_id,
    usage_files.file_name,
    usage_files.registered_at,
    usage_files.reason,
    usage_files.reason_detail,
    quarantine_reasons.fix
from usage_files
left join quarantine_reasons on quarantine_reasons.code = usage_files.reason
where usage_files.registered_cycle = $cycle
    and usage_files.status = 'quarantined'
order by usage_files.file_id
