"""The parts the warehouse's large tables are built from, and what each part is, so that a publication reads
from the lake again only the parts that changed since the last one and keeps the rest of the published warehouse
(``pipeline/warehouse.py``). ``usage_records`` is built per loaded file, ``rated_usage`` and ``rerate_events``
per cycle.

Rule: a part is reused only when everything its rows come from is the same — the immutable lake versions of its
files (a partition rewritten, e.g. by rerating, is a new version), the SQL that reads it, the DuckDB that wrote
it and, for usage records, the late-usage rows that re-date them. Anything else is read again."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.engine import parquet_glob
from pipeline.lake import lake_table, lake_tables
from pipeline.lake_fallbacks import dataset_sql
from pipeline.sql import read_sql

# the rerate delta reports (pipeline/rerating.py), read when some cycle was rerated, else these empty relations
RERATE_REPORTS = {  # the columns in the files' order, the partition's cycle last
    "events": "select null::bigint as file_id, null::uinteger as line_no, null::varchar as account_id, "
    "null::varchar as charged_number, null::varchar as previous_status, null::varchar as new_status, "
    "null::varchar as previous_rate_row, null::varchar as new_rate_row, null::decimal(18, 6) as previous_charge, "
    "null::decimal(18, 6) as new_charge, null::decimal(18, 6) as delta, null::varchar as cycle where false",
    "accounts": "select null::varchar as account_id, null::decimal(18, 6) as previous_usage, "
    "null::decimal(18, 6) as new_usage, null::decimal(18, 6) as delta, null::decimal(18, 2) as new_usage_billed, "
    "null::varchar as cycle where false",
}


@dataclass(frozen=True)
class IncrementalTable:
    """A warehouse table built part by part: the lake folder and table its parts are, the view its SQL reads,
    the column that names a part in the table's rows (a cycle's events all carry that cycle: mediation writes
    its partition's), and the SQL file."""

    folder: str
    name: str
    view: str
    key: str
    key_type: str
    sql: str


INCREMENTAL_TABLES: dict[str, IncrementalTable] = {
    "usage_records": IncrementalTable(
        "usage_records", "records", "lake_usage_records", "file_id", "bigint", "warehouse_usage_records.sql"
    ),
    "rated_usage": IncrementalTable(
        "rated", "rated", "lake_rated", "cycle", "varchar", "warehouse_rated_usage.sql"
    ),
    "rerate_events": IncrementalTable(
        "rerate", "events", "lake_rerate_events", "cycle", "varchar", "warehouse_rerate_events.sql"
    ),
}


def rerate_report_sql(files: list[Path], report: str) -> str:
    """A SELECT of a rerate delta report's ``files`` (the cycle from their partition), or its empty relation."""
    if not files:
        return RERATE_REPORTS[report]
    return (
        f"select * from read_parquet({parquet_glob(files)}, hive_partitioning = true, union_by_name = true)"
    )


def part_sql(lake: Path, table: str, files: list[Path]) -> str:
    """A SELECT of the parts ``files`` of an incremental table, as its view reads them (none: an empty relation
    with the table's columns)."""
    if table == "usage_records":
        return dataset_sql(lake, "usage_records", files)
    if table == "rated_usage":
        return dataset_sql(lake, "rated", files)
    return rerate_report_sql(files, "events")


@dataclass(frozen=True)
class Part:
    """One part of an incremental table: its key (file id or cycle), its Parquet file and its fingerprint."""

    table: str
    key: str
    file: Path
    fingerprint: str


def late_usage_digests(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Per loaded file, a digest of its late-usage rows (which cycle bills each late record), from the ledger
    attached as ``ledger``: usage records are re-dated by them, so a file whose late rows changed is read again."""
    if not con.execute(
        "select count(*) from information_schema.tables where table_catalog = 'ledger' and table_name = 'late_usage'"
    ).fetchall()[0][0]:
        return {}
    rows = con.execute(
        "select file_id::varchar, count(*)::varchar || ':' || "
        "bit_xor(hash(line_no, call_cycle, billed_cycle))::varchar from ledger.late_usage group by file_id"
    ).fetchall()
    return dict(rows)


def lake_parts(lake: Path, late: dict[str, str]) -> list[Part]:
    """Every part of the incremental tables the lake holds now, fingerprinted (the rule in the module's text)."""
    parts = []
    for table, spec in INCREMENTAL_TABLES.items():
        for file in lake_tables(lake, spec.folder, spec.name):
            key = file.parent.name.split("=", 1)[1]
            versions = [file.resolve()]
            if table == "rated_usage":  # rated events are read joined to their cycle's normalised columns
                versions.append(lake_table(lake, "mediated", "normalised", cycle=key).resolve())
            digest = hashlib.sha256()
            for item in (duckdb.__version__, read_sql(spec.sql), part_sql(lake, table, [file]),
                         *map(str, versions), late.get(key, "") if table == "usage_records" else ""):  # fmt: skip
                digest.update(item.encode() + b"\0")
            parts.append(Part(table, key, file, digest.hexdigest()))
    return parts
