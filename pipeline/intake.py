"""File intake: register every file landed in ``landing/<source_id>/``, refuse duplicate files by content
hash, quarantine what cannot be read whole, and normalise the rest into ``lake/usage_records/file_id=N``.

Order of writes (so a crash at any point is finished by the next run, never double-loaded): records Parquet
(atomic) → ledger row (one transaction) → raw file moved from landing to the archive."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.engine import first_row, scalar
from pipeline.formats import FileRejected, parse_file
from pipeline.home import Home
from pipeline.lake import partition_dir, replace_partition
from pipeline.normalise import normalise

USAGE_RECORDS = "usage_records"


@dataclass
class IntakeReport:
    """What one intake run did, file by file."""

    loaded: list[dict] = field(default_factory=list)
    duplicate_files: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(f["records"] for f in self.loaded)


def landed_files(landing: Path) -> list[Path]:
    """Complete regular files waiting in ``landing/<source>/``, in name order; hidden and ``.part`` files are
    still being written and are left alone. Symlinks are never followed."""
    found = []
    for path in sorted(landing.glob("*/*")):
        if path.name.startswith(".") or path.name.endswith((".part", ".tmp")):
            continue
        if path.is_file() and not path.is_symlink():
            found.append(path)
    return found


def register_landed_files(
    home: Home, con: duckdb.DuckDBPyConnection, sources: pl.DataFrame, *, cycle: str, billing_timezone: str
) -> IntakeReport:
    """Register and load every landed file (the file ledger is ``usage_files`` in state.duckdb)."""
    report = IntakeReport()
    by_source = {row["source_id"]: row for row in sources.iter_rows(named=True)}
    for path in landed_files(home.landing):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        source = by_source.get(path.parent.name)
        seen = first_row(
            con,
            "select file_id, source_id, file_name, stored_path from usage_files "
            "where sha256 = ? and status = 'loaded' order by file_id limit 1",
            [digest],
        )
        row: dict[str, Any] = {
            "source_id": path.parent.name,
            "file_name": path.name,
            "sha256": digest,
            "size_bytes": len(data),
        }
        if seen and seen[1] == row["source_id"] and seen[2] == path.name and not Path(seen[3]).exists():
            _move(path, Path(seen[3]))  # a crash after the ledger write: finish archiving, load nothing again
            continue
        file_id = _next_file_id(con)
        if seen:
            stored = _move(path, home.archive / row["source_id"] / f"{file_id:06d}-{path.name}")
            _ledger(con, file_id, cycle, row, "duplicate_file", stored, duplicate_of=seen[0])
            report.duplicate_files.append({**row, "file_id": file_id, "duplicate_of": seen[0]})
            continue
        try:
            if source is None:
                raise FileRejected(
                    "UNKNOWN_SOURCE", f"no source is configured for landing/{path.parent.name}/"
                )
            parsed = parse_file(source["format"], data, source.get("template"))
        except FileRejected as rejected:
            stored = _move(path, home.quarantine / row["source_id"] / f"{file_id:06d}-{path.name}")
            _ledger(
                con,
                file_id,
                cycle,
                row,
                "quarantined",
                stored,
                reason=rejected.reason,
                reason_detail=rejected.detail,
            )
            report.quarantined.append(
                {**row, "file_id": file_id, "reason": rejected.reason, "detail": rejected.detail}
            )
            continue
        records = normalise(
            parsed.records,
            file_id=file_id,
            source_id=row["source_id"],
            timezone=parsed.timezone or source["timezone"],
            billing_timezone=billing_timezone,
            registered_cycle=cycle,
        )
        replace_partition(
            home.lake, partition_dir(home.lake, USAGE_RECORDS, file_id=file_id), {"records": records}
        )
        stored_path = home.archive / row["source_id"] / f"{file_id:06d}-{path.name}"
        _ledger(
            con,
            file_id,
            cycle,
            row,
            "loaded",
            stored_path,
            records=records.height,
            control_records=parsed.control_records,
        )
        _move(path, stored_path)
        report.loaded.append(
            {
                **row,
                "file_id": file_id,
                "records": records.height,
                **{f"status_{k}": v for k, v in _status_counts(records).items()},
            }
        )
    return report


def _status_counts(records: pl.DataFrame) -> dict[str, int]:
    counts = records.group_by("status").len()
    return {status: int(n) for status, n in counts.iter_rows()}


def _next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(scalar(con, "select coalesce(max(file_id), 0) + 1 from usage_files"))


def _ledger(
    con: duckdb.DuckDBPyConnection,
    file_id: int,
    cycle: str,
    row: dict[str, Any],
    status: str,
    stored: Path,
    **extra: object,
) -> None:
    con.execute(
        "insert into usage_files (file_id, source_id, file_name, sha256, size_bytes, registered_at, "
        "registered_cycle, status, reason, reason_detail, duplicate_of, records, control_records, stored_path) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            file_id,
            row["source_id"],
            row["file_name"],
            row["sha256"],
            row["size_bytes"],
            datetime.now(UTC).replace(tzinfo=None),
            cycle,
            status,
            extra.get("reason"),
            extra.get("reason_detail"),
            extra.get("duplicate_of"),
            extra.get("records"),
            extra.get("control_records"),
            str(stored),
        ],
    )


def _move(path: Path, target: Path) -> Path:
    """Move a raw file out of landing, unchanged (same filesystem: a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(path, target)
    return target
