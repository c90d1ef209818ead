"""EMI DUF (Exchange Message Interface, daily usage file) — the documented subset in ``docs/formats/emi.md``:
175-character records, detail 01-01-01, pack header 20-20-01 and pack trailer 20-20-02 with a record count."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import FileRejected, ParsedFile, conform, decode, split_lines

RECORD_LENGTH = 175
DETAIL, PACK_HEADER, PACK_TRAILER = "010101", "202001", "202002"


def _field(start: int, end: int) -> pl.Expr:
    """Positions are 1-based and inclusive, as the EMI layout documents them."""
    return pl.col("raw").str.slice(start - 1, end - start + 1).str.strip_chars(" ")


def parse(data: bytes) -> ParsedFile:
    """Read packs of EMI records; a trailer whose count differs from the detail records read in its pack
    (or a missing trailer: a truncated file) rejects the whole file, so nothing of it is half-loaded."""
    lines = split_lines(decode(data)).with_columns(record_id=_field(1, 6))
    lines = lines.with_columns(pack=(pl.col("record_id") == PACK_HEADER).cum_sum())
    control = pl.col("record_id").is_in([PACK_HEADER, PACK_TRAILER])
    _check_packs(lines, control)

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
        parse_error=pl.when(pl.col("raw").str.len_chars() != RECORD_LENGTH)
        .then(pl.lit("BAD_RECORD_LENGTH"))
        .when(pl.col("record_id") != DETAIL)
        .then(pl.lit("UNKNOWN_RECORD_TYPE"))
        .otherwise(pl.lit(None)),
    )
    return ParsedFile(records=conform(records), control_records=int(lines.filter(control).height))


def _check_packs(lines: pl.DataFrame, control: pl.Expr) -> None:
    """Every pack opens with a header and closes with a trailer whose count equals its detail records."""
    if lines.height == 0:
        raise FileRejected("EMPTY_FILE", "no records")
    if lines["record_id"][0] != PACK_HEADER:
        raise FileRejected("MISSING_PACK_HEADER", "the first record is not a pack header 20-20-01")
    packs = (
        lines.group_by("pack")
        .agg(
            details=(~control).sum(),
            trailers=(pl.col("record_id") == PACK_TRAILER).sum(),
            declared=pl.col("raw").filter(pl.col("record_id") == PACK_TRAILER).first().str.slice(20, 7),
        )
        .sort("pack")
    )
    for pack in packs.iter_rows(named=True):  # one row per pack, not per record
        if pack["trailers"] != 1:
            raise FileRejected(
                "MISSING_PACK_TRAILER", f"pack {pack['pack']} has no single trailer (truncated?)"
            )
        declared = pack["declared"] or ""
        if not declared.isdigit() or int(declared) != pack["details"]:
            raise FileRejected(
                "CONTROL_TOTAL_MISMATCH",
                f"pack {pack['pack']}: trailer says {declared!r} records, file has {pack['details']}",
            )
