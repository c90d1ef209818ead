"""Out-of-core parsing: a line-per-record usage file read in bounded batches of whole lines, each parsed by
its format's own parser, with line numbers and control counts of the whole file. The records are the same,
row for row, as one ``parse_file`` of the whole file; memory is bounded by the batch, not by the file.

Only formats whose records are lines and whose rules hold line by line are read this way
(``LINE_FORMATS``: Asterisk, FreeSWITCH, BroadWorks; CUCM with its two header lines and CGRateS exports with
their one given again to each batch). EMI files with one record per line are read the same way, their pack
control totals counted batch by batch (``emi.PackCounts``) and checked after the last one: a mismatch still
rejects the whole file, whose records are then discarded with the staged partition. A blocked EMI file (no
newlines) is one batch. A file that is not UTF-8 throughout is read whole: the Latin-1 fallback of ``decode``
is a decision about the whole file.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import polars as pl

from pipeline.formats import emi, parse_file
from pipeline.formats.common import Utf8Check, decode

# format → the header lines at the top of a file that every batch needs to be read (CUCM: names, types)
LINE_FORMATS: dict[str, int] = {
    "asterisk_csv": 0, "freeswitch_csv": 0, "broadworks_csv": 0, "cucm_cdr": 2, "cgrates_cdr": 1,
}  # fmt: skip
EMI_FORMAT = "emi_duf"  # records are lines (or fixed blocks); its pack totals are counted across batches
BATCH_BYTES = 32 * 1024 * 1024  # ~100,000 CDR lines: a few hundred MiB of frames at most
READ_BYTES = 8 * 1024 * 1024


class FileChanged(Exception):
    """The file's content changed between the scan that hashed it and the read that parsed it."""


@dataclass(frozen=True)
class FileScan:
    """One read of a landed file: its content hash, size, and whether it is UTF-8 throughout."""

    sha256: str
    size: int
    utf8: bool


@dataclass
class BatchedParse:
    """What the batches of one file added up to (filled in as the batches are consumed)."""

    control_records: int = 0
    notes: dict[str, str] = field(default_factory=dict)
    timezone: str | None = None


