"""``state.duckdb``: the pipeline's own ledgers (files seen, invoices and their number series, deliveries).
Only pipeline steps write it, one at a time; analysts read the separately published warehouse instead."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.sql import read_sql

LOCK_WAIT_S = 120.0


def _connect(path: Path, wait_s: float) -> duckdb.DuckDBPyConnection:
    """Connect, waiting while another process briefly holds the file (e.g. ``cdrbill summary`` reading it):
    DuckDB refuses a second process at once; a run waits rather than fails."""
    deadline = time.monotonic() + wait_s
    pause = 0.05
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


@contextmanager
def open_state(path: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the state database, creating its ledgers when missing; closed on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, wait_s)
    try:
        con.execute(read_sql("state_schema.sql"))
        # the exact-money macros, for this connection only (never stored in the ledger file)
        con.execute(read_sql("macros.sql").replace("create or replace macro", "create or replace temp macro"))
        yield con
    finally:
        con.close()
    path.chmod(0o600)
