"""File intake: register every file landed in ``landing/<source_id>/``, refuse duplicate files by content
hash, quarantine what cannot be read whole, and normalise the rest into ``lake/usage_records/file_id=N``.

Order of writes (so a crash at any point is finished by the next run, never double-loaded): records Parquet
(atomic) → ledger row (one transaction) → raw file moved from landing to the archive."""

from __future__ import annotations

import itertools
import os
import re
import time
import unicodedata
from collections.abc import Collection, Generator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.engine import first_row, scalar
from pipeline.faults import crash_point
from pipeline.formats import FileRejected
from pipeline.formats.batches import (
    BATCH_BYTES,
    BatchedParse,
    BatchTask,
    FileChanged,
    FileScan,
    ParsedBatch,
    batch_tasks,
    first_lines,
    line_parts,
    parse_batch,
    read_whole,
    scan_file,
)
from pipeline.home import Home
from pipeline.lake import StagedPartition, partition_dir, write_parquet_batches
from pipeline.normalise import normalise
from pipeline.ordered import ordered_map
from pipeline.small_files import GROUPED_FORMATS, SmallFiles, cut_back, joins, joins_as_read

USAGE_RECORDS = "usage_records"
# a usage record's line number, the source's record id and (nearly) its start time are its own: written plain,
# as mediation writes its streams (``mediation.UNIQUE_COLUMNS``) — a dictionary was built for them and dropped
# in every row group (a 414,235-line Asterisk file: 0.61 -> 0.53 CPU s to write, best of 4, 45.7 -> 42.9 MB)
RECORD_UNIQUE_COLUMNS = ("line_no", "source_record_id", "start_utc", "answer_utc")
# a stored raw file is named "<file_id:06d>-<name>" and a file name has at most 255 bytes (Linux, macOS)
MAX_NAME_BYTES = 255 - len("000000-")
INTAKE_THREADS = 2  # parts of a file's batches parsed and normalised at once (the machine's two cores)
INTAKE_AHEAD = 3  # parts of batches taken and not yet written: 1.5 batches (and the one being written)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@dataclass
class IntakeReport:
    """What one intake run did, file by file."""

    loaded: list[dict] = field(default_factory=list)
    duplicate_files: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)  # landing entries left in place (scan_landing)
    still_landing: list[dict] = field(default_factory=list)  # modified too recently: the next run takes them
    read_together: int = 0  # small files parsed with others of their source (pipeline.small_files)

    @property
    def records(self) -> int:
        return sum(f["records"] for f in self.loaded)


def landed_files(landing: Path, markers: dict[str, str] | None = None) -> list[Path]:
    """Complete regular files waiting in ``landing/<folder>/``, in name order (``scan_landing`` without what
    it refuses)."""
    return scan_landing(landing, markers)[0]


def scan_landing(landing: Path, markers: dict[str, str] | None = None) -> tuple[list[Path], list[dict]]:
    """The landing folder, listed without following anything: complete regular files in ``landing/<folder>/``
    in name order, and the entries refused (left in place, reported on every run until a person removes them):
    symlinks — to a file or to a folder, wherever they point — are never followed; a file directly in
    ``landing/``, a folder inside a source folder, or a device/pipe/socket is not usage either. Hidden and
    ``.part``/``.tmp`` files are still being written and are left alone. Where a source names a marker suffix
    (``markers``: landing folder → suffix), a file is complete only once its marker exists, and markers are not
    usage."""
    markers = markers or {}
    found: list[Path] = []
    refused: list[dict] = []

    def refuse(path: Path, reason: str, detail: str) -> None:
        refused.append({"path": printable(str(path.relative_to(landing))), "reason": reason, "detail": detail})

    for folder in sorted(landing.iterdir()) if landing.is_dir() else []:
        if folder.name.startswith("."):
            continue
        if folder.is_symlink():
            refuse(folder, "SYMLINK", "a symlink is never followed; land the files themselves in a real folder")
            continue
        if not folder.is_dir():
            refuse(folder, "NOT_IN_A_SOURCE_FOLDER", "move it into landing/<the source's landing folder>/")
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.name.endswith((".part", ".tmp")):
                continue
            if path.is_symlink():
                refuse(path, "SYMLINK", "a symlink is never followed; land the file itself (a copy)")
            elif path.is_dir():
                refuse(path, "NESTED_FOLDER", "land files directly in the source folder, not in a subfolder")
            elif not path.is_file():
                refuse(path, "NOT_A_REGULAR_FILE", "only regular files are usage; remove it")
            else:
                suffix = markers.get(folder.name)
                if suffix and (path.name.endswith(suffix) or not path.with_name(path.name + suffix).exists()):
                    continue
                found.append(path)
    return found, refused


