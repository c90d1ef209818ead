-- title: Suspended records
-- question: Which records exactly are in suspense (file, line, numbers, reason) — the work list for the suspense desk?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: file_id, line_no, source_id, file_name, stage, reason, charged_number, called_number, start_utc,
-- columns: billsec, age_days
select
    suspense.file_id,
    suspense.line_no,
    suspense.source_id,
    usage_files.file_name,
    suspense.stage,
    suspense.reason,
    suspense.charged_number,
    suspense.called_number,
    suspense.start_utc,
    suspense.billsec,
    suspense.age_days
from suspense
left join usage_files using (file_id)
where suspense.cycle = $cycle
order by suspense.file_id, suspense.line_no