def open_regular_file(path: Path) -> int | None:
    """A read-only descriptor of a landed file, opened without following a symlink (one swapped in after the
    listing is refused by the kernel), only if it is a regular file; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def scan_file(path: Path) -> FileScan | None:
    """Hash a landed file in bounded reads (SHA-256: the duplicate-file rule) and tell whether it decodes as
    UTF-8; None when it is not a regular file."""
    fd = open_regular_file(path)
    if fd is None:
        return None
    digest, size = hashlib.sha256(), 0
    utf8 = Utf8Check()  # Python's strict UTF-8 rule, checked in place (no text is built)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(READ_BYTES):
            digest.update(chunk)
            size += len(chunk)
            utf8.add(chunk)
    return FileScan(digest.hexdigest(), size, utf8.finish())


def read_whole(path: Path, scan: FileScan) -> bytes:
    """A landed file's bytes in one read; ``FileChanged`` when it is no longer the regular file ``scan`` hashed."""
    fd = open_regular_file(path)
    if fd is None:
        raise FileChanged(f"{path} is no longer a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != scan.sha256:
        raise FileChanged(f"{path} changed while it was read")
    return data


def line_batches(path: Path, expected_sha256: str, batch_bytes: int = BATCH_BYTES) -> Iterator[bytes]:
    """The file's bytes in batches of whole lines (each but the last ends with a newline; a batch never starts
    with a byte-order mark, which ``decode`` would drop), at least one batch. Raises ``FileChanged`` at the
    end when the bytes of the batches do not hash to ``expected_sha256``. Each batch is read at its offset
    (``os.pread``) with a few bytes beyond, cut (``_cut``) and hashed: the bytes after the cut are read again
    with the next batch, never copied into it (one copy of the file's bytes, not three)."""
    fd = open_regular_file(path)
    if fd is None:
        raise FileChanged(f"{path} is no longer a regular file")
    digest = hashlib.sha256()
    position = 0
    yielded = False
    reach = batch_bytes + len(codecs.BOM_UTF8) + 1  # enough to see whether the line after a cut starts with a BOM
    try:
        while True:
            data = _read_at(fd, reach, position)
            end_of_file = len(data) < reach
            cut = _cut(data, batch_bytes) if len(data) >= batch_bytes else None
            if cut is None and not end_of_file:
                reach *= 2  # no cut in sight (a line longer than the batch, or BOM lines): read further
                continue
            if cut is None:  # the rest of the file
                if data or not yielded:
                    digest.update(data)
                    yield data
                break
            batch = data[:cut]
            del data
            digest.update(batch)
            yield batch
            yielded = True
            position += cut
            reach = batch_bytes + len(codecs.BOM_UTF8) + 1
    finally:
        os.close(fd)
    if digest.hexdigest() != expected_sha256:
        raise FileChanged(f"{path} changed while it was read")


def _read_at(fd: int, size: int, position: int) -> bytes:
    """Up to ``size`` bytes of the file from ``position`` (fewer only at its end)."""
    data = os.pread(fd, size, position)
    while len(data) < size and (more := os.pread(fd, size - len(data), position + len(data))):
        data += more
    return data


def _cut(buffer: bytes, batch_bytes: int) -> int | None:
    """Where to end a batch: after the last newline within ``batch_bytes`` (or the first one after it, for a
    longer line), never before a line that starts with a byte-order mark."""
    end = buffer.rfind(b"\n", 0, batch_bytes)
    if end < 0:
        end = buffer.find(b"\n", batch_bytes)
    while end >= 0 and buffer.startswith(codecs.BOM_UTF8, end + 1):
        end = buffer.find(b"\n", end + 1)
    # the bytes after the cut must show whether a byte-order mark starts the next batch: else read on
    if end < 0 or end + 1 + len(codecs.BOM_UTF8) > len(buffer):
        return None
    return end + 1


@dataclass(frozen=True)
class ParsedBatch:
    """One batch's records (``RAW_SCHEMA``, line numbers of the whole file; None for a note about the whole
    file) and what the batch adds to the file's ``BatchedParse``."""

    records: pl.DataFrame | None
    control_records: int = 0
    notes: dict[str, str] = field(default_factory=dict)
    timezone: str | None = None
    last_part: bool = True  # False: the next result is more lines of the same batch (``batch_tasks``' parts)

    def add_to(self, summary: BatchedParse) -> None:
        """Add this batch to the file's summary (in batch order: the first time zone given is the file's)."""
        summary.control_records += self.control_records
        summary.notes.update({k: v for k, v in self.notes.items() if v})
        summary.timezone = summary.timezone or self.timezone


BatchTask = Callable[[], ParsedBatch]


def parse_batches(
    format_name: str, path: Path, scan: FileScan, template: str | None, summary: BatchedParse,
    batch_bytes: int = BATCH_BYTES, parts: int = 1,
) -> Iterator[pl.DataFrame]:  # fmt: skip
    """The records of a landed file (``RAW_SCHEMA``, line numbers of the whole file), batch by batch for a
    line format in UTF-8, else in one piece; ``summary`` gets the file's control records, notes and time zone.
    A ``FileRejected`` from the parser stops the iteration (nothing of the file may be kept). Each batch is
    parsed in ``parts`` pieces (``batch_tasks``), given back as one frame."""
    pieces: list[pl.DataFrame] = []
    for task in batch_tasks(format_name, path, scan, template, batch_bytes, parts):
        batch = task()
        batch.add_to(summary)
        if batch.records is not None:
            pieces.append(batch.records)
        if batch.last_part and pieces:
            yield pieces[0] if len(pieces) == 1 else pl.concat(pieces)
            pieces = []


def batch_tasks(
    format_name: str,
    path: Path,
    scan: FileScan,
    template: str | None,
    batch_bytes: int = BATCH_BYTES,
    parts: int = 1,
) -> Iterator[BatchTask]:
    """``parse_batches`` as tasks: the file is read here, in order, one batch at a time (the read and its
    SHA-256), and each task parses one batch — or one of its ``parts`` of whole lines, ``ParsedBatch.last_part``
    marking a batch's last — by itself, so that tasks may run at once on several threads (``pipeline.ordered``).
    Their results, taken in task order (``ParsedBatch.add_to``, a batch's parts concatenated), are exactly those
    of ``parse_batches``. A ``FileChanged`` or an EMI ``FileRejected`` of the whole file comes from this
    iterator, after the last task of the file; a parser's ``FileRejected`` from the task of its batch."""
    header_lines = LINE_FORMATS.get(format_name)
    if format_name == EMI_FORMAT and scan.utf8:
        yield from _emi_tasks(path, scan, batch_bytes)
        return
    if header_lines is None or not scan.utf8:
        yield partial(parse_batch, format_name, read_whole(path, scan), template, 0, None)
        return
    header = b""
    lines_before = 0  # lines of the file before the current part
    batches = _header_first(line_batches(path, scan.sha256, batch_bytes), header_lines)
    for index, batch in enumerate(batches):
        if index == 0:
            header = first_lines(batch, header_lines)
        pieces = line_parts(batch, parts, header_lines if index == 0 else 0)
        del batch  # held as its pieces only, while their tasks wait
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1
            if index == 0 and number == 0:
                yield partial(parse_batch, format_name, piece, template, 0, None, last)
            else:
                prefix = header.count(b"\n")
                yield partial(parse_batch, format_name, header + piece, template, prefix, lines_before, last)
            lines_before += piece.count(b"\n")


def line_parts(batch: bytes, parts: int, header_lines: int = 0) -> list[bytes]:
    """A batch cut into (at most) ``parts`` pieces of whole lines of about equal size, by the rule that cuts a
    file into batches (``_cut``: never before a line that starts with a byte-order mark); the first piece
    keeps the file's ``header_lines`` (a CUCM file's names and types). One piece where no such cut exists."""
    pieces: list[bytes] = []
    rest = batch
    for left in range(parts, 1, -1):
        cut = _cut(rest, len(rest) // left) if len(rest) >= left else None
        if cut is None or (not pieces and rest[:cut].count(b"\n") < header_lines):
            break
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return [*pieces, rest]


def parse_batch(
    format_name: str,
    data: bytes,
    template: str | None,
    prefix_lines: int,
    lines_before: int | None,
    last_part: bool = True,
) -> ParsedBatch:
    """Parse one batch or part of one (after ``prefix_lines`` header lines repeated from the top of the
    file), its line numbers moved to the file's (``lines_before`` lines of the file come before it; None for
    the file's first part, whose line numbers are the file's)."""
    parsed = parse_file(format_name, data, template)
    records = parsed.records
    if lines_before is not None:
        records = records.with_columns(
            (pl.col("line_no").cast(pl.Int64) - prefix_lines + lines_before).cast(pl.UInt32)
        )
    return ParsedBatch(records, parsed.control_records - prefix_lines, parsed.notes, parsed.timezone, last_part)


def _emi_tasks(path: Path, scan: FileScan, batch_bytes: int) -> Iterator[BatchTask]:
    """An EMI file's detail records batch by batch (line numbers of the whole file), parsed here in order (a
    pack may span batches: ``emi.PackCounts`` counts them as they come); after the last batch its packs are
    checked (``emi.PackCounts.check``: ``FileRejected`` on a control-total mismatch or a missing header or
    trailer) and their sequence numbers given as a last note of the file."""
    packs = emi.PackCounts()
    lines_before = 0
    for index, batch in enumerate(line_batches(path, scan.sha256, batch_bytes)):
        # a second batch exists only where the file has newlines: the first batch tells its own layout
        parsed = packs.add(decode(batch), newline_separated=True if index else None)
        records = parsed.records
        if index:
            records = records.with_columns((pl.col("line_no").cast(pl.Int64) + lines_before).cast(pl.UInt32))
        lines_before += batch.count(b"\n")
        yield partial(ParsedBatch, records, parsed.control_records, parsed.notes, parsed.timezone)
    yield partial(ParsedBatch, None, 0, packs.check())


def _header_first(batches: Iterator[bytes], header_lines: int) -> Iterator[bytes]:
    """The batches, the first one grown until it holds the file's header lines (or the whole file)."""
    first: bytes | None = b""
    for batch in batches:
        if first is None:
            yield batch
            continue
        first += batch
        if header_lines == 0 or first.count(b"\n") >= header_lines:
            yield first
            first = None
    if first is not None:
        yield first


def first_lines(data: bytes, count: int) -> bytes:
    """The first ``count`` lines of ``data``, newlines included (fewer when it has fewer)."""
    end = 0
    for _ in range(count):
        found = data.find(b"\n", end)
        if found < 0:
            return data
        end = found + 1
    return data[:end]
