"""The checked reference kept as typed tables beside its verdict, so the stages after the check read Arrow
columns instead of parsing and typing every CSV again (the 50,000-prefix deck: ~0.4 CPU s per stage).

The snapshot is one file in the home's root (local even when the lake is on object storage), a ZIP archive of
stored members: ``manifest.json`` (the content digest of ``reference_verdict.reference_digest`` the tables were
read under, the tables in their order with their row counts) and one Arrow IPC file (zstd) per table. It is
written to a partial file of its own and renamed over the old one, so a reader sees a whole snapshot or the one
before; it is used only for the digest it names, with every member's CRC-32 checked and every table and row
count as listed. Anything else — missing, another digest, damaged, truncated, from another format — reads as
no snapshot, and the caller reads the CSV files again."""

from __future__ import annotations

import io
import json
import os
import secrets
import time
import zipfile
from pathlib import Path

import polars as pl

from pipeline.faults import crash_point
from pipeline.reference import Reference

SNAPSHOT_FILE = "reference.tables"  # in the home's root, beside the verdict ``reference.checked``
FORMAT = "cdrbill reference tables 1"
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"
STALE_PARTIAL_SECONDS = 3600  # a partial file this old belongs to a writer that died: removed by the next one


def write_snapshot(path: Path, digest: str, reference: Reference) -> None:
    """Keep ``reference``'s tables with the digest of the content they were read from (only call it for content
    that passed ``load_reference``'s checks): written whole to a partial file, then renamed over ``path``."""
    tables = reference.tables()
    manifest = {
        "format": FORMAT,
        "digest": digest,
        "tables": {name: frame.height for name, frame in tables.items()},
    }
    _remove_stale_partials(path)
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}")  # this writer's own
    try:
        with partial.open("xb") as out:  # the umask's permissions, as the verdict beside it
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr(MANIFEST, json.dumps(manifest))
                for name, frame in tables.items():
                    data = io.BytesIO()
                    frame.write_ipc(data, compression="zstd")
                    archive.writestr(f"{name}.arrow", data.getvalue())
                    crash_point("reference_snapshot.table_written")
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read_snapshot(path: Path, digest: str) -> Reference | None:
    """The tables kept in ``path`` if it is a whole snapshot of ``digest`` (its manifest names it, every
    member's CRC-32 holds, every listed table is there with its row count), else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(MANIFEST))
            if manifest.get("format") != FORMAT or manifest.get("digest") != digest:
                return None
            frames = {
                name: pl.read_ipc(io.BytesIO(archive.read(f"{name}.arrow"))) for name in manifest["tables"]
            }
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError, pl.exceptions.PolarsError):
        return None  # missing, truncated, damaged (a CRC mismatch is BadZipFile) or not a snapshot
    if any(frames[name].height != rows for name, rows in manifest["tables"].items()):
        return None
    return Reference(frames)


def _remove_stale_partials(path: Path) -> None:
    """Remove partial snapshots left by a writer killed before its rename (a live writer's is younger)."""
    now = time.time()
    for partial in path.parent.glob(f"{path.name}.*{PARTIAL_SUFFIX}"):
        try:
            if now - partial.stat().st_mtime > STALE_PARTIAL_SECONDS:
                partial.unlink()
        except OSError:
            pass  # removed by another writer meanwhile
