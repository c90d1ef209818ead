"""Publishing the analysts' warehouse: a new ``warehouse.duckdb`` is built aside and renamed over the old one,
so analysts holding the old file open read-only are never blocked and never see a half-written cycle
(``sql/warehouse.sql``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import first_row, parquet_glob
from pipeline.faults import crash_point
from pipeline.home import Home
from pipeline.lake import lake_tables
from pipeline.lake_fallbacks import LAKE_DATASETS, dataset_sql
from pipeline.reference import Reference
from pipeline.sql import read_sql
from pipeline.suspense import QUARANTINE_REASONS, catalogue

# the rerate delta reports (pipeline/rerating.py), read when some cycle was rerated, else these empty relations
RERATE_REPORTS = {
    "events": "select null::varchar as cycle, null::bigint as file_id, null::uinteger as line_no, "
    "null::varchar as account_id, null::varchar as charged_number, null::varchar as previous_status, "
    "null::varchar as new_status, null::varchar as previous_rate_row, null::varchar as new_rate_row, "
    "null::decimal(18, 6) as previous_charge, null::decimal(18, 6) as new_charge, null::decimal(18, 6) as delta "
    "where false",
    "accounts": "select null::varchar as cycle, null::varchar as account_id, null::decimal(18, 6) as previous_usage, "
    "null::decimal(18, 6) as new_usage, null::decimal(18, 6) as delta, null::decimal(18, 2) as new_usage_billed "
    "where false",
}

# delivery and recycling ledgers published as they are (a state.duckdb older than them simply lacks them)
OPTIONAL_LEDGERS = (
    "bounces",
    "delivery_preference_overrides",
    "cycle_approvals",
    "print_batch_items",
    "payment_reminders",
    # recycling (issue 7): the suspended records each recycle run resubmitted
    "recycled_records",
    # late usage (pipeline/late_usage.py): each late record and the cycle that bills it
    "late_usage",
    # the lines of each credit note (pipeline/credit_notes.py)
    "credit_note_lines",
)


def _register_sources(con: duckdb.DuckDBPyConnection, home: Home, reference: Reference) -> None:
    """The inputs of ``warehouse.sql`` besides the ledger: reference tables, catalogues, the lake's datasets
    and the rerate delta reports (each an empty relation of the same columns when the lake has none yet)."""
    for name, frame in reference.tables().items():
        con.register(f"ref_{name}", frame)
    con.register("ref_suspense_reasons", catalogue())
    quarantine = pl.DataFrame(QUARANTINE_REASONS, schema=["code", "meaning", "fix"], orient="row")
    con.register("ref_quarantine_reasons", quarantine)
    for name in LAKE_DATASETS:
        con.execute(f"create temp view lake_{name} as {dataset_sql(home.lake, name)}")
    for report, empty in RERATE_REPORTS.items():
        files = lake_tables(home.lake, "rerate", report)
        source = empty
        if files:
            source = (
                f"select * from read_parquet({parquet_glob(files)}, hive_partitioning = true, "
                "union_by_name = true)"
            )
        con.execute(f"create temp view lake_rerate_{report} as {source}")


def _publish_optional_ledgers(con: duckdb.DuckDBPyConnection) -> None:
    """Copy the ledgers of ``OPTIONAL_LEDGERS`` that exist in the attached state database."""
    for table in OPTIONAL_LEDGERS:
        exists = first_row(
            con,
            "select 1 from information_schema.tables where table_catalog = 'ledger' and table_name = ?",
            [table],
        )
        if exists:
            con.execute(f'create table "{table}" as select * from ledger."{table}"')


def publish_warehouse(home: Home, reference: Reference, *, memory_limit: str = "2GB") -> dict[str, int]:
    """Build and atomically swap in the warehouse; returns the row count of each table. DuckDB builds it under
    ``memory_limit``, spilling into the home's ``tmp/`` (unbounded, it held ~4 GB at 10M CDRs)."""
    staging = home.root / f".warehouse.{uuid.uuid4().hex}.duckdb"
    spill_dir = home.root / "tmp"
    spill_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    try:
        con = duckdb.connect(str(staging), config={"memory_limit": memory_limit})
        try:
            con.execute(f"set temp_directory = '{spill_dir.as_posix()}'")
            con.execute(f"attach '{home.state_db.as_posix()}' as ledger (read_only)")
            con.execute("set variable lake = ?", [home.lake.as_posix()])
            _register_sources(con, home, reference)
            con.execute(read_sql("warehouse.sql"))
            _publish_optional_ledgers(con)
            con.execute("detach ledger")
            tables = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_catalog = current_database() "
                    "and table_schema = 'main' order by 1"
                ).fetchall()
            ]
            for table in tables:
                counts[table] = int(con.execute(f'select count(*) from "{table}"').fetchall()[0][0])
            con.execute("checkpoint")
        finally:
            con.close()
        staging.chmod(0o644)
        crash_point("warehouse.built")
        os.replace(staging, home.warehouse_db)
    finally:
        staging.unlink(missing_ok=True)
        Path(f"{staging}.wal").unlink(missing_ok=True)
    return counts
