"""BroadWorks (Cisco/BroadSoft) accounting CSV: one record per line, no header, fields by position as the
BroadWorks Accounting Call Detail Record Interface lists them; a comma inside a field is escaped ``\\,``.
Times are ``YYYYMMDDhhmmss.mmm`` in GMT (``userTimeZone`` is kept in the raw text only). Record type
``Start``/``End``/``Failover`` are the server's control records, not usage; ``Long Duration`` marks a partial
record of a long call (its partials share the user number and start time: the call id)."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import (
    UNPARSEABLE,
    ParsedFile,
    conform,
    decode,
    fields_by_name,
    split_backslash_fields,
    split_lines,
)

COLUMNS = (
    "recordId",
    "serviceProvider",
    "type",
    "userNumber",
    "groupNumber",
    "direction",
    "callingNumber",
    "callingPresentationIndicator",
    "calledNumber",
    "startTime",
    "userTimeZone",
    "answerIndicator",
    "answerTime",
    "releaseTime",
    "terminationCause",
)
CONTROL_TYPES = ("Start", "End", "Failover")
_TIME = "%Y%m%d%H%M%S%.3f"
_BUSY_CAUSE = "017"


def _time(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars().str.to_datetime(_TIME, strict=False, time_unit="ms")


def parse(data: bytes, template: str | None = None) -> ParsedFile:
    """Read every line; the caller pays on originating records, terminating records are inbound legs.
    Billed seconds = release − answer, a started second counting whole. A line with fewer fields than
    ``terminationCause`` or a dangling backslash is kept with reason UNPARSEABLE."""
    lines = split_backslash_fields(split_lines(decode(data)))
    field = fields_by_name(COLUMNS)
    record_type = field["type"].str.strip_chars()
    control = (record_type.is_in(CONTROL_TYPES) & pl.col("well_formed")).fill_null(value=False)
    answered = field["answerIndicator"].str.strip_chars().str.starts_with("Yes")
    elapsed_ms = (_time(field["releaseTime"]) - _time(field["answerTime"])).dt.total_milliseconds()
    start = _time(field["startTime"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    records = lines.filter(~control).select(
        "line_no",
        "raw",
        source_record_id=field["recordId"],
        # the partial records of one long call share the user and the start time
        call_id=pl.concat_str(field["userNumber"], field["startTime"], separator="@"),
        record_sequence=pl.when(record_type == "Long Duration").then(record_type),
        charged_raw=field["userNumber"],
        calling_raw=field["callingNumber"],
        called_raw=field["calledNumber"],
        start_local_raw=pl.when(start.is_not_null()).then(start).otherwise(field["startTime"]),
        answer_local_raw=field["answerTime"],
        billsec_raw=pl.when(~answered)
        .then(pl.lit("0"))
        .otherwise(((elapsed_ms + 999) // 1000).cast(pl.String)),
        disposition=pl.when(field["direction"].str.strip_chars() == "Terminating")
        .then(pl.lit("INBOUND"))
        .when(answered)
        .then(pl.lit("ANSWERED"))
        .when(field["terminationCause"].str.strip_chars() == _BUSY_CAUSE)
        .then(pl.lit("BUSY"))
        .otherwise(pl.lit("NO ANSWER")),
        parse_error=pl.when(~pl.col("well_formed") | (pl.col("fields").list.len() < len(COLUMNS)))
        .then(pl.lit(UNPARSEABLE))
        .otherwise(pl.lit(None)),
    )
    return ParsedFile(records=conform(records), control_records=lines.height - records.height, timezone="UTC")
