"""Publishing the analysts' warehouse: a new ``warehouse.duckdb`` is built aside and renamed over the old one,
so analysts holding the old file open read-only are never blocked and never see a half-written cycle
(``sql/warehouse.sql``). The large tables are kept from the published warehouse part by part: only the
loaded files and rated or rerated cycles that changed since are read from the lake again (``pipeline/warehouse_parts.py``),
so a publication costs what changed, not every month the lake keeps."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import first_row
from pipeline.faults import crash_point
from pipeline.home import Home
from pipeline.lake import lake_tables
from pipeline.lake_fallbacks import LAKE_DATASETS, dataset_sql
from pipeline.reference import Reference
from pipeline.sql import read_sql
from pipeline.suspense import QUARANTINE_REASONS, catalogue
from pipeline.warehouse_parts import (
    INCREMENTAL_TABLES,
    Part,
    lake_parts,
    late_usage_digests,
    part_sql,
    rerate_report_sql,
)

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


@dataclass(frozen=True)
class Publication:
    """What a publication did: the row count of each table, 'full' or 'incremental', how many parts of the
    large tables were read from the lake and how many kept from the published warehouse, and why it was full."""

    counts: dict[str, int]
    mode: str
    parts_read: int
    parts_kept: int
    why_full: str = ""


class _PartsDoNotFit(Exception):
    """A changed part's columns are not those of the published table (a new column, another type)."""


def _register_sources(con: duckdb.DuckDBPyConnection, home: Home, reference: Reference) -> None:
    """The inputs of ``warehouse.sql`` besides the ledger: reference tables, catalogues, the lake's datasets
    (but the incremental tables' own) and the rerate report per account (each an empty relation of the same
    columns when the lake has none yet)."""
    for name, frame in reference.tables().items():
        con.register(f"ref_{name}", frame)
    con.register("ref_suspense_reasons", catalogue())
    quarantine = pl.DataFrame(QUARANTINE_REASONS, schema=["code", "meaning", "fix"], orient="row")
    con.register("ref_quarantine_reasons", quarantine)
    incremental = {spec.view for spec in INCREMENTAL_TABLES.values()}
    for name in LAKE_DATASETS:
        if f"lake_{name}" not in incremental:
            con.execute(f"create temp view lake_{name} as {dataset_sql(home.lake, name)}")
    accounts = lake_tables(home.lake, "rerate", "accounts")
    con.execute(f"create temp view lake_rerate_accounts as {rerate_report_sql(accounts, 'accounts')}")


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


def _published_parts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str] | None:
    """The parts the published warehouse (its copy, open as ``con``) was built from ((table, key) →
    fingerprint); None when there is none or it predates the parts (then the publication is full)."""
    if not first_row(con, "select 1 from information_schema.tables where table_name = 'publication_parts'"):
        return None
    rows = con.execute("select table_name, part, fingerprint from publication_parts").fetchall()
    return {(table, part): fingerprint for table, part, fingerprint in rows}


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The warehouse's tables."""
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = current_database() "
            "and table_schema = 'main' order by 1"
        ).fetchall()
    ]


def _build_incremental_table(
    con: duckdb.DuckDBPyConnection, lake: Path, table: str, read: list[Part], stale: list[str], *, full: bool
) -> None:
    """Build ``table`` from the parts ``read`` (full: every part; none: the dataset's empty relation), or bring
    the kept table up to date: the rows of the ``stale`` parts deleted, the ``read`` parts inserted."""
    spec = INCREMENTAL_TABLES[table]
    con.execute(f"create or replace temp view {spec.view} as {part_sql(lake, table, [p.file for p in read])}")
    select = read_sql(spec.sql)
    if full:
        con.execute(f'create table "{table}" as {select}')
        return
    if stale:
        con.execute(
            f'delete from "{table}" where {spec.key} in (select unnest(?::{spec.key_type}[]))', [stale]
        )
    if read:
        kept = {(c, t) for c, t, *_ in con.execute(f'describe "{table}"').fetchall()}
        changed = {(c, t) for c, t, *_ in con.execute(f"describe {select}").fetchall()}
        if not changed <= kept:
            raise _PartsDoNotFit(f"{table}: {sorted(changed - kept)}")
        con.execute(f'insert into "{table}" by name {select}')


