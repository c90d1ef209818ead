-- title: Duplicate records by source
-- question: How many records did each source send twice (and by which duplicate rule were they recognised)?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: source_id, reason, duplicates, files, seconds
select
    source_id,
    reason,
    count(*) as duplicates,
    count(distinct file_id) as files,
    sum(billsec) as seconds
from duplicates
where cycle = $cycle
group by all
order by duplicates desc, source_id, reason
