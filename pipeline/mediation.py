"""Cycle mediation: gather the cycle's normalised records from every loaded file, resolve each charged number
to the account that held it at the call time, drop duplicate calls (by the source's own id, then by content,
across files and switches), and split the records into the four output streams: normalised, suspended,
duplicate, discarded (``sql/mediation.sql``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.engine import parquet_glob, scalar
from pipeline.faults import crash_point
from pipeline.intake import USAGE_RECORDS
from pipeline.lake import (
    RETIRED,
    ROW_GROUP_ROWS,
    StagedPartition,
    current_version,
    lake_table,
    lake_tables,
    parquet_writer,
    partition_dir,
)
from pipeline.late_usage import routed_records_sql, routes_path
from pipeline.normalise import NORMALISED_SCHEMA
from pipeline.sql import read_sql

MEDIATED = "mediated"
MEDIATION_WORK = (
    "mediation_work"  # a staged version never swapped in: the outcomes while the streams are written
)
STREAM_CHUNK_LINES = ROW_GROUP_ROWS  # at most this many lines of one file per chunk of the streams
OUTCOME_BLOCK_LINES = 8 * ROW_GROUP_ROWS  # the outcomes aside: sorted per file and block of this many lines
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
    return lake_tables(lake, USAGE_RECORDS, "records")


def cycle_records(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> duckdb.DuckDBPyRelation:
    """The records of one bill cycle from every loaded file, as the view ``cycle_records``: the calls that fall
    in it, less those that arrived after it was final, plus the late usage it bills (``late_from_cycle``)."""
    files = record_files(lake)
    if files:
        # the cycle's own calls less its late ones, plus the late calls it bills (pipeline/late_usage.py)
        con.execute(
            "create or replace temp view cycle_records as "
            + routed_records_sql(f"read_parquet({parquet_glob(files)})", cycle, routes_path(lake, cycle))
        )
    else:
        columns = ", ".join(
            f"null::{_DUCKDB_TYPES[dtype.base_type()]} as {name}" for name, dtype in NORMALISED_SCHEMA.items()
        )
        con.execute(
            f"create or replace temp view cycle_records as select {columns}, null::varchar as late_from_cycle "
            "where false"
        )
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
        for path in lake_tables(lake, CALL_KEYS, "keys")
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
    stream_chunk_lines: int = STREAM_CHUNK_LINES,
) -> dict[str, int]:
    """Mediate one cycle into ``lake/mediated/cycle=C/{normalised,suspended,duplicate,discarded}.parquet``
    and record its billed calls in the call-key index (``lake/call_keys/cycle=C``) so that later cycles find
    them as duplicates within ``duplicate_window_days``; returns the record count of each stream and of the
    input. ``duplicate_tolerance_seconds`` > 0 lets the same call seen by two switches differ that much.
    Out of core: the outcomes go to Parquet files aside, by file and block of lines, and the streams are
    written ``stream_chunk_lines`` lines of a file at a time, so DuckDB's memory limit bounds the step (it
    spills past it)."""
    remove_stale_versions(lake, cycle)
    cycle_records(con, lake, cycle)
    prior_call_keys(con, lake, cycle)
    con.execute(f"set variable duplicate_window_days = {int(duplicate_window_days)}")
    con.execute(f"set variable duplicate_tolerance_seconds = {int(duplicate_tolerance_seconds)}")
    # the outcomes — narrow: key and decision — go to Parquet files aside by file and block of lines (written
    # as they are produced: a temp table of every record, or one sort of them, must fit DuckDB's memory, 10M did
    # not); each file's usage records are then read once, a chunk of lines at a time, with their outcomes
    # (the chunk's blocks, sorted) laid beside them
    work = StagedPartition(lake, partition_dir(lake, MEDIATION_WORK, cycle=cycle))
    staged = StagedPartition(lake, partition_dir(lake, MEDIATED, cycle=cycle))
    keys = StagedPartition(lake, partition_dir(lake, CALL_KEYS, cycle=cycle))
    try:
        outcomes = work.folder / "outcomes"
        mediation_rules(con, work, outcomes)
        release_memory(con)  # the streams are written outside DuckDB: its freed buffers go back first
        crash_point("mediation.outcomes_written")
        counts = _write_streams(con, lake, cycle, outcomes, staged, keys.path("keys"), stream_chunk_lines)
    except BaseException:
        staged.abort()
        keys.abort()
        raise
    finally:
        work.abort()
    staged.commit()
    keys.commit()  # after the streams (a version a kill leaves unswapped is removed by the next run)
    # from here on (``file_counts``, the asset's metadata) the outcomes are the four streams as written
    con.execute(
        "create or replace temp view mediation_outcomes as "
        + " union all by name ".join(
            f"select * from read_parquet({_quoted(staged.path(stream))}, hive_partitioning = false)"
            for stream in STREAMS
        )
    )
    counts["records_in"] = sum(counts[stream] for stream in STREAMS)  # each record of the cycle in one stream
    return counts


def mediation_rules(con: duckdb.DuckDBPyConnection, work: StagedPartition, outcomes: Path) -> None:
    """Apply mediation's rules to the view ``cycle_records`` in four statements, each streamed to a Parquet file
    of ``work`` so that DuckDB can spill past its memory limit, each with at most one join of every call: the
    call rules (one event per call, the account at the call time: ``sql/mediation_calls.sql``), the duplicates
    by source id, then by content (``sql/mediation_*_duplicates.sql``), and the outcome of every record
    (``sql/mediation.sql``), then sorted by line into the folder ``outcomes``, one Parquet file per file and
    block of ``OUTCOME_BLOCK_LINES`` lines (``file_id=F/block=B/``: at 10M one sort of every outcome ran out of
    1 GB; a block's sort is bounded by the block). One statement held every call in memory (DuckDB materialises a step read several times, and a
    materialised step cannot spill) and, split in two, still ran out of 1 GB at 10M CDRs (docs/SCALE.md)."""
    calls = work.path("calls")
    con.execute(f"copy ({read_sql('mediation_calls.sql')}) to {_quoted(calls)} (format parquet)")
    con.execute(
        "create or replace temp view mediation_calls as select *, "
        "file_id::bigint * 4294967296 + line_no as record_ordinal "  # file then line: the earliest wins
        f"from read_parquet({_quoted(calls)})"
    )
    con.execute(
        "create or replace temp view billable_calls as select * from mediation_calls "
        "where status = 'ok' and leg_reason is null and account_id is not null"
    )
    # the call keys of the other cycles within the duplicate window before this cycle's first call
    con.execute(
        "create or replace temp view prior_calls as select * from prior_call_keys where start_utc >= "
        "(select min(start_utc) from mediation_calls) - to_days(getvariable('duplicate_window_days'))"
    )
    for name in ("source_id_duplicates", "content_duplicates"):
        path = work.path(name)
        con.execute(f"copy ({read_sql(f'mediation_{name}.sql')}) to {_quoted(path)} (format parquet)")
        con.execute(f"create or replace temp view {name} as select * from read_parquet({_quoted(path)})")
    unsorted = work.path("outcomes_unsorted")
    con.execute(f"copy ({read_sql('mediation.sql')}) to {_quoted(unsorted)} (format parquet)")
    # then one sort per file and block of lines, each bounded by the block (DuckDB's partitioned COPY holds
    # every partition's rows in memory, and one sort of every outcome did not spill: both failed at 10M)
    blocks = con.execute(
        f"select distinct file_id, line_no // {OUTCOME_BLOCK_LINES} as block from read_parquet({_quoted(unsorted)}) "
        "order by all"
    ).fetchall()
    for file_id, block in blocks:
        folder = outcomes / f"file_id={file_id}" / f"block={block}"
        folder.mkdir(parents=True)
        first = block * OUTCOME_BLOCK_LINES
        con.execute(
            f"copy (select * from read_parquet({_quoted(unsorted)}) where file_id = {int(file_id)} "
            f"and line_no >= {first} and line_no < {first + OUTCOME_BLOCK_LINES} order by line_no) "
            f"to {_quoted(folder / 'outcomes.parquet')} (format parquet)"
        )


def remove_stale_versions(lake: Path, cycle: str) -> list[Path]:
    """Remove what a mediation of ``cycle`` killed mid-way left under ``lake/.versions/``: its work folder
    (the outcomes while the streams were written) and any version of its mediated partition or call-key index
    written aside but never swapped in. Safe because one run holds the home at a time (``pipeline.locks``)
    and a version is only ever read through the partition's link; a superseded version (retired, ``lake/
    .retired/``) is not this step's to remove: a reader may still hold it for ``lake_version_grace``. Returns
    the folders removed."""
    removed = []
    versions = lake / ".versions"
    for dataset in (MEDIATION_WORK, MEDIATED, CALL_KEYS):
        target = partition_dir(lake, dataset, cycle=cycle)
        live = current_version(lake, target)
        prefix = target.relative_to(lake).as_posix().replace("/", "~") + "."
        for folder in sorted(versions.iterdir()) if versions.is_dir() else []:
            retired = (lake / RETIRED / folder.name).exists()
            if folder.name.startswith(prefix) and folder.is_dir() and folder.resolve() != live and not retired:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def release_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Give the memory DuckDB's allocator keeps cached after a query back to the system (a memory limit lowered
    for a moment flushes it; measured at 1M CDRs: 1,016 -> 339 MiB RSS), so that work done outside DuckDB
    next does not add its peak on top of DuckDB's."""
    limit = scalar(con, "select current_setting('memory_limit')")
    con.execute("set memory_limit = '64MB'")
    con.execute(f"set memory_limit = '{limit}'")


