-- warehouse_usage_records.sql: the warehouse's usage_records, read from the usage records of the loaded files
-- the view lake_usage_records names (all of them, or the ones changed since the last publication:
-- pipeline/warehouse_parts.py).
-- cycle: the cycle that counts the record — for late usage (ledger late_usage) the next open cycle that bills
-- it, with the cycle its call falls in as late_from_cycle, as in rated_usage and suspense
select
    records.* exclude (raw) replace (coalesce(late.billed_cycle, records.cycle) as cycle),
    late.call_cycle as late_from_cycle
from lake_usage_records as records
left join ledger.late_usage as late using (file_id, line_no)
