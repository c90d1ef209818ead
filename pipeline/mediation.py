"""Cycle mediation: gather the cycle's normalised records from every loaded file, resolve each charged number
to the account that held it at the call time, drop duplicate calls (by the source's own id, then by content,
across files and switches), and split the records into the four output streams: normalised, suspended,
duplicate, discarded (``sql/mediation.sql``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
    arrow_view,
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
OUTCOME_BLOCK_LINES = 8 * ROW_GROUP_ROWS  # the outcomes aside: per file and block of this many lines
OUTCOME_BATCH_ROWS = 2 * ROW_GROUP_ROWS  # the outcomes come from DuckDB this many at a time, split by block
OUTCOME_OPEN_FILES = 256  # the block files of outcomes held open at once (the least recently written closed)
STREAMS = ("normalised", "suspended", "duplicate", "discarded")
# the stream columns with a value per record (or nearly: 825,428 source ids, 734,529 starts in
# 923,767 normalised records at 1M) are written plain: their dictionary was built and dropped for every row
# group. At 1M: normalised 0.83 -> 0.58 CPU s and 24.9 -> 19.1 MB
UNIQUE_COLUMNS = ("line_no", "source_record_id", "start_utc", "answer_utc")
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
        source = _with_every_column(
            f"read_parquet({parquet_glob(files)}, union_by_name = true)", NORMALISED_SCHEMA
        )
        con.execute(
            "create or replace temp view cycle_records as "
            + routed_records_sql(source, cycle, routes_path(lake, cycle))
        )
    else:
        con.execute(
            f"create or replace temp view cycle_records as select {_null_columns(NORMALISED_SCHEMA)}, "
            "null::varchar as late_from_cycle where false"
        )
    return con.table("cycle_records")


def _null_columns(columns: Iterable[str]) -> str:
    """A SELECT list of typed nulls, one per normalised column named."""
    return ", ".join(f"null::{_DUCKDB_TYPES[NORMALISED_SCHEMA[c].base_type()]} as {c}" for c in columns)


def _with_every_column(read: str, columns: Iterable[str]) -> str:
    """``read`` (a ``read_parquet`` by name) with every one of ``columns``: lake files written before a column
    existed (``answer_utc``) give it as null, even when no file of the lake has it yet."""
    return f"(select * from {read} union all by name select {_null_columns(columns)} where false)"


# the columns the duplicate rules read of the calls earlier cycles let through (their normalised streams)
CALL_KEY_COLUMNS = (
    "file_id", "line_no", "cycle", "source_id", "source_record_id", "charged_number", "called_number",
    "start_utc", "answer_utc", "billsec", "service", "units",
)  # fmt: skip


def prior_call_keys(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> None:
    """The call keys of every other cycle — the calls mediation already let through: the normalised streams
    of the other cycles, the columns of ``CALL_KEY_COLUMNS`` — as the view ``prior_call_keys`` with each
    record's ordinal (file, then line: the earlier wins)."""
    files = [
        path
        for path in lake_tables(lake, MEDIATED, "normalised")
        if path.parent.name != f"cycle={cycle}"
    ]
    read = f"read_parquet({parquet_glob(files)}, hive_partitioning = false, union_by_name = true)"
    source = (
        f"(select {', '.join(CALL_KEY_COLUMNS)} from {_with_every_column(read, CALL_KEY_COLUMNS)})"
        if files
        else f"(select {_null_columns(CALL_KEY_COLUMNS)} where false)"
    )
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
    outcome_block_lines: int = OUTCOME_BLOCK_LINES,
) -> dict[str, int]:
    """Mediate one cycle into ``lake/mediated/cycle=C/{normalised,suspended,duplicate,discarded}.parquet``
    (its normalised records are the calls later cycles find duplicates of, within ``duplicate_window_days``:
    ``prior_call_keys``); returns the record count of each stream and of the input.
    ``duplicate_tolerance_seconds`` > 0 lets the same call seen by two switches differ that much. Out of core:
    the outcomes go to Parquet files aside, by file and block of lines, and the streams are written
    ``stream_chunk_lines`` lines of a file at a time (the outcomes read a block of ``outcome_block_lines``
    lines at a time), so DuckDB's memory limit bounds the step (it spills past it)."""
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
    try:
        outcomes = work.folder / "outcomes"
        copy_records = len(record_files(lake)) > RULES_COPY_FILES
        mediation_rules(con, work, outcomes, outcome_block_lines, copy_records=copy_records)
        release_memory(con)  # the streams are written outside DuckDB: its freed buffers go back first
        crash_point("mediation.outcomes_written")
        counts = _write_streams(lake, cycle, outcomes, staged, stream_chunk_lines, outcome_block_lines)
    except BaseException:
        staged.abort()
        raise
    finally:
        work.abort()
    staged.commit()
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


