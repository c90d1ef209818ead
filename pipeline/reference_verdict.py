"""The whole-reference check of a run's first stage, remembered per reference content: ``load_reference`` reads
and checks every table (~0.9 CPU s with the 1m bench's 50,000-prefix deck), so intake runs it only when the
reference folder — or the rules that check it — changed since the last good check.

The verdict is one small file in the home holding the SHA-256 of the rules' code and of every file under the
reference folder (relative path and bytes). Any change of any reference file, a file added or removed, or a
change of the checking code gives another digest, and the whole check runs again; a broken table raises
``ReferenceDataError`` and leaves the verdict as it was. Only a good check is remembered.

With a good check the typed tables are kept beside the verdict (``reference_snapshot``, same digest): the stages
after intake read them instead of the CSV files while the verdict and the snapshot both name the content."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pipeline
from pipeline.reference import Reference, load_reference, load_usage_reference, read_reference
from pipeline.reference_snapshot import SNAPSHOT_FILE, read_snapshot, write_snapshot

VERDICT_FILE = "reference.checked"  # in the home's root, beside state.duckdb (not in the folder it describes)
# what decides whether a reference is good: the domain's code (every module, not only reference.py: sources
# checks formats and templates, currencies reads babel's CLDR data) and the libraries that read and judge it
RULES = Path(str(pipeline.__file__)).parent
LIBRARIES = ("polars", "babel", "phonenumbers")


def reference_digest(folder: Path) -> str:
    """SHA-256 of the rules' source (every module of ``pipeline``), the versions of the libraries that read the
    tables, and every regular file under ``folder``, in path order (the relative path and the length framed, so
    no two folders share a digest by moving bytes between files)."""
    digest = hashlib.sha256("".join(f"{name} {version(name)}\n" for name in LIBRARIES).encode())
    for module in sorted(RULES.rglob("*.py")):
        digest.update(module.read_bytes())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix().encode()
        data = path.read_bytes()
        digest.update(b"%d:%s%d:" % (len(name), name, len(data)))
        digest.update(data)
    return digest.hexdigest()


def checked_usage_reference(folder: Path, verdict: Path) -> Reference:
    """Intake's reference: the whole reference checked by ``load_reference`` unless ``verdict`` holds this
    content's digest from an earlier good check, then only the tables intake reads (``load_usage_reference``,
    whose own checks always run). A content change while it is read means a full check."""
    return _checked(folder, verdict, load_usage_reference, kept=False)


def checked_reference(folder: Path, verdict: Path) -> Reference:
    """Every reference table, for the stages after intake (rating, charges, invoices, documents…): checked by
    ``load_reference`` unless ``verdict`` holds this content's digest from an earlier good check, then the
    typed tables kept beside it (``reference_snapshot``), or, without a whole snapshot of this content, read
    and typed only (``read_reference``) and kept for the next stage."""
    return _checked(folder, verdict, read_reference, kept=True)


def _checked(folder: Path, verdict: Path, unchecked: Callable[[Path], Reference], kept: bool) -> Reference:
    """``unchecked(folder)`` (or, when ``kept``, the snapshot of this content) when the verdict holds the
    folder's digest before and after the read, else the whole check (``load_reference`` raises
    ``ReferenceDataError`` on any broken table: nothing is remembered) and the verdict and the snapshot
    written when the folder did not change while it was checked."""
    snapshot = verdict.with_name(SNAPSHOT_FILE)
    before = reference_digest(folder)
    if _read(verdict) == before:
        if kept and (tables := read_snapshot(snapshot, before)) is not None:
            return tables
        tables = unchecked(folder)
        if reference_digest(folder) == before:
            if kept:
                write_snapshot(snapshot, before, tables)
            return tables
    whole = load_reference(folder)
    after = reference_digest(folder)
    if after == before:
        write_snapshot(snapshot, after, whole)
        _write(verdict, after)
    return whole


def _read(verdict: Path) -> str | None:
    try:
        return verdict.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _write(verdict: Path, digest: str) -> None:
    """Write the verdict atomically (a crash leaves the old one or none, never half a digest)."""
    partial = verdict.with_name(verdict.name + ".tmp")
    partial.write_text(digest + "\n", encoding="ascii")
    os.replace(partial, verdict)
