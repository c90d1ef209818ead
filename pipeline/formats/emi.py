"""EMI DUF (Exchange Message Interface, daily usage file) — the documented subset in ``docs/formats/emi.md``:
175- or 210-character records (a 210-character record is a 175-character one with a 35-character module
appended), either one per line or as fixed blocks without newlines; detail 01-01-01; a file is a sequence
of packs, each a header 20-20-01 and a trailer 20-20-02 with the pack's record count."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import FileRejected, ParsedFile, conform, decode, split_lines

RECORD_LENGTH = 175
EXTENDED_RECORD_LENGTH = 210
RECORD_LENGTHS = (RECORD_LENGTH, EXTENDED_RECORD_LENGTH)
DETAIL, PACK_HEADER, PACK_TRAILER = "010101", "202001", "202002"


def _field(start: int, end: int) -> pl.Expr:
    """Positions are 1-based and inclusive, as the EMI layout documents them."""
    return pl.col("raw").str.slice(start - 1, end - start + 1).str.strip_chars(" ")


def records_of(text: str) -> pl.DataFrame:
    """One row per EMI record: the lines of a newline-separated file, or the fixed blocks of a file without
    newlines (block length 175 or 210, told by where the second record starts)."""
    if "\n" in text or text == "":
        return split_lines(text)
    block = _block_length(text)
    starts = pl.int_range(0, (len(text) + block - 1) // block, eager=True) * block
    return pl.DataFrame({"raw": [text]}).select(
        line_no=(pl.int_range(1, starts.len() + 1)).cast(pl.UInt32),
        raw=pl.col("raw").str.slice(pl.lit(starts), block),
    )


def _block_length(text: str) -> int:
    """The record length of a blocked file: the one whose every block starts with a known record id."""
    known = (DETAIL, PACK_HEADER, PACK_TRAILER)
    for length in RECORD_LENGTHS:
        if len(text) % length == 0 and all(text[i : i + 6] in known for i in range(0, len(text), length)):
            return length  # one check per record id of a whole file, before any row is built
    raise FileRejected(
        "UNKNOWN_BLOCKING",
        f"no newlines and the {len(text)} characters are not whole 175- or 210-character records",
    )


def parse(data: bytes, template: str | None = None) -> ParsedFile:
    """Read packs of EMI records; a trailer whose count differs from the detail records read in its pack
    (or a missing trailer: a truncated file) rejects the whole file, so nothing of it is half-loaded. The
    pack sequence numbers read and any gap between them are noted (``notes``)."""
    packs = PackCounts()
    parsed = packs.add(decode(data), newline_separated=None)
    parsed.notes = packs.check()
    return parsed


class PackCounts:
    """The pack control totals of one EMI file read in batches of whole records (``pipeline.formats.batches``):
    each batch adds its packs' detail counts, trailers and control fields (a pack may span batches);
    ``check`` then applies the pack rules to the whole file. Memory is one row per pack, not per record."""

    def __init__(self) -> None:
        self.parts: list[pl.DataFrame] = []
        self.packs_before = 0  # pack headers in the batches already read
        self.first_record_id: str | None = None
        self.records = 0

    def add(self, text: str, newline_separated: bool | None) -> ParsedFile:
        """The records of one batch of whole records (line numbers from 1 within the batch); its packs are
        counted. ``newline_separated``: the file is known to be one record per line (else: told from ``text``,
        as ``records_of`` does)."""
        frame = split_lines(text) if newline_separated else records_of(text)
        lines = frame.with_columns(record_id=_field(1, 6))
        lines = lines.with_columns(
            pack=(pl.col("record_id") == PACK_HEADER).cum_sum().cast(pl.Int64) + self.packs_before
        )
        control = pl.col("record_id").is_in([PACK_HEADER, PACK_TRAILER])
        if lines.height:
            if self.records == 0:
                self.first_record_id = lines["record_id"][0]
            self.records += lines.height
            self.packs_before = int(lines["pack"][-1])
            self.parts.append(_pack_parts(lines, control))
        return ParsedFile(records=_details(lines, control), control_records=int(lines.filter(control).height))

    def check(self) -> dict[str, str]:
        """Every pack opens with a header and closes with a trailer whose count equals its detail records;
        returns the pack sequence numbers read and the gaps between them (``FileRejected`` otherwise)."""
        if self.records == 0:
            raise FileRejected("EMPTY_FILE", "no records")
        if self.first_record_id != PACK_HEADER:
            raise FileRejected("MISSING_PACK_HEADER", "the first record is not a pack header 20-20-01")
        packs = (
            pl.concat(self.parts)
            .group_by("pack", maintain_order=True)
            .agg(
                pl.col("details").sum(),
                pl.col("trailers").sum(),
                pl.col("trailer_last").last(),
                pl.col("sequence").first(),
                pl.col("created").first(),
                pl.col("declared").drop_nulls().first(),
            )
            .sort("pack")
        )
        return _check_packs(packs)


def _pack_parts(lines: pl.DataFrame, control: pl.Expr) -> pl.DataFrame:
    """One batch's share of each pack it holds: detail records, trailers, whether its last record is a
    trailer, the header's sequence and creation date (a pack's first record), the trailer's declared count."""
    return lines.group_by("pack", maintain_order=True).agg(
        details=(~control).sum(),
        trailers=(pl.col("record_id") == PACK_TRAILER).sum(),
        trailer_last=pl.col("record_id").last() == PACK_TRAILER,
        sequence=pl.col("raw").first().str.slice(16, 4),
        created=pl.col("raw").first().str.slice(6, 6),
        declared=pl.col("raw").filter(pl.col("record_id") == PACK_TRAILER).first().str.slice(20, 7),
    )


