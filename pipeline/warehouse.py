"""Publishing the analysts' warehouse: a new ``warehouse.duckdb`` is built aside and renamed over the old one,
so analysts holding the old file open read-only are never blocked and never see a half-written cycle
(``sql/warehouse.sql``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb

from pipeline.faults import crash_point
from pipeline.home import Home
from pipeline.reference import Reference
from pipeline.sql import read_sql


def publish_warehouse(home: Home, reference: Reference) -> dict[str, int]:
    """Build and atomically swap in the warehouse; returns the row count of each table."""
    staging = home.root / f".warehouse.{uuid.uuid4().hex}.duckdb"
    counts: dict[str, int] = {}
    try:
        con = duckdb.connect(str(staging))
        try:
            con.execute(f"attach '{home.state_db.as_posix()}' as ledger (read_only)")
            con.execute("set variable lake = ?", [home.lake.as_posix()])
            for name, frame in reference.tables().items():
                con.register(f"ref_{name}", frame)
            con.execute(read_sql("warehouse.sql"))
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