# Past this many loaded files the rules read the cycle's records through one file written first: the rules scan
# their records many times (14 scans in the plan of sql/mediation_calls.sql), and a scan of many small files
# holds memory per file outside DuckDB's limit (the 1m month in 3,656 files: that statement 3.1 GiB and 20.6 CPU
# s, the stage 35.1 CPU s and 3,179 MiB; 24.0 and 702 with the copy). With a few large files the copy costs more
# than it saves (1m in 5 files: +0.6 CPU s): docs/SCALE_LOG.md, stop 29.
RULES_COPY_FILES = 64
# the duplicate rules join only the calls whose key hashes alike with another call's; the hashes are counted in
# parts of at most this many calls (``duplicate_calls``)
DUPLICATE_HASH_PART_ROWS = 8_000_000
# the usage-record columns mediation's rules read (sql/mediation_calls.sql: the view mediation_records)
RULES_COLUMNS = (
    "file_id", "line_no", "status", "reason", "source_id", "source_record_id", "call_id", "peer_record_id",
    "record_sequence", "charged_number", "called_number", "start_utc", "answer_utc", "call_date", "billsec",
    "service", "units", "event_code",
)  # fmt: skip


def mediation_rules(
    con: duckdb.DuckDBPyConnection,
    work: StagedPartition,
    outcomes: Path,
    block_lines: int = OUTCOME_BLOCK_LINES,
    *,
    copy_records: bool = False,
) -> None:
    """Apply mediation's rules to the view ``cycle_records`` in four statements, each streamed to a Parquet file
    of ``work`` so that DuckDB can spill past its memory limit, each with at most one join of every call: the
    call rules (one event per call, the account at the call time: ``sql/mediation_calls.sql``), the duplicates
    by source id, then by content (``sql/mediation_*_duplicates.sql``: a join of the calls whose key hashes
    alike with another call's, ``_repeated_hashes``), and the outcome of every record
    (``sql/mediation.sql``) into the folder ``outcomes``, split by file and block of ``block_lines``
    lines (``file_id=F/block=B/``, unsorted within a block: at 10M one sort of every outcome ran out of 1 GB;
    the streams sort a block as they read it, bounded by the block). One statement held every call in memory
    (DuckDB materialises a step read several times, and a materialised step cannot spill) and, split in two,
    still ran out of 1 GB at 10M CDRs (docs/SCALE_LOG.md). ``copy_records``: the rules read the records once
    into a file of ``work`` first (``RULES_COPY_FILES``)."""
    rules_input = f"select {', '.join(RULES_COLUMNS)} from cycle_records"
    if copy_records:  # read once into one file: see RULES_COPY_FILES
        records = work.path("records")
        con.execute(f"copy ({rules_input}) to {_quoted(records)} (format parquet)")
        rules_input = f"select * from read_parquet({_quoted(records)})"
    con.execute(f"create or replace temp view mediation_records as {rules_input}")
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
    duplicate_calls(con, work.folder)
    _write_outcomes(con, outcomes, block_lines)


def duplicate_calls(
    con: duckdb.DuckDBPyConnection, folder: Path, part_rows: int = DUPLICATE_HASH_PART_ROWS
) -> None:
    """The duplicate rules over the views ``billable_calls`` (this cycle's) and ``prior_calls`` (the other cycles'
    within the window): the views ``source_id_duplicates`` and then ``content_duplicates`` (each call with the
    record it duplicates: ``sql/mediation_*_duplicates.sql``), each streamed to a Parquet file of ``folder``.
    Each rule joins only the calls whose key hashes alike with another call's (``_repeated_hashes``, in parts of
    at most ``part_rows`` calls)."""
    for rule, hashes in (("source_id", ("key_hash",)), ("content", ("answer_hash", "start_hash"))):
        con.execute(f"create or replace temp view {rule}_keys as {read_sql(f'mediation_{rule}_keys.sql')}")
        _repeated_hashes(con, folder, f"{rule}_keys", hashes, part_rows)
        path = folder / f"{rule}_duplicates.parquet"
        con.execute(f"copy ({read_sql(f'mediation_{rule}_duplicates.sql')}) to {_quoted(path)} (format parquet)")
        con.execute(f"create or replace temp view {rule}_duplicates as select * from read_parquet({_quoted(path)})")


