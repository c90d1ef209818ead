"""``state.duckdb``: the pipeline's own ledgers (files seen, invoices and their number series, deliveries).
Only pipeline steps write it, one at a time; analysts read the separately published warehouse instead."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.sql import read_sql


@contextmanager
def open_state(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the state database, creating its ledgers when missing; closed on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(read_sql("state_schema.sql"))
        # the exact-money macros, for this connection only (never stored in the ledger file)
        con.execute(read_sql("macros.sql").replace("create or replace macro", "create or replace temp macro"))
        yield con
    finally:
        con.close()
    path.chmod(0o600)
