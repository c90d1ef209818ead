-- warehouse_rerate_events.sql: the warehouse's rerate_events, per event what a rerate changed, read from the
-- rerated cycles the view lake_rerate_events names (all of them, or the ones changed since the last
-- publication: pipeline/warehouse_parts.py)
select * from lake_rerate_events