def publish_warehouse(
    home: Home, reference: Reference, *, memory_limit: str = "2GB", full: bool = False
) -> Publication:
    """Build and atomically swap in the warehouse. DuckDB builds it under ``memory_limit``, spilling into the
    home's ``tmp/`` (unbounded, it held ~4 GB at 10M CDRs). Rule: the large tables' parts that did not change
    are kept from the published warehouse (``full``: every part read again); the result is the same as a full
    build's, row for row (a changed part whose columns no longer fit the kept table makes the build full)."""
    if full:
        return _publish(home, reference, memory_limit, why_full="asked for")
    try:
        return _publish(home, reference, memory_limit)
    except _PartsDoNotFit as misfit:
        return _publish(
            home, reference, memory_limit, why_full=f"a changed part does not fit the kept table ({misfit})"
        )


def _publish(home: Home, reference: Reference, memory_limit: str, *, why_full: str = "") -> Publication:
    """One publication (``publish_warehouse``): full when ``why_full`` says why, else from a copy of the published
    warehouse if there is one that names its parts (the copy, not the published file, is opened: analysts'
    read-only connections to it are never touched)."""
    staging = home.root / f".warehouse.{uuid.uuid4().hex}.duckdb"
    spill_dir = home.root / "tmp"
    spill_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not why_full and not home.warehouse_db.exists():
            why_full = "no published warehouse"
        if not why_full:
            shutil.copyfile(home.warehouse_db, staging)  # the kept parts come with it
        con = duckdb.connect(str(staging), config={"memory_limit": memory_limit})
        try:
            published = None if why_full else _published_parts(con)
            if published is None and not why_full:
                why_full = "the published warehouse does not name its parts (publication_parts)"
            # a warehouse from before the parts: start again from an empty file
            if published is None and _tables(con):
                con.close()
                staging.unlink()
                con = duckdb.connect(str(staging), config={"memory_limit": memory_limit})
            full = published is None
            # (table, key) → fingerprint of the parts in the published warehouse; none when full
            kept = published or {}
            con.execute(f"set temp_directory = '{spill_dir.as_posix()}'")
            for table in _tables(con):
                if table not in INCREMENTAL_TABLES:
                    con.execute(f'drop table "{table}"')
            con.execute(f"attach '{home.state_db.as_posix()}' as ledger (read_only)")
            parts = lake_parts(home.lake, late_usage_digests(con))
            current = {(part.table, part.key): part.fingerprint for part in parts}
            read = [part for part in parts if kept.get((part.table, part.key)) != part.fingerprint]
            con.execute("set variable lake = ?", [home.lake.as_posix()])
            con.execute("set variable publication = ?", ["full" if full else "incremental"])
            _register_sources(con, home, reference)
            for table in INCREMENTAL_TABLES:
                stale = [k for (t, k), f in kept.items() if t == table and current.get((t, k)) != f]
                _build_incremental_table(
                    con, home.lake, table, [p for p in read if p.table == table], stale, full=full
                )
            con.execute(read_sql("warehouse.sql"))
            _publish_optional_ledgers(con)
            con.execute("detach ledger")
            built_from = pl.DataFrame(
                [(p.table, p.key, p.fingerprint) for p in parts],
                schema={"table_name": pl.String(), "part": pl.String(), "fingerprint": pl.String()},
                orient="row",
            )
            con.register("built_from", built_from)
            con.execute("create table publication_parts as select * from built_from")
            counts = {
                t: int(con.execute(f'select count(*) from "{t}"').fetchall()[0][0]) for t in _tables(con)
            }
            con.execute("checkpoint")
        finally:
            con.close()
        staging.chmod(0o644)
        crash_point("warehouse.built")
        os.replace(staging, home.warehouse_db)
    finally:
        staging.unlink(missing_ok=True)
        Path(f"{staging}.wal").unlink(missing_ok=True)
    return Publication(counts, "full" if full else "incremental", len(read), len(parts) - len(read), why_full)
