"""Cycle mediation: gather the cycle's normalised records from every loaded file, resolve each charged number
to the account that held it at the call time, drop duplicate calls (by the source's own id, then by content,
across files and switches), and split the records into the four output streams: normalised, suspended,
duplicate, discarded (``sql/mediation.sql``)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import parquet_glob, scalar
from pipeline.intake import USAGE_RECORDS
from pipeline.lake import partition_dir, replace_partition
from pipeline.normalise import NORMALISED_SCHEMA
from pipeline.sql import read_sql

MEDIATED = "mediated"
STREAMS = ("normalised", "suspended", "duplicate", "discarded")
_DUCKDB_TYPES = {
    pl.Int32: "integer",
    pl.UInt32: "uinteger",
    pl.Int64: "bigint",
    pl.String: "varchar",
    pl.Datetime: "timestamp",
    pl.Date: "date",
}


def record_files(lake: Path) -> list[Path]:
    """Every loaded file's normalised records in the lake."""
    return sorted((lake / USAGE_RECORDS).glob("file_id=*/records.parquet"))


def cycle_records(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> duckdb.DuckDBPyRelation:
    """The records of one bill cycle from every loaded file, as the view ``cycle_records``."""
    files = record_files(lake)
    if files:
        con.execute(
            f"create or replace temp view cycle_records as select * from read_parquet({parquet_glob(files)}) "
            f"where cycle = '{cycle}'"
        )
    else:
        columns = ", ".join(
            f"null::{_DUCKDB_TYPES[dtype.base_type()]} as {name}" for name, dtype in NORMALISED_SCHEMA.items()
        )
        con.execute(f"create or replace temp view cycle_records as select {columns} where false")
    return con.table("cycle_records")


CALL_KEYS = "call_keys"
CALL_KEY_COLUMNS = (
    "file_id", "line_no", "cycle", "source_id", "source_record_id", "charged_number", "called_number",
    "start_utc", "billsec", "service",
)  # fmt: skip


def prior_call_keys(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> None:
    """The call-key index of every other cycle (the calls mediation already let through), as the view
    ``prior_call_keys`` with each record's ordinal (file, then line: the earlier wins)."""
    files = [
        path
        for path in sorted((lake / CALL_KEYS).glob("cycle=*/keys.parquet"))
        if path.parent.name != f"cycle={cycle}"
    ]
    source = (
        f"read_parquet({parquet_glob(files)}, hive_partitioning = false)"
        if files
        else "(select " + ", ".join(
            f"null::{_DUCKDB_TYPES[NORMALISED_SCHEMA[c].base_type()]} as {c}" for c in CALL_KEY_COLUMNS
        ) + " where false)"
    )  # fmt: skip
    con.execute(
        "create or replace temp view prior_call_keys as select *, "
        f"file_id::bigint * 4294967296 + line_no as record_ordinal from {source}"
    )


def mediate_cycle(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    cycle: str,
    *,
    duplicate_window_days: int = 90,
    duplicate_tolerance_seconds: int = 0,
) -> dict[str, int]:
    """Mediate one cycle into ``lake/mediated/cycle=C/{normalised,suspended,duplicate,discarded}.parquet``
    and record its billed calls in the call-key index (``lake/call_keys/cycle=C``) so that later cycles find
    them as duplicates within ``duplicate_window_days``; returns the record count of each stream and of the
    input. ``duplicate_tolerance_seconds`` > 0 lets the same call seen by two switches differ that much."""
    cycle_records(con, lake, cycle)
    prior_call_keys(con, lake, cycle)
    con.execute(f"set variable duplicate_window_days = {int(duplicate_window_days)}")
    con.execute(f"set variable duplicate_tolerance_seconds = {int(duplicate_tolerance_seconds)}")
    # the outcomes without the raw text (half their bytes; the asset's metadata and ``file_counts`` read this
    # table): each stream takes its records' raw text back from the usage records as it is written
    con.execute("create or replace temp table mediation_outcomes as " + read_sql("mediation.sql"))
    streams = {
        stream: con.sql(
            "select outcomes.*, cycle_records.raw from mediation_outcomes as outcomes "
            f"join cycle_records using (file_id, line_no) where outcomes.status = '{stream}' "
            "order by file_id, line_no"
        )
        for stream in STREAMS
    }
    counts = replace_partition(lake, partition_dir(lake, MEDIATED, cycle=cycle), dict(streams))
    keys = con.sql(
        f"select {', '.join(CALL_KEY_COLUMNS)} from mediation_outcomes where status = 'normalised'"
    )
    replace_partition(lake, partition_dir(lake, CALL_KEYS, cycle=cycle), {"keys": keys})
    counts["records_in"] = int(scalar(con, "select count(*) from cycle_records"))
    return counts


def file_counts(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """Per file, after ``mediate_cycle``: records in, each stream's count, and the duplicate rate (duplicate
    records per record in, in percent, to one decimal)."""
    return con.sql(
        """
        select
            file_id,
            source_id,
            count(*) as records_in,
            count(*) filter (where status = 'normalised') as normalised,
            count(*) filter (where status = 'suspended') as suspended,
            count(*) filter (where status = 'duplicate') as duplicate,
            count(*) filter (where status = 'discarded') as discarded,
            round(100 * count(*) filter (where status = 'duplicate') / count(*), 1) as duplicate_rate_percent
        from mediation_outcomes
        group by all
        order by file_id
        """
    )
