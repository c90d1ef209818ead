"""What every format parser returns, and the text handling they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

# The columns every parser yields, all as text exactly as the source wrote them (normalisation comes later).
RAW_SCHEMA: dict[str, pl.DataType] = {
    "line_no": pl.UInt32(),
    "raw": pl.String(),
    "source_record_id": pl.String(),
    "charged_raw": pl.String(),  # the number whose account pays (Asterisk src, EMI billing number)
    "calling_raw": pl.String(),
    "called_raw": pl.String(),
    "start_local_raw": pl.String(),
    "answer_local_raw": pl.String(),
    "billsec_raw": pl.String(),
    "disposition": pl.String(),
    "parse_error": pl.String(),  # a suspense reason code when the record could not be read
}


class FileRejected(Exception):
    """A whole file that must be quarantined (unreadable, wrong control totals); nothing of it is loaded."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ParsedFile:
    """The usage records of one file (every physical record, one row each) and its control facts."""

    records: pl.DataFrame
    control_records: int = 0  # headers/trailers: not usage, not counted as records in
    notes: dict[str, str] = field(default_factory=dict)


def decode(data: bytes) -> str:
    """Decode a switch file: UTF-8 (a BOM is dropped), else Latin-1 so that every byte is kept."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def split_lines(text: str) -> pl.DataFrame:
    """One row per physical line (CRLF or LF), numbered from 1; the empty remainder after a final newline is
    not a line."""
    lines = pl.DataFrame({"raw": [text]}).select(pl.col("raw").str.split("\n")).explode("raw")
    lines = lines.with_row_index("line_no", offset=1).with_columns(
        pl.col("line_no").cast(pl.UInt32), pl.col("raw").str.strip_suffix("\r")
    )
    if text.endswith("\n") or text == "":
        lines = lines.slice(0, lines.height - 1)
    return lines


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a parser's output exactly the shared raw schema (missing columns are null)."""
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in RAW_SCHEMA.items()
        ]
    )
