"""CGRateS CDR export, CSV (``*file_csv`` of its CDR exporter, ``*fileCSV`` of its event exporters): one quoted
CSV line per rated CDR, the columns found by the names of a header line that the export must carry (CGRateS
writes one only when the template has header fields; its columns are a template, so their order is free). The
subset read is in ``docs/formats/cgrates_cdr.md``:

* record id: ``CGRID`` (else ``OriginID``), ``:RunID`` appended when the column is there — a CDR is unique by
  CGRID and run in CGRateS; each CDR is one event (no call id: the leg rules do not apply);
* charged number: ``Account`` (the balance CGRateS debits), also the calling number; ``Subject`` (the rating
  subject) is kept in the raw text only; called number: ``Destination`` (none for ``*data``: an APN, not a
  dialled number);
* times: ``SetupTime`` and ``AnswerTime`` in RFC 3339 (``2026-10-05T14:15:00Z``, an offset or fractions
  allowed), converted to UTC; Go's zero time ``0001-01-01T00:00:00Z`` or an empty field means none. The start
  is SetupTime, else AnswerTime;
* ``Usage``: a duration in nanoseconds, as an integer (the event exporters' ``~*req.Usage``) or a Go duration
  (``1m30s``, ``250ms``: the CDR exporter of v0.10). CGRateS keeps a message count and a byte count in the same
  nanoseconds: ``*sms`` 1 = one message, ``*data`` 1048576 = 1 MiB;
* ``ToR`` → the service (``service_raw``, mapped by normalisation); no ToR column: every record is voice.

Rules: a voice record is answered when it has an answer time, its billed seconds are its usage rounded up to
the second; a voice usage of 1 ns to under 1 ms is refused (unreadable: it is a seconds count exported by an
older template, read as nanoseconds it would bill nothing). An SMS or a data session has no answer disposition:
it is delivered when its usage is positive (normalisation's rule on ``units``), its billed seconds are 0 and its
units the usage (``units_raw``). A line whose field count differs from the header's, or with broken quoting, is
kept with reason UNPARSEABLE."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import (
    UNPARSEABLE,
    FileRejected,
    ParsedFile,
    as_utf8,
    conform,
    read_csv_lines,
    split_csv_fields,
    split_lines,
)

REQUIRED = ("Account", "Destination", "SetupTime", "AnswerTime", "Usage")
RECORD_IDS = ("CGRID", "OriginID")  # the first one the header names is the record id
OPTIONAL = ("RunID", "ToR")
HEADER_LINES = 1
VOICE, DATA = "*voice", "*data"
_NS_PER_SECOND = 1_000_000_000
_MIN_VOICE_NS = 1_000_000  # a voice usage of 1 ns to under 1 ms is a seconds count, not nanoseconds
# a Go duration as time.Duration.String() writes it: 1h2m3.5s, or below a second 250ms / 1.5µs / 10ns
_DURATION = r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)(?:\.(\d{1,9}))?s)?$"
_SUBSECOND = r"^(\d+)(?:\.(\d{1,6}))?(ms|us|µs|ns)$"
_SUBSECOND_DIGITS = {"ms": 6, "us": 3, "µs": 3, "ns": 0}


def parse(data: bytes, template: str | None = None) -> ParsedFile:
    """Read a CGRateS CSV export by its header line; a file whose header does not name the required columns
    is refused whole (MISSING_HEADER)."""
    utf8, text = as_utf8(data)
    lines = split_lines(text, utf8)
    if lines.height < HEADER_LINES:
        raise FileRejected("MISSING_HEADER", "a CGRateS CDR export starts with a header line of column names")
    header = split_csv_fields(lines.head(1))["fields"][0]
    names = [str(name).strip() for name in (header.to_list() if header is not None else [])]
    record_id = next((name for name in RECORD_IDS if name in names), None)
    missing = [name for name in REQUIRED if name not in names] + ([] if record_id else ["CGRID or OriginID"])
    if missing or record_id is None:
        raise FileRejected("MISSING_HEADER", f"the header line lacks {', '.join(missing)}")
    taken = [*REQUIRED, record_id, *(name for name in OPTIONAL if name in names)]
    wanted = [names.index(name) for name in taken]
    # the records' bytes after the header line, for the reader to take whole (as Asterisk and CUCM are read)
    parts = utf8.split(b"\n", HEADER_LINES)
    body = parts[HEADER_LINES] if len(parts) > HEADER_LINES else b""
    lines = read_csv_lines(lines.slice(HEADER_LINES), len(names), len(names), len(names), body, wanted)
    field = {name: pl.col(f"f{names.index(name)}") for name in taken}
    # the values the output uses several times, computed once each (an eager select evaluates a repeated
    # expression every time it appears: the times' parsing was most of the parse)
    lines = lines.with_columns(
        # an empty ToR is voice, as CGRateS itself fills it (``CDR.AddDefaults``): the same as no ToR column
        _tor=field["ToR"].str.strip_chars().replace("", None) if "ToR" in field else pl.lit(None, pl.String),
        _setup=_utc(field["SetupTime"]),
        _answer=_utc(field["AnswerTime"]),
        _usage=field["Usage"].str.strip_chars(),
    ).with_columns(_usage_ns=usage_nanoseconds(pl.col("_usage")), _tor_lower=pl.col("_tor").str.to_lowercase())
    tor, setup, answer, usage, usage_ns = (pl.col(c) for c in ("_tor", "_setup", "_answer", "_usage", "_usage_ns"))
    is_voice = tor.is_null() | (pl.col("_tor_lower") == VOICE)
    run = field["RunID"].str.strip_chars() if "RunID" in field else pl.lit("")
    voice_ns = pl.when(usage_ns.is_between(1, _MIN_VOICE_NS - 1)).then(None).otherwise(usage_ns)
    records = lines.select(
        "line_no",
        "raw",
        source_record_id=pl.when(run.fill_null("") == "")
        .then(field[record_id])
        .otherwise(pl.concat_str(field[record_id], pl.lit(":"), run)),
        charged_raw=field["Account"],
        calling_raw=field["Account"],
        called_raw=pl.when(pl.col("_tor_lower") == DATA).then(None).otherwise(field["Destination"]),
        # no usable setup time: the answer time; neither: the text as written (normalisation suspends it)
        start_local_raw=pl.coalesce(setup, answer, field["SetupTime"]),
        answer_local_raw=answer.fill_null(""),
        billsec_raw=pl.when(is_voice)
        .then(((voice_ns + _NS_PER_SECOND - 1) // _NS_PER_SECOND).cast(pl.String))
        .otherwise(pl.lit("0")),
        units_raw=pl.when(is_voice).then(None).otherwise(pl.coalesce(usage_ns.cast(pl.String), usage)),
        service_raw=tor,
        disposition=pl.when(~is_voice | answer.is_not_null())
        .then(pl.lit("ANSWERED"))
        .otherwise(pl.lit("NO ANSWER")),
        parse_error=pl.when(~pl.col("well_formed") | (pl.col("n_fields") != len(names)))
        .then(pl.lit(UNPARSEABLE))
        .otherwise(pl.lit(None)),
    )
    return ParsedFile(records=conform(records), control_records=HEADER_LINES, timezone="UTC")


def _utc(text: pl.Expr) -> pl.Expr:
    """An RFC 3339 time as 'YYYY-MM-DD HH:MM:SS' in UTC (fractions of a second dropped); null when empty,
    unreadable or Go's zero time (year 1: CGRateS's "no time")."""
    moment = (
        text.str.strip_chars().str.to_datetime("%+", strict=False, time_unit="us").dt.convert_time_zone("UTC")
    )
    return pl.when(moment.dt.year() > 1).then(moment.dt.strftime("%Y-%m-%d %H:%M:%S"))


def usage_nanoseconds(usage: pl.Expr) -> pl.Expr:
    """CGRateS's Usage in whole nanoseconds: an integer, or a Go duration (``1h2m3.5s``, ``250ms``,
    ``1.5µs``, ``10ns``); null when it is neither (empty, negative, a decimal without a unit)."""
    whole = usage.str.extract_groups(_DURATION)
    hours, minutes, seconds, fraction = (whole.struct[i] for i in range(4))
    from_seconds = (
        hours.cast(pl.Int64, strict=False).fill_null(0) * 3600 * _NS_PER_SECOND
        + minutes.cast(pl.Int64, strict=False).fill_null(0) * 60 * _NS_PER_SECOND
        + seconds.cast(pl.Int64, strict=False).fill_null(0) * _NS_PER_SECOND
        + fraction.str.pad_end(9, "0").cast(pl.Int64, strict=False).fill_null(0)
    )
    small = usage.str.extract_groups(_SUBSECOND)
    number, decimals, unit = (small.struct[i] for i in range(3))
    digits = unit.replace_strict(_SUBSECOND_DIGITS, default=None, return_dtype=pl.Int64)
    scale = pl.lit(10, pl.Int64).pow(digits)
    padded = decimals.fill_null("").str.pad_end(6, "0").str.slice(0, digits)
    from_subsecond = number.cast(pl.Int64, strict=False) * scale + pl.when(digits > 0).then(
        padded.cast(pl.Int64, strict=False)
    ).otherwise(0)
    has_unit = whole.struct[0].is_not_null() | minutes.is_not_null() | seconds.is_not_null()
    return (
        pl.when(usage.str.contains(r"^\d+$"))
        .then(usage.cast(pl.Int64, strict=False))
        .when(has_unit)
        .then(from_seconds)
        .when(decimals.is_null() | (digits > 0))
        .then(from_subsecond)
    )
