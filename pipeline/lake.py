"""The Parquet lake. A partition is a symlink (``lake/rated/cycle=2026-10``) to an immutable version folder
under ``lake/.versions/``; a new version is written aside and the link is swapped with one atomic rename, so a
crash leaves the old partition or the new one, never half of one, and readers never see a partial write."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import duckdb
import polars as pl

from pipeline.durable import fsync_path
from pipeline.faults import crash_point

Table = pl.DataFrame | duckdb.DuckDBPyRelation


def partition_dir(lake: Path, dataset: str, **keys: str | int) -> Path:
    """The hive-style path of one partition, e.g. ``lake/rated/cycle=2026-10``."""
    path = lake / dataset
    for name, value in keys.items():
        path = path / f"{name}={value}"
    return path


def replace_partition(lake: Path, target: Path, tables: dict[str, Table]) -> dict[str, int]:
    """Write each table as ``<name>.parquet`` into a new version folder, then point ``target`` at it
    atomically; returns the row count of each table written."""
    version = (
        lake / ".versions" / f"{target.relative_to(lake).as_posix().replace('/', '~')}.{uuid.uuid4().hex}"
    )
    version.mkdir(parents=True, mode=0o700)
    counts: dict[str, int] = {}
    for name, table in tables.items():
        path = version / f"{name}.parquet"
        if isinstance(table, pl.DataFrame):
            table.write_parquet(path)
        else:
            table.write_parquet(str(path))
        counts[name] = pl.scan_parquet(path).select(pl.len()).collect().item()
        fsync_path(path)
    fsync_path(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = os.path.realpath(target) if target.is_symlink() else None
    link = target.parent / f".{target.name}.{uuid.uuid4().hex}.link"
    crash_point("lake.version_written")
    os.symlink(version, link)
    os.replace(link, target)  # the atomic swap
    fsync_path(target.parent)
    crash_point("lake.swapped")
    if previous and previous != str(version):
        shutil.rmtree(previous, ignore_errors=True)
    return counts
