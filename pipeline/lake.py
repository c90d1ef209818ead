"""The Parquet lake. A partition is a symlink (``lake/rated/cycle=2026-10``) to an immutable version folder
under ``lake/.versions/``; a new version is written aside and the link is swapped with one atomic rename, so a
crash leaves the old partition or the new one, never half of one, and readers never see a partial write."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.durable import fsync_path
from pipeline.faults import crash_point

Table = pl.DataFrame | duckdb.DuckDBPyRelation
PARQUET_CODEC = "zstd"  # polars' default too: the batches of a file read back like a file written whole
# zstd level 1: the usage records (raw text included) come out the same size as at pyarrow's default level,
# for ~30 % less CPU (measured on a 389,296-line Asterisk file: 29 MB either way, 0.50 -> 0.36 CPU s)
PARQUET_CODEC_LEVEL = 1
ROW_GROUP_ROWS = 128 * 1024
# a usage record's raw text is unique to it: a dictionary page never pays and costs time to build
NO_DICTIONARY = ("raw",)
# ... and it is most of a usage record's bytes: LZ4 writes it in ~2/3 of zstd-1's CPU and reads it faster, for
# a ~1.5x larger file (389,296-line Asterisk file: 0.48 -> 0.33 CPU s to write, 27 -> 40 MiB; docs/SCALE.md)
RAW_TEXT_CODEC = "lz4"


def partition_dir(lake: Path, dataset: str, **keys: str | int) -> Path:
    """The hive-style path of one partition, e.g. ``lake/rated/cycle=2026-10``."""
    path = lake / dataset
    for name, value in keys.items():
        path = path / f"{name}={value}"
    return path


class StagedPartition:
    """A new version of one partition, written aside: files go into ``folder`` (``path(name)``), then
    ``commit`` points the partition at it atomically, or ``abort`` removes it (nothing of it is seen)."""

    def __init__(self, lake: Path, target: Path) -> None:
        self.lake, self.target = lake, target
        name = target.relative_to(lake).as_posix().replace("/", "~")
        self.folder = lake / ".versions" / f"{name}.{uuid.uuid4().hex}"
        self.folder.mkdir(parents=True, mode=0o700)

    def path(self, name: str) -> Path:
        """Where table ``name`` of this version is written (``<name>.parquet``)."""
        return self.folder / f"{name}.parquet"

    def commit(self) -> None:
        """Make the written files durable and swap the partition's link to this version (the old one goes)."""
        for path in sorted(self.folder.glob("*.parquet")):
            fsync_path(path)
        fsync_path(self.folder)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        previous = os.path.realpath(self.target) if self.target.is_symlink() else None
        link = self.target.parent / f".{self.target.name}.{uuid.uuid4().hex}.link"
        crash_point("lake.version_written")
        os.symlink(self.folder, link)
        os.replace(link, self.target)  # the atomic swap
        fsync_path(self.target.parent)
        crash_point("lake.swapped")
        if previous and previous != str(self.folder):
            shutil.rmtree(previous, ignore_errors=True)

    def abort(self) -> None:
        """Forget this version: the partition keeps what it had."""
        shutil.rmtree(self.folder, ignore_errors=True)


def parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A Parquet writer for lake tables written batch by batch: the lake's codec and level, the raw text
    without a dictionary and in LZ4."""
    return pq.ParquetWriter(
        path,
        schema,
        compression={name: RAW_TEXT_CODEC if name in NO_DICTIONARY else PARQUET_CODEC for name in schema.names},
        compression_level={name: PARQUET_CODEC_LEVEL for name in schema.names if name not in NO_DICTIONARY},
        use_dictionary=[name for name in schema.names if name not in NO_DICTIONARY],
    )


def write_parquet_batches(path: Path, batches: Iterable[pl.DataFrame]) -> int:
    """Write frames of one schema into one Parquet file, a row group (or more) per frame, holding one frame
    in memory at a time; returns the rows written. At least one frame is needed (for the schema)."""
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for frame in batches:
            table = frame.to_arrow()
            if writer is None:
                writer = parquet_writer(path, table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += frame.height
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"{path}: no frame to write")
    return rows


def replace_partition(lake: Path, target: Path, tables: dict[str, Table]) -> dict[str, int]:
    """Write each table as ``<name>.parquet`` into a new version folder, then point ``target`` at it
    atomically; returns the row count of each table written."""
    staged = StagedPartition(lake, target)
    counts: dict[str, int] = {}
    for name, table in tables.items():
        path = staged.path(name)
        if isinstance(table, pl.DataFrame):
            table.write_parquet(path)
        else:
            table.write_parquet(str(path))
        counts[name] = pl.scan_parquet(path).select(pl.len()).collect().item()
    staged.commit()
    return counts
