-- title: Print batches
-- question: Which print batches did the cycle produce, with how many invoices, reminders and notices, and how many pages?
-- param: cycle varchar  the bill cycle, YYYY-MM
-- columns: batch_id, documents, invoices, reminders, notices, pages, batched_at
select
    batch_id,
    count(*) as documents,
    count(*) filter (where kind = 'invoice') as invoices,
    count(*) filter (where kind = 'reminder') as reminders,
    count(*) filter (where kind = 'notice') as notices,
    sum(pages)::bigint as pages,
    max(batched_at) as batched_at
from print_batch_items
where cycle = $cycle
group by batch_id
order by batch_id