def _repeated_hashes(
    con: duckdb.DuckDBPyConnection, folder: Path, keys: str, hashes: tuple[str, ...], part_rows: int
) -> None:
    """For each hash column of the view ``keys``, the temp table ``repeated_<column>es`` of the hashes that two
    calls or more hold: the duplicate rules' candidates. The hashes are written aside once, then counted in parts
    of at most ``part_rows`` calls by the hash's remainder (each part its own grouping, bounded
    whatever the month's size: one grouping of 46.5M hashes peaked at 821 MiB under the 768MB limit, and inside
    the stage ran out of memory, docs/SCALE_LOG.md, stops 30 and 31)."""
    path = folder / f"{keys}_hashes.parquet"
    con.execute(f"copy (select {', '.join(hashes)} from {keys}) to {_quoted(path)} (format parquet)")
    calls = int(scalar(con, f"select count(*) from read_parquet({_quoted(path)})"))
    parts = max(1, -(-calls // part_rows))  # rounded up
    for column in hashes:
        con.execute(f"create or replace temp table repeated_{column}es ({column} ubigint)")
        for part in range(parts):
            con.execute(
                f"insert into repeated_{column}es select {column} from read_parquet({_quoted(path)}) "
                f"where {column} % {parts} = {part} group by {column} having count(*) > 1"
            )


def _write_outcomes(con: duckdb.DuckDBPyConnection, outcomes: Path, block_lines: int) -> None:
    """The outcome of every record (``sql/mediation.sql``) split by file and block of ``block_lines`` lines as
    it is produced: Arrow IPC files (LZ4) ``outcomes/file_id=F/block=B/part-N.arrow``, unsorted within a block
    (the streams sort each block once as they read it). The outcomes stream out of DuckDB a batch of
    ``OUTCOME_BATCH_ROWS`` at a time and each batch's rows are appended to their blocks' files, so memory is
    bounded by the batch whatever the month's size. DuckDB's own partitioned COPY held rows per block and
    thread: at 50M (49 blocks) it spilled 3.9 GB and took 74 CPU s (docs/SCALE_LOG.md, stop 30); one sort of
    every outcome did not spill (10M ran out of 1 GB), and a sort per block cost a scan of every outcome per
    block ("Mediation, fifth pass")."""
    query = f"select *, line_no // {int(block_lines)} as block from ({read_sql('mediation.sql')})"
    files = _BlockFiles(outcomes)
    try:
        for batch in con.sql(query).to_arrow_reader(OUTCOME_BATCH_ROWS):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            for (file_id, block), part in frame.partition_by("file_id", "block", as_dict=True).items():
                files.append(int(file_id), int(block), arrow_view(part.drop("file_id", "block")))
    finally:
        files.close()


class _BlockFiles:
    """The outcomes' block files being written, at most ``OUTCOME_OPEN_FILES`` open (a month of thousands of
    small files would otherwise hold a descriptor per file): the least recently written is closed, and a block
    written to again after that gets a new part file beside it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.open: dict[tuple[int, int], pa.ipc.RecordBatchFileWriter] = {}  # in order of last write
        self.parts: dict[tuple[int, int], int] = {}

    def append(self, file_id: int, block: int, table: pa.Table) -> None:
        """Add ``table``'s rows to the block's file."""
        key = (file_id, block)
        writer = self.open.pop(key, None)
        if writer is None:
            if len(self.open) >= OUTCOME_OPEN_FILES:
                self.open.pop(next(iter(self.open))).close()
            part = self.parts[key] = self.parts.get(key, -1) + 1
            path = self.folder / f"file_id={file_id}" / f"block={block}" / f"part-{part}.arrow"
            path.parent.mkdir(parents=True, exist_ok=True)
            options = pa.ipc.IpcWriteOptions(compression="lz4")
            writer = pa.ipc.new_file(path, table.schema, options=options)
        writer.write_table(table)
        self.open[key] = writer

    def close(self) -> None:
        """Close every file still open."""
        while self.open:
            self.open.pop(next(iter(self.open))).close()


def remove_stale_versions(lake: Path, cycle: str) -> list[Path]:
    """Remove what a mediation of ``cycle`` killed mid-way left under ``lake/.versions/``: its work folder
    (the outcomes while the streams were written) and any version of its mediated partition written aside
    but never swapped in (or of the call-key index earlier releases wrote beside it). Safe because one run
    holds the home at a time (``pipeline.locks``) and a version is only ever read through the partition's
    link; a superseded version (retired, ``lake/.retired/``) is not this step's to remove: a reader may still
    hold it for ``lake_version_grace``. Returns the folders removed."""
    removed = []
    versions = lake / ".versions"
    for dataset in (MEDIATION_WORK, MEDIATED, "call_keys"):
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
# status, reason, billed seconds, units, service and event code (a service code's value-added event), and adds
# the account and the record it duplicates or was merged into.
DECIDED = ("status", "reason", "billsec", "units", "service", "event_code")
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
# (``pipeline.raw_text``); at 1M records it was 81 of the 109 MB the four streams wrote (docs/SCALE_LOG.md)
STREAM_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in NORMALISED_SCHEMA.items() if name != "raw"},
    "file_id": pl.Int64(),
    "late_from_cycle": pl.String(),  # late usage billed in this cycle: the cycle its call falls in
    **ADDED,
}
# the usage-record columns a stream takes (the raw text is never read here)
RECORD_COLUMNS = tuple(name for name in NORMALISED_SCHEMA if name != "raw")


def _write_streams(
    lake: Path, cycle: str, outcomes: Path, staged: StagedPartition, chunk_lines: int, block_lines: int
) -> dict[str, int]:
    """Write the four output streams, each in file and line order with every column of its usage records but
    the raw text (which is not even read: ``pipeline.raw_text`` joins it back by key for its readers). A chunk
    of at most ``chunk_lines`` lines — of one file, or of several small files whole (``_chunks``) — is read from
    the usage records (in file and line order) and from the outcomes of the blocks it spans, and the two are laid
    side by side, row for row (a positional match, checked file and line — no join), so memory is bounded by the
    chunk, not by the cycle. The writes run on a thread of their own (Parquet encoding releases the GIL), a
    chunk's while the next chunk is read, one chunk in flight."""
    schema = pl.DataFrame(schema=STREAM_SCHEMA).to_arrow().schema
    writers = {stream: parquet_writer(staged.path(stream), schema, UNIQUE_COLUMNS) for stream in STREAMS}
    counts = dict.fromkeys(STREAMS, 0)
    # one thread, so that each file's row groups are written in the order they were submitted
    stream_thread = ThreadPoolExecutor(1, thread_name_prefix="mediation-streams")
    in_flight: list[Future[None]] = []
    try:
        for record, outcome in _chunks(lake, cycle, outcomes, chunk_lines, block_lines):
            same_file = record["file_id"].cast(pl.Int64).equals(outcome["file_id"])
            if not (same_file and record["line_no"].equals(outcome["line_no"])):
                files = record["file_id"].unique().sort().to_list()
                raise RuntimeError(f"files {files}: the outcomes do not match their usage records line by line")
            chunk = record.with_columns(outcome.select(*DECIDED, *ADDED).get_columns()).select(
                pl.col(name).cast(dtype) for name, dtype in STREAM_SCHEMA.items()
            )
            tables = {}
            for (stream,), part in chunk.partition_by("status", as_dict=True, maintain_order=True).items():
                if stream not in STREAMS:
                    raise RuntimeError(f"mediation gave an unknown status {stream!r}")
                tables[str(stream)] = part.to_arrow()
                counts[str(stream)] += part.height
            _settle(in_flight)  # the previous chunk written: one chunk in flight bounds the memory
            in_flight.append(stream_thread.submit(_write_tables, writers, tables))
        _settle(in_flight)
    finally:
        stream_thread.shutdown(wait=True)
        for writer in writers.values():
            writer.close()
    return counts


def _chunks(
    lake: Path, cycle: str, outcomes: Path, chunk_lines: int, block_lines: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """The cycle's usage records and their outcomes (``mediation_rules``' ``outcomes/file_id=F/block=B``), in
    file and line order, as pairs of frames of at most ``chunk_lines`` lines: a large file a chunk of lines at a
    time (``_OutcomeBlocks``), small files (one chunk each) several whole at a time, so that a cycle of hundreds
    of small files (a switch that closes its CDR file every hour) is not read and written file by file."""
    routes = _routes(lake, cycle)
    folders = sorted(outcomes.glob("file_id=*"), key=lambda folder: int(folder.name.partition("=")[2]))
    small: list[tuple[int, Path, Path]] = []  # (file id, usage records, outcomes folder) waiting, whole
    small_lines = 0
    for folder in folders:
        file_id = int(folder.name.partition("=")[2])
        path = lake_table(lake, USAGE_RECORDS, "records", file_id=file_id)
        ranges = _line_ranges(path, chunk_lines)
        lines = sum(last - first + 1 for first, last in ranges)
        if small and (len(ranges) > 1 or small_lines + lines > chunk_lines):
            yield _small_files_chunk(small, cycle, routes)
            small, small_lines = [], 0
        if len(ranges) <= 1:
            small.append((file_id, path, folder))
            small_lines += lines
            continue
        records = _file_records(_usage_records(path), file_id, cycle, routes)
        blocks = _OutcomeBlocks(folder, block_lines)
        for first_line, last_line in ranges:
            record = records.filter(pl.col("line_no").is_between(first_line, last_line)).collect()
            outcome = blocks.lines(first_line, last_line).with_columns(file_id=pl.lit(file_id, pl.Int64))
            yield record, outcome
    if small:
        yield _small_files_chunk(small, cycle, routes)


def _small_files_chunk(
    files: list[tuple[int, Path, Path]], cycle: str, routes: tuple[dict[int, pl.DataFrame], dict[int, pl.DataFrame]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Small files' records and outcomes, whole, each in file and line order: one read of their usage records,
    one of their outcomes (sorted once)."""
    records = pl.concat(
        [_file_records(_usage_records(path), file_id, cycle, routes) for file_id, path, _ in files]
    ).collect()
    parts = [part for _, _, folder in files for part in sorted(folder.glob("block=*/*.arrow"))]
    outcome = (
        pl.scan_ipc(parts, hive_partitioning=False, include_file_paths="outcome_file")
        .collect()
        .with_columns(file_id=pl.col("outcome_file").str.extract(r"file_id=(\d+)/").cast(pl.Int64))
        .drop("outcome_file")
        .sort("file_id", "line_no")
    )
    return records, outcome


def _usage_records(path: Path) -> pl.LazyFrame:
    """A loaded file's usage records, the columns a stream takes; a file loaded before a column existed
    (``answer_utc``) gives it as null."""
    present = pl.read_parquet_schema(path)
    return pl.scan_parquet(path, hive_partitioning=False).select(
        pl.col(name) if name in present else pl.lit(None, NORMALISED_SCHEMA[name]).alias(name)
        for name in RECORD_COLUMNS
    )


def _write_tables(writers: dict[str, pq.ParquetWriter], tables: dict[str, pa.Table]) -> None:
    """Append each table to its writer, a row group per ``ROW_GROUP_ROWS`` rows."""
    for name, table in tables.items():
        writers[name].write_table(table, row_group_size=ROW_GROUP_ROWS)


def _settle(futures: list[Future[None]]) -> None:
    """Wait for the writes submitted so far (raising the first failure) and forget them."""
    try:
        for future in futures:
            future.result()
    finally:
        futures.clear()


class _OutcomeBlocks:
    """One file's outcomes as ``mediation_rules`` left them (``file_id=F/block=B/*.parquet``, unsorted within a
    block): a block is read and sorted by line the first time a chunk needs it, and dropped once the chunks have
    moved past it (the chunks come in line order), so at most the blocks one chunk spans are held."""

    def __init__(self, folder: Path, block_lines: int) -> None:
        self.folder = folder
        self.block_lines = block_lines
        self.schema = pl.read_ipc_schema(next(folder.glob("block=*/*.arrow")))
        self.held: dict[int, pl.DataFrame] = {}

    def lines(self, first_line: int, last_line: int) -> pl.DataFrame:
        """The outcomes of lines ``first_line`` to ``last_line`` (both included) in line order."""
        first_block, last_block = first_line // self.block_lines, last_line // self.block_lines
        for block in [block for block in self.held if block < first_block]:
            del self.held[block]
        parts = []
        for block in range(first_block, last_block + 1):
            if block not in self.held:
                files = sorted((self.folder / f"block={block}").glob("*.arrow"))
                self.held[block] = (
                    pl.scan_ipc(files, hive_partitioning=False).collect().sort("line_no")
                    if files
                    else pl.DataFrame(schema=self.schema)
                )
            sorted_block = self.held[block]
            line_no = sorted_block["line_no"]
            start = int(line_no.search_sorted(first_line, side="left"))
            end = int(line_no.search_sorted(last_line, side="right"))
            parts.append(sorted_block.slice(start, end - start))
        return pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0]


def _routes(lake: Path, cycle: str) -> tuple[dict[int, pl.DataFrame], dict[int, pl.DataFrame]]:
    """The cycle's late-usage routes (pipeline/late_usage.py) by file: the records of its calls billed in a later
    cycle (moved out), and the late records of earlier cycles it bills (moved in, with the cycle of their call)."""
    path = routes_path(lake, cycle)
    if path is None:
        return {}, {}
    routes = pl.read_parquet(path, hive_partitioning=False).with_columns(
        pl.col("file_id").cast(pl.Int64), pl.col("line_no").cast(pl.UInt32)
    )
    moved_out = routes.filter(pl.col("call_cycle") == cycle).select("file_id", "line_no", "call_cycle")
    moved_in = routes.filter(pl.col("billed_cycle") == cycle).select("file_id", "line_no", "call_cycle")
    return _by_file(moved_out), _by_file(moved_in)


def _by_file(frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
    return {int(file_id): part for (file_id,), part in frame.partition_by("file_id", as_dict=True).items()}


def _file_records(
    records: pl.LazyFrame, file_id: int, cycle: str, routes: tuple[dict[int, pl.DataFrame], dict[int, pl.DataFrame]]
) -> pl.LazyFrame:
    """One file's usage records of ``cycle`` in line order, as ``cycle_records`` (``late_usage.routed_records_sql``)
    gives them to mediation: its own calls less the late ones, plus the late calls it bills, those with ``cycle``
    the billing cycle and ``late_from_cycle`` the cycle of the call (their status and reason come from the
    outcome)."""
    moved_out, moved_in = (by_file.get(file_id) for by_file in routes)
    own = records.filter(pl.col("cycle") == cycle)
    if moved_out is not None:  # a filter keeps the line order (a join need not)
        own = own.filter(~pl.col("line_no").is_in(moved_out["line_no"].implode()))
    if moved_in is None:  # the usual file: its own calls, already in line order (no second read, no sort)
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
    """Per file, after ``mediate_cycle``: records in, each stream's count, the duplicate rate (duplicate
    records per record in, in percent, to one decimal) and the file's suspense by reason (``REASON n``, the
    largest first; empty when nothing of the file is suspended)."""
    return con.sql(
        """
        with by_reason as (
            select file_id, reason, count(*) as records
            from mediation_outcomes
            where status = 'suspended'
            group by all
        ),
        suspense as (
            select file_id, string_agg(reason || ' ' || records, ', ' order by records desc, reason) as reasons
            from by_reason
            group by file_id
        )
        select
            file_id,
            any_value(source_id) as source_id,
            count(*) as records_in,
            count(*) filter (where status = 'normalised') as normalised,
            count(*) filter (where status = 'suspended') as suspended,
            count(*) filter (where status = 'duplicate') as duplicate,
            count(*) filter (where status = 'discarded') as discarded,
            round(100 * count(*) filter (where status = 'duplicate') / count(*), 1) as duplicate_rate_percent,
            coalesce(any_value(suspense.reasons), '') as suspended_by_reason
        from mediation_outcomes
        left join suspense using (file_id)
        group by file_id
        order by file_id
        """
    )
