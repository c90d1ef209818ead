"""The Dagster layer of cdrbill: assets per stage, partitions, resources, checks, jobs and schedules.

Thin by design: each asset reads its inputs, calls `pipeline`, writes its output and reports metadata.
"""
