-- title: Discarded records by rule
-- question: How many records were dropped by each written rule (unanswered, busy, failed …), per source?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: source_id, reason, records, files
select
    source_id,
    reason,
    count(*) as records,
    count(distinct file_id) as files
from discarded
where cycle = $cycle
group by all
order by records desc, source_id, reason
