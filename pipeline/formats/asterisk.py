"""Asterisk ``cdr_csv`` Master.csv: no header, quoted fields with doubled-quote escapes, 18 columns
(accountcode … amaflags, uniqueid, userfield); switches configured with more columns append fields after."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import ParsedFile, conform, decode, split_lines

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
)
# One CSV field, preceded by its comma: a quoted field with "" escapes, or a bare field without quotes.
_FIELD = r',("(?:[^"]|"")*"|[^,"]*)'


def split_csv_fields(lines: pl.DataFrame) -> pl.DataFrame:
    """Split quoted CSV lines into a list of unquoted fields, vectorised; ``well_formed`` is false when the
    fields do not cover the whole line (a stray quote, a broken escape)."""
    framed = pl.lit(",") + pl.col("raw")
    matches = framed.str.extract_all(_FIELD)
    return lines.with_columns(
        fields=matches.list.eval(
            pl.element().str.slice(1).str.replace(r'^"(.*)"$', "$1").str.replace_all('""', '"')
        ),
        well_formed=matches.list.eval(pl.element().str.len_chars()).list.sum()
        == pl.col("raw").str.len_chars() + 1,
    )


def parse(data: bytes) -> ParsedFile:
    """Read every line of a Master.csv; a line with fewer than 16 columns or broken quoting is kept with
    reason UNPARSEABLE for suspense."""
    lines = split_csv_fields(split_lines(decode(data)))
    n_fields = pl.col("fields").list.len()
    field = {name: pl.col("fields").list.get(i, null_on_oob=True) for i, name in enumerate(COLUMNS)}
    records = lines.select(
        "line_no",
        "raw",
        source_record_id=field["uniqueid"],
        charged_raw=field["src"],
        calling_raw=field["src"],
        called_raw=field["dst"],
        start_local_raw=field["start"],
        answer_local_raw=field["answer"],
        billsec_raw=field["billsec"],
        disposition=field["disposition"],
        parse_error=pl.when(~pl.col("well_formed") | (n_fields < 16))
        .then(pl.lit("UNPARSEABLE"))
        .otherwise(pl.lit(None)),
    )
    return ParsedFile(records=conform(records))
