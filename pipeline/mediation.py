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


def mediate_cycle(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> dict[str, int]:
    """Mediate one cycle into ``lake/mediated/cycle=C/{normalised,suspended,duplicate,discarded}.parquet``;
    returns the record count of each stream and of the input."""
    cycle_records(con, lake, cycle)
    con.execute("create or replace temp table mediation_outcomes as " + read_sql("mediation.sql"))
    streams = {
        stream: con.sql(f"select * from mediation_outcomes where status = '{stream}'") for stream in STREAMS
    }
    counts = replace_partition(lake, partition_dir(lake, MEDIATED, cycle=cycle), dict(streams))
    counts["records_in"] = int(scalar(con, "select count(*) from cycle_records"))
    return counts