def _details(lines: pl.DataFrame, control: pl.Expr) -> pl.DataFrame:
    """The usage records (every record that is not a pack header or trailer) in the shared raw schema."""
    elapsed = _field(61, 67)
    valid_elapsed = elapsed.str.contains(r"^\d{7}$")
    tenths = (
        elapsed.str.slice(0, 4).cast(pl.Int64, strict=False) * 600
        + elapsed.str.slice(4, 2).cast(pl.Int64, strict=False) * 10
        + elapsed.str.slice(6, 1).cast(pl.Int64, strict=False)
    )
    date = _field(7, 12)
    time = _field(55, 60)
    start = pl.concat_str(
        pl.lit("20"),
        date.str.slice(0, 2),
        pl.lit("-"),
        date.str.slice(2, 2),
        pl.lit("-"),
        date.str.slice(4, 2),
        pl.lit(" "),
        time.str.slice(0, 2),
        pl.lit(":"),
        time.str.slice(2, 2),
        pl.lit(":"),
        time.str.slice(4, 2),
    )
    records = lines.filter(~control).select(
        "line_no",
        "raw",
        charged_raw=_field(113, 122),
        calling_raw=_field(13, 24),
        called_raw=_field(28, 39),
        start_local_raw=start,
        answer_local_raw=start,
        # elapsed time is in tenths of a second: a started second is a second (ceil)
        billsec_raw=pl.when(valid_elapsed).then(((tenths + 9) // 10).cast(pl.String)).otherwise(elapsed),
        disposition=pl.lit("ANSWERED"),
        parse_error=pl.when(~pl.col("raw").str.len_chars().is_in(RECORD_LENGTHS))
        .then(pl.lit("BAD_RECORD_LENGTH"))
        .when(pl.col("record_id") != DETAIL)
        .then(pl.lit("UNKNOWN_RECORD_TYPE"))
        .otherwise(pl.lit(None)),
    )
    return conform(records)


def _check_packs(packs: pl.DataFrame) -> dict[str, str]:
    """Every pack closes with a single trailer whose count equals its detail records; returns the pack sequence
    numbers read and the gaps between them."""
    for pack in packs.iter_rows(named=True):  # one row per pack, not per record
        if pack["trailers"] != 1 or not pack["trailer_last"]:
            raise FileRejected(
                "MISSING_PACK_TRAILER", f"pack {pack['pack']} has no single closing trailer (truncated?)"
            )
        declared = pack["declared"] or ""
        if not declared.isdigit() or int(declared) != pack["details"]:
            raise FileRejected(
                "CONTROL_TOTAL_MISMATCH",
                f"pack {pack['pack']}: trailer says {declared!r} records, file has {pack['details']}",
            )
    numbered = packs.filter(pl.col("sequence").str.contains(r"^\d{4}$"))
    sequences = [int(s) for s in numbered["sequence"]]
    gaps = [n for a, b in zip(sequences, sequences[1:], strict=False) for n in range(a + 1, b)]
    return {
        "packs": ",".join(f"{c}/{s}" for c, s in numbered.select("created", "sequence").iter_rows()),
        "pack_sequences": ",".join(str(s) for s in sequences),
        "pack_sequence_gaps": ",".join(str(n) for n in gaps),
    }
