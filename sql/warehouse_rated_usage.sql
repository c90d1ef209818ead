-- warehouse_rated_usage.sql: the warehouse's rated_usage, read from the rated cycles the view lake_rated names
-- (all of them, or the ones changed since the last publication: pipeline/warehouse_parts.py).
-- (rated events carry no raw text since the rating speed work; a cycle rated before still has it: left out;
-- union_by_name: cycles rated before a column existed, e.g. late_from_cycle, read it as null)
select columns(lambda c: c not in ('raw', 'status', 'disposition'))
from lake_rated
