"""cdrbill's billing domain: formats, mediation, rating, billing, documents, delivery, warehouse.

Plain Python over polars and DuckDB. Nothing here imports Dagster: `assets/` is the orchestration shell.
"""
