"""Recycling: once reference data or a source's settings are fixed, suspended records get another chance.
Records suspended at parse or normalisation are re-read from their archived raw file with the current
sources and settings; only rows that were suspended may change (rows already normalised or discarded stay
exactly as they were), and the file's records are swapped in atomically. Mediation and rating then run the
cycle again from the lake — their partitions are rebuilt, never appended to — so a recycled record is rated
once and leaves suspense."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import first_row
from pipeline.formats import FileRejected, parse_file
from pipeline.intake import USAGE_RECORDS
from pipeline.lake import partition_dir, replace_partition
from pipeline.mediation import record_files
from pipeline.normalise import normalise


@dataclass
class RecycleReport:
    """What one recycle run did: per file, the suspended records examined and those that left suspense."""

    files: list[dict] = field(default_factory=list)

    @property
    def examined(self) -> int:
        return sum(f["examined"] for f in self.files)

    @property
    def recycled(self) -> int:
        return sum(f["recycled"] for f in self.files)


def files_with_suspense(lake: Path, cycle: str) -> list[int]:
    """The loaded files holding records suspended at parse or normalisation in the cycle."""
    files = record_files(lake)
    if not files:
        return []
    found = (
        pl.scan_parquet(files)
        .filter((pl.col("cycle") == cycle) & (pl.col("status") == "suspended"))
        .select(pl.col("file_id").unique().sort())
        .collect()
    )
    return [int(file_id) for file_id in found["file_id"]]


def recycle_suspense(
    lake: Path,
    state: duckdb.DuckDBPyConnection,
    sources: pl.DataFrame,
    *,
    cycle: str,
    billing_timezone: str,
    billing_window_days: int = 180,
) -> RecycleReport:
    """Re-parse and re-normalise the suspended records of ``cycle`` from their archived files (the rule:
    a record leaves suspense only by passing every normalisation rule with today's reference data)."""
    report = RecycleReport()
    by_id = {row["source_id"]: row for row in sources.iter_rows(named=True)}
    for file_id in files_with_suspense(lake, cycle):
        ledger = first_row(
            state,
            "select source_id, registered_cycle, registered_at, stored_path from usage_files "
            "where file_id = ? and status = 'loaded'",
            [file_id],
        )
        source = by_id.get(ledger[0]) if ledger else None
        if ledger is None or source is None or not Path(ledger[3]).exists():
            report.files.append(
                {"file_id": file_id, "examined": 0, "recycled": 0, "skipped": "no source/file"}
            )
            continue
        old = pl.read_parquet(partition_dir(lake, USAGE_RECORDS, file_id=file_id) / "records.parquet")
        try:
            parsed = parse_file(source["format"], Path(ledger[3]).read_bytes(), source.get("template"))
        except FileRejected as rejected:
            report.files.append(
                {"file_id": file_id, "examined": 0, "recycled": 0, "skipped": rejected.reason}
            )
            continue
        fresh = normalise(
            parsed.records,
            file_id=file_id,
            source_id=ledger[0],
            timezone=parsed.timezone or source["timezone"],
            billing_timezone=billing_timezone,
            registered_cycle=ledger[1],
            region=source["default_region"],
            received_on=ledger[2].date(),
            billing_window_days=billing_window_days,
        )
        records, examined, recycled = _merge(old, fresh, cycle)
        if recycled:
            replace_partition(lake, partition_dir(lake, USAGE_RECORDS, file_id=file_id), {"records": records})
        report.files.append({"file_id": file_id, "examined": examined, "recycled": recycled})
    return report


def _merge(old: pl.DataFrame, fresh: pl.DataFrame, cycle: str) -> tuple[pl.DataFrame, int, int]:
    """The file's records with each suspended row of the cycle replaced by its fresh reading (same line);
    every other row, and any line the fresh reading lacks, stays as it was."""
    retry = (pl.col("status") == "suspended") & (pl.col("cycle") == cycle)
    candidates = old.filter(retry).select("line_no")
    replacement = fresh.join(candidates, on="line_no", how="semi")
    kept = old.join(replacement.select("line_no"), on="line_no", how="anti")
    merged = pl.concat([kept, replacement.select(old.columns)]).sort("line_no")
    recycled = replacement.filter(pl.col("status") != "suspended").height
    return merged, candidates.height, recycled
