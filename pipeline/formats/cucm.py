"""Cisco Unified CM CDR files: a header line of field names, a line of field types, then one record per
line. Columns are found by name (their order changes between releases); times are UTC epoch seconds;
``dateTimeConnect`` 0 means the call was never answered; the legs of one call share the global call id
(``globalCallID_callManagerId`` + ``globalCallID_callId``)."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import (
    UNPARSEABLE,
    FileRejected,
    ParsedFile,
    as_utf8,
    conform,
    epoch_to_text,
    read_csv_lines,
    split_csv_fields,
    split_lines,
)

REQUIRED = (
    "cdrRecordType",
    "globalCallID_callManagerId",
    "globalCallID_callId",
    "origLegCallIdentifier",
    "dateTimeOrigination",
    "callingPartyNumber",
    "finalCalledPartyNumber",
    "dateTimeConnect",
    "duration",
    "destCause_value",
)
HEADER_LINES = 2  # names, then types
_BUSY_CAUSE = "17"  # Q.850 cause 17: user busy


def parse(data: bytes, template: str | None = None) -> ParsedFile:
    """Read a CUCM CDR file by its header; a file without the header naming the required columns is refused
    whole. A record whose field count differs from the header's is kept with reason UNPARSEABLE."""
    utf8, text = as_utf8(data)
    lines = split_lines(text, utf8)
    if lines.height < HEADER_LINES:
        raise FileRejected("MISSING_HEADER", "a CUCM CDR file starts with a names line and a types line")
    header = split_csv_fields(lines.head(1))["fields"][0]
    names = [str(name).strip() for name in (header.to_list() if header is not None else [])]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise FileRejected("MISSING_HEADER", f"the header line lacks {', '.join(missing)}")
    # the records' bytes after the two header lines, for the reader to take whole; only the columns a usage
    # record takes are made text (a real CUCM file has over 100: the rest stay in the raw text)
    parts = utf8.split(b"\n", HEADER_LINES)
    body = parts[HEADER_LINES] if len(parts) > HEADER_LINES else b""
    wanted = [names.index(name) for name in REQUIRED]
    lines = read_csv_lines(lines.slice(HEADER_LINES), len(names), len(names), len(names), body, wanted)
    field = {name: pl.col(f"f{names.index(name)}") for name in REQUIRED}
    connect = field["dateTimeConnect"].str.strip_chars()
    answered = connect.is_not_null() & (connect != "0") & (connect != "")
    records = lines.select(
        "line_no",
        "raw",
        source_record_id=pl.concat_str(
            field["globalCallID_callManagerId"],
            field["globalCallID_callId"],
            field["origLegCallIdentifier"],
            separator=":",
        ),  # fmt: skip
        call_id=pl.concat_str(
            field["globalCallID_callManagerId"], field["globalCallID_callId"], separator=":"
        ),
        charged_raw=field["callingPartyNumber"],
        calling_raw=field["callingPartyNumber"],
        called_raw=field["finalCalledPartyNumber"],
        start_local_raw=epoch_to_text(field["dateTimeOrigination"]),
        answer_local_raw=pl.when(answered).then(epoch_to_text(connect)).otherwise(pl.lit("")),
        billsec_raw=field["duration"],
        disposition=pl.when(answered)
        .then(pl.lit("ANSWERED"))
        .when(field["destCause_value"].str.strip_chars() == _BUSY_CAUSE)
        .then(pl.lit("BUSY"))
        .otherwise(pl.lit("NO ANSWER")),
        parse_error=pl.when(~pl.col("well_formed") | (pl.col("n_fields") != len(names)))
        .then(pl.lit(UNPARSEABLE))
        .otherwise(pl.lit(None)),
    )
    return ParsedFile(records=conform(records), control_records=HEADER_LINES, timezone="UTC")