def _quoted(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


# What mediation decides for a record (``sql/mediation.sql``'s outcome): it replaces the record's own
# status, reason, billed seconds and units, and adds the account and the record it duplicates or was merged into.
DECIDED = ("status", "reason", "billsec", "units")
ADDED: dict[str, pl.DataType] = {
    "account_id": pl.String(),
    "service_state": pl.String(),
    "duplicate_of_file_id": pl.Int32(),
    "duplicate_of_line_no": pl.UInt32(),
    "merged_into_file_id": pl.Int32(),
    "merged_into_line_no": pl.UInt32(),
}
# a stream's columns: the usage record's (file_id as the lake's partition key gives it) but its raw text, and
# the added ones. The raw text stays in the usage records alone: its readers join it back by (file_id, line_no)
# (``pipeline.raw_text``); at 1M records it was 81 of the 109 MB the four streams wrote (docs/SCALE.md)
STREAM_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in NORMALISED_SCHEMA.items() if name != "raw"},
    "file_id": pl.Int64(),
    "late_from_cycle": pl.String(),  # late usage billed in this cycle: the cycle its call falls in
    **ADDED,
}
# the usage-record columns a stream takes (the raw text is never read here)
RECORD_COLUMNS = tuple(name for name in NORMALISED_SCHEMA if name != "raw")


