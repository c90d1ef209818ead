"""Asterisk ``cdr_csv`` Master.csv: no header, quoted fields with doubled-quote escapes, 16 fixed columns
(accountcode … amaflags) then the optional uniqueid, userfield, peeraccount, linkedid, sequence — the column
count varies with the switch's settings, so the trailing columns are read when present."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import (
    UNPARSEABLE,
    ParsedFile,
    as_utf8,
    conform,
    read_csv_lines,
    split_lines,
)

COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
    "peeraccount",
    "linkedid",
    "sequence",
)
MIN_COLUMNS = 16  # accountcode … amaflags
# the fields a usage record takes (the rest stay in its raw text only): the reader makes text of these alone
_TAKEN = ("src", "dst", "start", "answer", "billsec", "disposition", "uniqueid", "linkedid")
_WANTED = [COLUMNS.index(name) for name in _TAKEN]


def parse(data: bytes, template: str | None = None) -> ParsedFile:
    """Read every line of a Master.csv; a line with fewer than 16 columns, more than 21, or broken quoting is
    kept with reason UNPARSEABLE for suspense. Forked legs share ``linkedid`` (the call id); ``sequence`` is a
    CDR counter, not a partial-record marker, so it stays in the raw text only."""
    utf8, text = as_utf8(data)
    lines = read_csv_lines(split_lines(text, utf8), len(COLUMNS), MIN_COLUMNS, len(COLUMNS), utf8, _WANTED)
    n_fields = pl.col("n_fields")
    field = {name: pl.col(f"f{COLUMNS.index(name)}") for name in _TAKEN}
    records = lines.select(
        "line_no",
        "raw",
        source_record_id=field["uniqueid"],
        call_id=field["linkedid"],
        charged_raw=field["src"],
        calling_raw=field["src"],
        called_raw=field["dst"],
        start_local_raw=field["start"],
        answer_local_raw=field["answer"],
        billsec_raw=field["billsec"],
        disposition=field["disposition"].str.strip_chars().str.to_uppercase(),
        parse_error=pl.when(~pl.col("well_formed") | (n_fields < MIN_COLUMNS) | (n_fields > len(COLUMNS)))
        .then(pl.lit(UNPARSEABLE))
        .otherwise(pl.lit(None)),
    )
    return ParsedFile(records=conform(records))