def file_name_problem(name: str) -> str | None:
    """Why a landed file's name cannot be stored as it is (the archive keeps ``<file_id>-<name>``, the ledger and
    run metadata show it): not UTF-8, a control or text-direction character, or too long; None when it can."""
    raw = os.fsencode(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "the file name is not valid UTF-8"
    if any(unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS for c in name):
        return "the file name holds a control or text-direction character"
    if len(raw) > MAX_NAME_BYTES:
        return f"the file name is {len(raw)} bytes long, over {MAX_NAME_BYTES}"
    return None


def printable(name: str) -> str:
    """A file name as it can be shown and stored: undecodable bytes and control characters escaped (``\\xNN``),
    cut to ``MAX_NAME_BYTES`` of UTF-8."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    text = "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS else c
        for c in text
    )
    return text.encode()[:MAX_NAME_BYTES].decode("utf-8", "ignore")


def complete_files(
    landing: Path, markers: dict[str, str], previous: dict[str, list[int]]
) -> tuple[list[Path], dict[str, list[int]]]:
    """Which landed files are complete: those whose size and modification time did not change since the
    previous scan (``previous``: path → [size, mtime_ns], from the last call), or — for a source with a
    marker suffix — whose marker exists. Returns them and this scan, to pass back next time."""
    scan: dict[str, list[int]] = {}
    complete = []
    for path in landed_files(landing, markers):
        stat = path.stat()
        scan[str(path)] = [stat.st_size, stat.st_mtime_ns]
        if markers.get(path.parent.name) or previous.get(str(path)) == scan[str(path)]:
            complete.append(path)
    return complete, scan


def register_landed_files(
    home: Home,
    con: duckdb.DuckDBPyConnection,
    sources: pl.DataFrame,
    *,
    cycle: str,
    billing_timezone: str,
    billing_window_days: int = 180,
    batch_bytes: int = BATCH_BYTES,
    settle_seconds: float = 0.0,
    only: Collection[str] | None = None,
) -> IntakeReport:
    """Register and load every complete landed file (the file ledger is ``usage_files`` in state.duckdb):
    a file of a folder no source claims, a file no parser can read whole, or a conflicting resend (a
    sequence number already loaded from other content) is quarantined; the same content again is a
    duplicate file. Each file is read in batches of ``batch_bytes`` of whole lines (bounded memory).

    Rule (a file is taken only when complete): where the source has a marker, its marker says so; else the
    file must not have changed for ``settle_seconds`` (settings ``landing_settle_seconds``). A file modified
    more recently may still be growing: it stays in landing, listed in ``still_landing``, for the next run.
    ``only`` (paths under landing, e.g. ``switch-chi/Master.csv``): the files a landing-sensor scan found
    complete; the run takes those and leaves the rest for a later run."""
    report = IntakeReport()
    by_landing = {row["landing"]: row for row in sources.iter_rows(named=True)}
    markers = {folder: row["marker_suffix"] for folder, row in by_landing.items() if row.get("marker_suffix")}
    landed, report.refused = scan_landing(home.landing, markers)
    if only is not None:
        wanted = set(only)
        landed = [path for path in landed if str(path.relative_to(home.landing)) in wanted]
    landed = _settled(home.landing, landed, markers, settle_seconds, report)
    run = _IntakeRun(home, con, report, by_landing, markers, cycle, billing_timezone, billing_window_days, batch_bytes)
    waiting = SmallFiles(batch_bytes)  # small files of one source, read together (pipeline.small_files)
    # the next file is hashed on another thread while this one is loaded; each is decided and loaded in order
    with closing(ordered_map(_whole_scan, landed, workers=1, ahead=2)) as scans:
        for path, scan in zip(landed, scans, strict=True):
            if scan is None:
                continue
            source = by_landing.get(path.parent.name)
            if source is not None and joins(scan, source, batch_bytes) and file_name_problem(path.name) is None:
                if not waiting.takes(scan, source):
                    _register_together(run, waiting.take())
                # checked once the files before it are in the ledger: a copy of one of them is a duplicate file
                if _loaded_copy(con, scan.sha256) is None:
                    waiting.add(path, scan, source)
                    continue
            _register_together(run, waiting.take())
            _register(run, path, scan)
    _register_together(run, waiting.take())
    return report


@dataclass(frozen=True)
class _IntakeRun:
    """What registering a landed file needs from its intake run (``register_landed_files``' arguments)."""

    home: Home
    con: duckdb.DuckDBPyConnection
    report: IntakeReport
    by_landing: dict[str, dict[str, Any]]  # landing folder → source
    markers: dict[str, str]  # landing folder → marker suffix
    cycle: str
    billing_timezone: str
    billing_window_days: int
    batch_bytes: int


def _register_together(run: _IntakeRun, files: list[tuple[Path, FileScan, dict[str, Any]]]) -> None:
    """Register small files of one source (``pipeline.small_files``) in landing order, each with its own file
    id, records partition, ledger row and archived copy as ``_register`` gives it; those that can follow one
    another as read are parsed and normalised as one batch on ``INTAKE_THREADS`` threads, the others (and a
    file alone) go through ``_register``."""
    home, con = run.home, run.con
    header_lines = GROUPED_FORMATS[files[0][2]["format"]] if files else 0
    by_header: dict[bytes, dict[int, bytes]] = {}  # files that can follow one another as read, by their header
    for i, (path, scan, _) in enumerate(files if len(files) > 1 else []):
        data = _read_whole(path, scan)
        if data is not None and joins_as_read(data) and data.count(b"\n") >= header_lines:
            by_header.setdefault(first_lines(data, header_lines), {})[i] = data
    records: dict[int, tuple[pl.DataFrame, dict[str, int], int]] = {}
    for header, contents in by_header.items():
        if len(contents) < 2:
            continue
        try:
            read = _read_together(
                list(contents.values()), files[0][2], header, billing_timezone=run.billing_timezone,
                registered_cycle=run.cycle, billing_window_days=run.billing_window_days,
            )  # fmt: skip
        except FileRejected:
            continue  # refused whole (a CUCM header without the columns it needs): each file is refused alone
        records.update(zip(contents, read, strict=True))
    del by_header
    next_id = None  # each file read together takes the next file id with its ledger row (loaded or quarantined)
    for i, (path, scan, source) in enumerate(files):
        if i not in records:
            _register(run, path, scan)
            next_id = None
            continue
        frame, status_counts, control_records = records.pop(i)
        run.report.read_together += 1
        file_id = next_id = next_id or _next_file_id(con)
        next_id += 1
        row = _ledger_row(path, source["source_id"], scan)
        loaded = LoadedRecords(BatchedParse(control_records), records=frame.height, status_counts=status_counts)
        staged = StagedPartition(home.lake, partition_dir(home.lake, USAGE_RECORDS, file_id=file_id))
        try:
            frame = frame.with_columns(file_id=pl.lit(file_id, pl.Int32))
            write_parquet_batches(staged.path("records"), [frame], RECORD_UNIQUE_COLUMNS)
            del frame
            _check_sequences(con, path, source, loaded)
        except FileRejected as rejected:
            staged.abort()
            _quarantine(run, path, row, file_id, rejected)
            continue
        except BaseException:
            staged.abort()
            raise
        _store_loaded(run, path, row, file_id, staged, loaded)


def _read_whole(path: Path, scan: FileScan) -> bytes | None:
    """A small landed file's bytes, or None when it is no longer the file that was hashed (``_register`` then
    finds it changed, and a later scan takes it)."""
    try:
        return read_whole(path, scan)
    except FileChanged:
        return None


def _read_together(
    contents: list[bytes],
    source: dict[str, Any],
    header: bytes,
    *,
    billing_timezone: str,
    registered_cycle: str,
    billing_window_days: int,
) -> list[tuple[pl.DataFrame, dict[str, int], int]]:
    """Files of one source, each starting with ``header`` (its header lines, or nothing), parsed and normalised
    as one file of that header (the files' lines after it one after another, cut into ``INTAKE_THREADS`` parts
    parsed at once, the header given again to every part, as ``batches.batch_tasks`` does), then cut back into
    each file's records (file id 0: the caller sets it) with their count by status and the file's control
    records: in these formats every line is a record but the header and the control lines (BroadWorks'
    Start/End/Failover), so a file's lines less its records, as its parser counts them read alone."""
    header_lines = header.count(b"\n")
    bodies = [data[len(header) :] for data in contents]
    line_counts = [body.count(b"\n") for body in bodies]
    whole = header + b"".join(bodies)
    del bodies
    pieces = line_parts(whole, INTAKE_THREADS, header_lines)
    del whole
    starts = [0, *itertools.accumulate(piece.count(b"\n") for piece in pieces[:-1])]
    received_on = datetime.now(UTC).date()

    def normalised(part: tuple[bytes, int]) -> NormalisedBatch:
        piece, lines_before = part
        if lines_before:  # a later part: the header again before its lines, numbered on from the part before
            parsed = parse_batch(source["format"], header + piece, source.get("template"), header_lines, lines_before)
        else:
            parsed = parse_batch(source["format"], piece, source.get("template"), 0, None)
        return normalise_batch(
            parsed, source, file_id=0, billing_timezone=billing_timezone, registered_cycle=registered_cycle,
            billing_window_days=billing_window_days, received_on=received_on,
        )  # fmt: skip

    with closing(ordered_map(normalised, zip(pieces, starts, strict=True), workers=INTAKE_THREADS)) as batches:
        frames = [batch.records for batch in batches if batch.records is not None]
    cut = cut_back(pl.concat(frames), line_counts, header_lines)
    return [
        (
            records,
            {str(s): int(n) for s, n in records.group_by("status").len().iter_rows()},
            header_lines + lines - records.height,
        )
        for records, lines in zip(cut, line_counts, strict=True)
    ]


def _settled(
    landing: Path, landed: list[Path], markers: dict[str, str], settle_seconds: float, report: IntakeReport
) -> list[Path]:
    """The landed files whose marker exists (``scan_landing`` kept only those) or that have not changed for
    ``settle_seconds``; the others go to ``report.still_landing`` with how long ago they changed."""
    if settle_seconds <= 0:
        return landed
    now = time.time()
    settled = []
    for path in landed:
        age = now - path.lstat().st_mtime
        if markers.get(path.parent.name) or age >= settle_seconds:
            settled.append(path)
        else:
            name = printable(str(path.relative_to(landing)))
            report.still_landing.append({"path": name, "changed_seconds_ago": round(max(age, 0.0), 1)})
    return settled


def _whole_scan(path: Path) -> FileScan | None:
    """A landed file's ``scan_file``, or None while it is still growing or no longer a regular file (a later
    scan takes it whole or refuses it)."""
    size = path.lstat().st_size
    scan = scan_file(path)
    if scan is None or scan.size != size or path.lstat().st_size != size:
        return None
    return scan


def _register(run: _IntakeRun, path: Path, scan: FileScan) -> None:
    """Register one landed file (``register_landed_files``' rules), its outcome added to the run's report."""
    home, con, report, markers, cycle = run.home, run.con, run.report, run.markers, run.cycle
    digest = scan.sha256
    source = run.by_landing.get(path.parent.name)
    source_id = source["source_id"] if source else printable(path.parent.name)
    name_problem = file_name_problem(path.name)
    seen = _loaded_copy(con, digest)
    row = _ledger_row(path, source_id, scan)
    if seen and seen[1] == row["source_id"] and seen[2] == row["file_name"] and not Path(seen[3]).exists():
        _move(path, Path(seen[3]))  # a crash after the ledger write: finish archiving, load nothing again
        _remove_marker(path, markers)
        return
    file_id = _next_file_id(con)
    if seen:
        stored = _move(path, home.archive / row["source_id"] / f"{file_id:06d}-{row['file_name']}")
        _ledger(con, file_id, cycle, row, "duplicate_file", stored, duplicate_of=seen[0])
        _remove_marker(path, markers)
        report.duplicate_files.append({**row, "file_id": file_id, "duplicate_of": seen[0]})
        return
    try:
        if name_problem:
            raise FileRejected(
                "BAD_FILE_NAME",
                f"{name_problem} (stored as {row['file_name']!r}); rename it to printable UTF-8 of at most "
                f"{MAX_NAME_BYTES} bytes and land it again",
            )
        if source is None:
            raise FileRejected(
                "UNKNOWN_SOURCE",
                f"no source claims landing/{path.parent.name}/ "
                "(add reference/sources/<source_id>.toml with landing = that folder)",
            )
        staged = StagedPartition(home.lake, partition_dir(home.lake, USAGE_RECORDS, file_id=file_id))
        try:
            loaded = _load_records(
                staged,
                path,
                scan,
                source,
                file_id=file_id,
                billing_timezone=run.billing_timezone,
                registered_cycle=cycle,
                billing_window_days=run.billing_window_days,
                batch_bytes=run.batch_bytes,
            )
            _check_sequences(con, path, source, loaded)
        except BaseException:
            staged.abort()
            raise
    except FileChanged:
        return  # rewritten while it was read: a later scan takes it whole
    except FileRejected as rejected:
        _quarantine(run, path, row, file_id, rejected)
        return
    _store_loaded(run, path, row, file_id, staged, loaded)


def _loaded_copy(con: duckdb.DuckDBPyConnection, sha256: str) -> tuple | None:
    """The first loaded file of this content (file_id, source_id, file_name, stored_path), or None."""
    return first_row(
        con,
        "select file_id, source_id, file_name, stored_path from usage_files "
        "where sha256 = ? and status = 'loaded' order by file_id limit 1",
        [sha256],
    )


def _ledger_row(path: Path, source_id: str, scan: FileScan) -> dict[str, Any]:
    """The ledger's columns that a landed file gives before it is read."""
    return {
        "source_id": source_id,
        "file_name": printable(path.name),
        "sha256": scan.sha256,
        "size_bytes": scan.size,
    }


def _check_sequences(
    con: duckdb.DuckDBPyConnection, path: Path, source: dict[str, Any], loaded: LoadedRecords
) -> None:
    """Rule: a file whose sequence number its source already loaded from other content is a conflicting
    resend (``FileRejected``); sets the file's sequences on ``loaded`` for its ledger."""
    loaded.sequences = file_sequences(path.name, source.get("file_sequence"), loaded.parse.notes)
    _refuse_conflicting_resend(con, source["source_id"], loaded.sequences)


def _quarantine(run: _IntakeRun, path: Path, row: dict[str, Any], file_id: int, rejected: FileRejected) -> None:
    """A file that cannot be loaded whole: moved to quarantine with its reason, nothing of it kept."""
    home, con, report, markers, cycle = run.home, run.con, run.report, run.markers, run.cycle
    stored = _move(path, home.quarantine / row["source_id"] / f"{file_id:06d}-{row['file_name']}")
    _ledger(
        con, file_id, cycle, row, "quarantined", stored, reason=rejected.reason, reason_detail=rejected.detail
    )
    _remove_marker(path, markers)
    report.quarantined.append({**row, "file_id": file_id, "reason": rejected.reason, "detail": rejected.detail})


def _store_loaded(
    run: _IntakeRun, path: Path, row: dict[str, Any], file_id: int, staged: StagedPartition, loaded: LoadedRecords
) -> None:
    """A loaded file, in the order that a crash anywhere leaves finishable (module docstring): its records
    swapped in, its ledger row and sequences (one transaction), then the raw file moved to the archive."""
    home, con, report, markers, cycle = run.home, run.con, run.report, run.markers, run.cycle
    staged.commit()
    crash_point("intake.records_written")
    stored_path = home.archive / row["source_id"] / f"{file_id:06d}-{row['file_name']}"
    con.execute("begin transaction")
    try:
        _ledger(
            con,
            file_id,
            cycle,
            row,
            "loaded",
            stored_path,
            records=loaded.records,
            control_records=loaded.parse.control_records,
        )
        for kind, qualifier, number in loaded.sequences:
            con.execute(
                "insert or ignore into file_sequences values (?, ?, ?, ?, ?)",
                [row["source_id"], kind, qualifier, number, file_id],
            )
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    crash_point("intake.file_registered")
    _move(path, stored_path)
    _remove_marker(path, markers)
    report.loaded.append(
        {
            **row,
            "file_id": file_id,
            "records": loaded.records,
            **{f"status_{k}": v for k, v in sorted(loaded.status_counts.items())},
            **{k: v for k, v in loaded.parse.notes.items() if v},
        }
    )


def file_sequences(file_name: str, pattern: str | None, notes: dict[str, str]) -> list[tuple[str, str, int]]:
    """The sequence numbers a file carries, as (kind, qualifier, number): the number its name holds by the
    source's ``file_sequence`` pattern, and each EMI pack's (qualified by the pack's creation date)."""
    found: list[tuple[str, str, int]] = []
    if pattern and (match := re.search(pattern, file_name)) and match.group(1).isdigit():
        found.append(("file", "", int(match.group(1))))
    for pack in filter(None, notes.get("packs", "").split(",")):
        created, number = pack.split("/")
        found.append(("pack", created, int(number)))
    return found


def _refuse_conflicting_resend(
    con: duckdb.DuckDBPyConnection, source_id: str, sequences: list[tuple[str, str, int]]
) -> None:
    """A sequence number already loaded for this source from other content: a person must decide."""
    for kind, qualifier, number in sequences:
        held = first_row(
            con,
            "select file_id from file_sequences where source_id = ? and kind = ? and qualifier = ? "
            "and sequence_no = ? order by file_id limit 1",
            [source_id, kind, qualifier, number],
        )
        if held:
            raise FileRejected(
                "CONFLICTING_RESEND",
                f"{kind} sequence {qualifier + '/' if qualifier else ''}{number} was already loaded from file "
                f"{held[0]} with other content; archive the wrong one and land the right one again",
            )


def sequence_gaps(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per source and kind of sequence: the numbers missing between the first and the last loaded one."""
    return con.sql(
        """
        with numbers as (
            select distinct source_id, kind, qualifier, sequence_no from file_sequences
        ),
        next_numbers as (
            select *, lead(sequence_no) over (partition by source_id, kind, qualifier order by sequence_no) as next_no
            from numbers
        )
        select source_id, kind, qualifier, sequence_no + 1 as first_missing, next_no - 1 as last_missing,
               next_no - sequence_no - 1 as missing
        from next_numbers
        where next_no > sequence_no + 1
        order by all
        """
    ).pl()


def _remove_marker(path: Path, markers: dict[str, str]) -> None:
    suffix = markers.get(path.parent.name)
    if suffix:
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@dataclass
class LoadedRecords:
    """One file's normalised records as written to its (not yet swapped in) partition."""

    parse: BatchedParse
    records: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    sequences: list[tuple[str, str, int]] = field(default_factory=list)  # file_sequences: set once checked


@dataclass(frozen=True)
class NormalisedBatch:
    """One batch parsed and normalised (on a worker thread): its parse, its records (None for a note about
    the whole file), their count by status, and the time zone their local times were read in."""

    parsed: ParsedBatch
    records: pl.DataFrame | None = None
    status_counts: dict[str, int] = field(default_factory=dict)
    timezone: str | None = None


def _load_records(
    staged: StagedPartition,
    path: Path,
    scan: FileScan,
    source: dict[str, Any],
    *,
    file_id: int,
    billing_timezone: str,
    registered_cycle: str,
    billing_window_days: int,
    batch_bytes: int,
) -> LoadedRecords:
    """Parse and normalise a landed file batch by batch (``pipeline.formats.batches``) into the staged
    ``records.parquet``, the records the same as a whole-file read: the file is read in order on this thread,
    each batch in ``INTAKE_THREADS`` parts parsed and normalised at once on as many threads, while this one
    writes the batch before them in line order (a batch's parts as one frame: the row groups of a whole
    batch). At most ``INTAKE_AHEAD`` parts are in flight besides the batch being written (bounded memory); an
    error of any part stops the file as a loop would, every thread finished before the caller aborts."""
    loaded = LoadedRecords(parse=BatchedParse())
    received_on = datetime.now(UTC).date()

    def normalised(task: BatchTask) -> NormalisedBatch:
        return normalise_batch(
            task(),
            source,
            file_id=file_id,
            billing_timezone=billing_timezone,
            registered_cycle=registered_cycle,
            billing_window_days=billing_window_days,
            received_on=received_on,
        )

    def in_line_order() -> Generator[pl.DataFrame, None, None]:
        tasks = batch_tasks(source["format"], path, scan, source.get("template"), batch_bytes, INTAKE_THREADS)
        pieces: list[pl.DataFrame] = []
        with closing(ordered_map(normalised, tasks, workers=INTAKE_THREADS, ahead=INTAKE_AHEAD)) as batches:
            for batch in batches:
                batch.parsed.add_to(loaded.parse)
                if batch.records is not None:
                    if batch.timezone != (loaded.parse.timezone or source["timezone"]):
                        raise RuntimeError(f"{path}: a batch gave another time zone than the file's first batch")
                    for status, n in batch.status_counts.items():
                        loaded.status_counts[status] = loaded.status_counts.get(status, 0) + n
                    pieces.append(batch.records)
                if batch.parsed.last_part and pieces:
                    # a batch's parts written as the one frame (row groups) a batch parsed whole would give
                    frame = pieces[0] if len(pieces) == 1 else pl.concat(pieces)
                    pieces = []
                    crash_point("intake.batch_normalised")
                    yield frame
                    del frame  # written: not held while the next batch is awaited

    with closing(in_line_order()) as frames:
        loaded.records = write_parquet_batches(staged.path("records"), frames, RECORD_UNIQUE_COLUMNS)
    return loaded


def normalise_batch(
    parsed: ParsedBatch,
    source: dict[str, Any],
    *,
    file_id: int,
    billing_timezone: str,
    registered_cycle: str,
    billing_window_days: int,
    received_on: date,
) -> NormalisedBatch:
    """One parsed batch normalised by its source's rules (``pipeline.normalise``), with its records' count by
    status; a format that fixes its time zone (CUCM, BroadWorks: UTC) gives it for every batch alike."""
    if parsed.records is None:
        return NormalisedBatch(parsed)
    timezone = parsed.timezone or source["timezone"]
    records = normalise(
        parsed.records,
        file_id=file_id,
        source_id=source["source_id"],
        timezone=timezone,
        billing_timezone=billing_timezone,
        registered_cycle=registered_cycle,
        region=source["default_region"],
        received_on=received_on,
        billing_window_days=billing_window_days,
    )
    counts = {str(status): int(n) for status, n in records.group_by("status").len().iter_rows()}
    return NormalisedBatch(parsed, records, counts, timezone)


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
