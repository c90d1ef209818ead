"""The DuckDB session every data step runs in: in-memory, memory-bounded (spills to disk past the limit),
with the exact-money macros of ``sql/macros.sql`` and the reference tables held by name, once, as DuckDB tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.reference import Reference
from pipeline.sql import read_sql


@contextmanager
def session(
    reference: Reference | None = None, *, memory_limit: str = "2GB", spill_dir: Path | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection for one step; the reference tables are copied into it (``hold_tables``)
    and the session keeps no reference to the frames: a caller that does not keep them either (``session(
    load_reference(…))``) has the reference held once, inside DuckDB's memory limit."""
    con = duckdb.connect(":memory:", config={"memory_limit": memory_limit, "preserve_insertion_order": False})
    try:
        if spill_dir is not None:
            spill_dir.mkdir(parents=True, exist_ok=True)
            con.execute(f"set temp_directory = '{spill_dir.as_posix()}'")
        con.execute("set timezone = 'UTC'")
        con.execute(read_sql("macros.sql"))
        if reference is not None:
            hold_tables(con, reference.tables())
            reference = None  # the frames can go as soon as the caller drops them
        yield con
    finally:
        con.close()


def hold_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pl.DataFrame]) -> None:
    """Each frame copied into a DuckDB table of its name, in its row order. A table counts against the
    session's memory limit and can spill; ``con.register`` would keep an Arrow copy of every frame for the
    session's life outside that limit (+216 MiB with a 600,117-row rate deck)."""
    con.execute("set preserve_insertion_order = true")
    try:
        for name, frame in tables.items():
            con.from_arrow(frame.to_arrow()).create(name)
    finally:
        con.execute("set preserve_insertion_order = false")


def parquet_glob(paths: list[Path]) -> str:
    """A DuckDB list literal of Parquet paths (quoted)."""
    quoted = ", ".join("'" + p.as_posix().replace("'", "''") + "'" for p in paths)
    return f"[{quoted}]"


def first_row(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> tuple | None:
    """The first row of a query, reading the result to its end (DuckDB 2 refuses new work on a connection
    while a result is still open)."""
    rows = con.execute(query, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> Any:
    """The single value of a one-row, one-column query."""
    row = first_row(con, query, params)
    return row[0] if row else None
