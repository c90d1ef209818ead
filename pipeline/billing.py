"""The bill run's charges: per billable account, the prorated monthly plan charge, one usage line per service
number and the taxes of each state the lines are sourced to (``sql/billing.sql``)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.cycles import BillCycle
from pipeline.lake import partition_dir, replace_partition
from pipeline.rating import RATED
from pipeline.sql import read_sql

CHARGES = "charges"


def charge_lines(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """The charge lines of every billable account from the views ``rated`` and ``cycle_params`` and the
    reference tables: prorated plan, usage per service number, taxes per sourced state."""
    return con.sql(read_sql("billing.sql"))


def compute_charges(con: duckdb.DuckDBPyConnection, lake: Path, cycle: BillCycle) -> dict[str, int]:
    """Write ``lake/charges/cycle=C/charge_lines.parquet``: every charge line of every billable account
    (reference tables registered on ``con``)."""
    rated = partition_dir(lake, RATED, cycle=cycle.key) / "rated.parquet"
    con.execute(f"create or replace temp view rated as select * from read_parquet('{rated.as_posix()}')")
    con.execute(
        "create or replace temp table cycle_params as select ?::varchar as cycle, ?::date as period_start, "
        "?::date as period_end, ?::integer as cycle_days",
        [cycle.key, cycle.start, cycle.end, cycle.days],
    )
    lines = charge_lines(con)
    return replace_partition(lake, partition_dir(lake, CHARGES, cycle=cycle.key), {"charge_lines": lines})