def _write_streams(
    con: duckdb.DuckDBPyConnection, lake: Path, cycle: str, outcomes: Path, staged: StagedPartition,
    keys: Path, chunk_lines: int,
) -> dict[str, int]:  # fmt: skip
    """Write the four output streams, each in file and line order with every column of its usage records but
    the raw text (which is not even read: ``pipeline.raw_text`` joins it back by key for its readers). A chunk of ``chunk_lines`` lines of a file is read from its usage records (in line
    order) and from the outcomes of the blocks it spans (``outcomes/file_id=F/block=B``, sorted by line), and
    the two are laid side by side, row for row (a positional match, checked line by line — no join), so
    memory is bounded by the chunk, not by the cycle. The normalised records' call keys go to ``keys`` as they
    pass (the call-key index of the cycle)."""
    schema = pl.DataFrame(schema=STREAM_SCHEMA).to_arrow().schema
    writers = {stream: parquet_writer(staged.path(stream), schema) for stream in STREAMS}
    writers[CALL_KEYS] = parquet_writer(keys, pa.schema([schema.field(name) for name in CALL_KEY_COLUMNS]))
    counts = dict.fromkeys(STREAMS, 0)
    routes = _routes(lake, cycle)
    folders = sorted(outcomes.glob("file_id=*"), key=lambda folder: int(folder.name.partition("=")[2]))
    try:
        for folder in folders:
            file_id = int(folder.name.partition("=")[2])
            path = lake_table(lake, USAGE_RECORDS, "records", file_id=file_id)
            records = _file_records(
                pl.scan_parquet(path, hive_partitioning=False).select(RECORD_COLUMNS), file_id, cycle, routes
            )
            outcome_schema = pl.read_parquet_schema(next(folder.glob("block=*/*.parquet")))
            for first_line, last_line in _line_ranges(path, chunk_lines):
                lines = pl.col("line_no").is_between(first_line, last_line)
                parts = [
                    part
                    for block in range(first_line // OUTCOME_BLOCK_LINES, last_line // OUTCOME_BLOCK_LINES + 1)
                    for part in sorted((folder / f"block={block}").glob("*.parquet"))
                ]
                decided = (
                    pl.scan_parquet(parts, hive_partitioning=False)
                    if parts
                    else pl.LazyFrame(schema=outcome_schema)
                )
                record, outcome = pl.collect_all([records.filter(lines), decided.filter(lines).sort("line_no")])
                if not record["line_no"].equals(outcome["line_no"]):
                    raise RuntimeError(
                        f"file {file_id}: the outcomes do not match its usage records line by line"
                    )
                chunk = record.with_columns(outcome.select(*DECIDED, *ADDED).get_columns()).select(
                    pl.col(name).cast(dtype) for name, dtype in STREAM_SCHEMA.items()
                )
                for (stream,), part in chunk.partition_by(
                    "status", as_dict=True, maintain_order=True
                ).items():
                    if stream not in STREAMS:
                        raise RuntimeError(f"file {file_id}: mediation gave an unknown status {stream!r}")
                    table = part.to_arrow()
                    writers[str(stream)].write_table(table, row_group_size=ROW_GROUP_ROWS)
                    counts[str(stream)] += part.height
                    if stream == "normalised":
                        writers[CALL_KEYS].write_table(
                            table.select(CALL_KEY_COLUMNS), row_group_size=ROW_GROUP_ROWS
                        )
    finally:
        for writer in writers.values():
            writer.close()
    return counts


def _routes(lake: Path, cycle: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cycle's late-usage routes (pipeline/late_usage.py): the records of its calls billed in a later cycle
    (moved out), and the late records of earlier cycles it bills (moved in, with the cycle of their call)."""
    path = routes_path(lake, cycle)
    if path is None:
        empty = pl.DataFrame(
            schema={"file_id": pl.Int64(), "line_no": pl.UInt32(), "call_cycle": pl.String()}
        )
        return empty, empty
    routes = pl.read_parquet(path, hive_partitioning=False).with_columns(
        pl.col("file_id").cast(pl.Int64), pl.col("line_no").cast(pl.UInt32)
    )
    moved_out = routes.filter(pl.col("call_cycle") == cycle).select("file_id", "line_no", "call_cycle")
    moved_in = routes.filter(pl.col("billed_cycle") == cycle).select("file_id", "line_no", "call_cycle")
    return moved_out, moved_in


def _file_records(
    records: pl.LazyFrame, file_id: int, cycle: str, routes: tuple[pl.DataFrame, pl.DataFrame]
) -> pl.LazyFrame:
    """One file's usage records of ``cycle`` in line order, as ``cycle_records`` (``late_usage.routed_records_sql``)
    gives them to mediation: its own calls less the late ones, plus the late calls it bills, those with ``cycle``
    the billing cycle and ``late_from_cycle`` the cycle of the call (their status and reason come from the
    outcome)."""
    moved_out, moved_in = (frame.filter(pl.col("file_id") == file_id) for frame in routes)
    own = records.filter(pl.col("cycle") == cycle)
    if moved_out.height:  # a filter keeps the line order (a join need not)
        own = own.filter(~pl.col("line_no").is_in(moved_out["line_no"].implode()))
    if not moved_in.height:  # the usual file: its own calls, already in line order (no second read, no sort)
        return own.with_columns(pl.lit(None, pl.String()).alias("late_from_cycle"))
    late = records.join(moved_in.lazy().select("line_no", "call_cycle"), on="line_no", how="inner")
    return pl.concat(
        [
            own.with_columns(pl.lit(None, pl.String()).alias("late_from_cycle")),
            late.with_columns(
                pl.lit(cycle).alias("cycle"), pl.col("call_cycle").alias("late_from_cycle")
            ).drop("call_cycle"),
        ],
        how="vertical_relaxed",
    ).sort("line_no")


def _line_ranges(path: Path, chunk_lines: int) -> list[tuple[int, int]]:
    """The line ranges (first, last) of a usage-records file's row groups, each cut into at most
    ``chunk_lines`` lines: a chunk reads one row group (pruned by its line-number statistics), never two."""
    meta = pq.ParquetFile(path).metadata
    column = meta.schema.to_arrow_schema().get_field_index("line_no")
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    stats = [group.column(column).statistics for group in groups if group.num_rows]
    if not all(s is not None and s.has_min_max for s in stats):
        lines = pl.scan_parquet(path, hive_partitioning=False).select(
            pl.col("line_no").min().alias("min"), pl.col("line_no").max().alias("max")
        )
        first, last = lines.collect().row(0)
        bounds = [(first, last)] if first is not None else []
    else:
        bounds = [(s.min, s.max) for s in stats if s is not None]
    return [
        (start, min(start + chunk_lines - 1, last))
        for first, last in bounds
        for start in range(int(first), int(last) + 1, chunk_lines)
    ]


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
