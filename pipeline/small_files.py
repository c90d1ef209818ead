"""Small landed files read together. A switch that closes its CDR file every hour or minute lands hundreds of
files of a few hundred lines a day; read one by one, each pays the parser's and the normaliser's fixed cost per
call (~20 ms of CPU for a 1,000-line Asterisk file, most of it polars starting work on a tiny frame: 1m in
1,000-line files took 5.7× the CPU of 1m in five files, docs/SCALE_LOG.md). Rule: consecutive small files of one
source, in a format whose records are single lines (Asterisk, FreeSWITCH, BroadWorks; CUCM files that start with
the same names and types lines, read as one file of that header), are parsed and normalised as one batch — their
lines one after another, as a large file's batches are — and the result is cut back into each file's records,
line numbers its own. Each file is then registered alone, in landing order, as if read by itself
(``pipeline.intake``): the same records, ledger and archive (tests)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.formats.batches import FileScan

# line formats whose parse of two files' lines one after the other is the two parses, line numbers moved on, and
# the header lines each file starts with (a CUCM file's names and types, given once for files of one header)
GROUPED_FORMATS = {"asterisk_csv": 0, "freeswitch_csv": 0, "broadworks_csv": 0, "cucm_cdr": 2}
GROUP_FILE_BYTES = 1 << 20  # a file this small joins a group (~4,000 CDR lines); a larger one is read alone
FILE_INDEX = "__file_index"


def joins(scan: FileScan, source: dict[str, Any] | None, batch_bytes: int) -> bool:
    """Whether a landed file may be read with others of its source: a known source of ``GROUPED_FORMATS``, UTF-8
    throughout (a Latin-1 file's decoding is a decision about the whole file), not empty, and small (at most
    ``GROUP_FILE_BYTES`` and one batch)."""
    return (
        source is not None
        and source["format"] in GROUPED_FORMATS
        and scan.utf8
        and 0 < scan.size <= min(GROUP_FILE_BYTES, batch_bytes)
    )


def joins_as_read(data: bytes) -> bool:
    """Whether a small file's bytes may follow another's: it ends with a newline (else its last line would run
    into the next file's first) and does not start with a byte-order mark (a file's own is dropped only at the
    start of what the parser reads)."""
    return data.endswith(b"\n") and not data.startswith(codecs.BOM_UTF8)


@dataclass
class SmallFiles:
    """Consecutive small landed files of one source waiting to be read together, at most ``batch_bytes`` of
    them, no two of one content (the second is a duplicate file of the first, decided once the first is in the
    ledger)."""

    batch_bytes: int
    files: list[tuple[Path, FileScan, dict[str, Any]]] = field(default_factory=list)
    size: int = 0

    def takes(self, scan: FileScan, source: dict[str, Any]) -> bool:
        """Whether this file can join the files waiting (same source, room left, a content not among them)."""
        if not self.files:
            return True
        return (
            source["source_id"] == self.files[0][2]["source_id"]
            and self.size + scan.size <= self.batch_bytes
            and all(scan.sha256 != waiting.sha256 for _, waiting, _ in self.files)
        )

    def add(self, path: Path, scan: FileScan, source: dict[str, Any]) -> None:
        """Let the file wait with the others (``takes`` said it may)."""
        self.files.append((path, scan, source))
        self.size += scan.size

    def take(self) -> list[tuple[Path, FileScan, dict[str, Any]]]:
        """The files waiting, in landing order; none wait afterwards."""
        files, self.files, self.size = self.files, [], 0
        return files


def cut_back(records: pl.DataFrame, line_counts: list[int], header_lines: int = 0) -> list[pl.DataFrame]:
    """The records of files read one after another as one file — ``header_lines`` lines of their shared header,
    then each file's ``line_counts`` lines after its own header — cut back into each file's, in order, line
    numbers the file's own (after its header, as a file read alone numbers them)."""
    ends = pl.Series(line_counts, dtype=pl.UInt64).cum_sum()
    starts = [0, *ends[:-1].to_list()]
    index = ends.search_sorted(records["line_no"].cast(pl.UInt64) - header_lines, side="left")
    parts = records.with_columns(index.alias(FILE_INDEX)).partition_by(FILE_INDEX, as_dict=True, maintain_order=True)
    empty = records.clear()
    cut = []
    for i, start in enumerate(starts):
        part = parts.get((i,))
        if part is None:
            cut.append(empty)
            continue
        cut.append(part.drop(FILE_INDEX).with_columns((pl.col("line_no") - start).cast(pl.UInt32)))
    return cut
