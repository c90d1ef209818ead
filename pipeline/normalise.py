"""Normalisation: turn a parsed file's raw records into billable-event candidates — E.164 numbers, UTC times
from the source's time zone, billed seconds, the bill cycle — and apply the written rules that suspend or
discard a record. Every input row leaves with exactly one status."""

from __future__ import annotations

import polars as pl

# Suspense reason codes set here (see docs/GLOSSARY.md); parse reasons come from the format parsers.
BAD_TIMESTAMP = "BAD_TIMESTAMP"
BAD_DURATION = "BAD_DURATION"
BAD_CHARGED_NUMBER = "BAD_CHARGED_NUMBER"
BAD_CALLED_NUMBER = "BAD_CALLED_NUMBER"
DAMAGED_NUMBER = "DAMAGED_NUMBER"  # a number a spreadsheet turned into scientific notation (9.12678E+11)
# Discard rules: a call nobody answered is not billable.
NOT_ANSWERED = "NOT_ANSWERED"
BUSY = "BUSY"
FAILED = "FAILED"
INBOUND_LEG = "INBOUND_LEG"
# Billable by disposition: the written rule table (parsers map their sources' causes to these dispositions).
# None = billable when billsec > 0; otherwise the discard reason. An unknown disposition is not billable.
DISPOSITION_RULES: dict[str, str | None] = {
    "ANSWERED": None,
    "NO ANSWER": NOT_ANSWERED,
    "BUSY": BUSY,
    "FAILED": FAILED,
    "CONGESTION": FAILED,
    "INBOUND": INBOUND_LEG,
}
DISCARD_REASONS = (NOT_ANSWERED, BUSY, FAILED, INBOUND_LEG)
MAX_BILLSEC = 24 * 3600  # a single record longer than a day is absurd for this carrier: suspense

NORMALISED_SCHEMA = {
    "file_id": pl.Int32(),
    "line_no": pl.UInt32(),
    "source_id": pl.String(),
    "cycle": pl.String(),
    "status": pl.String(),
    "reason": pl.String(),
    "raw": pl.String(),
    "source_record_id": pl.String(),
    "call_id": pl.String(),
    "peer_record_id": pl.String(),
    "record_sequence": pl.String(),
    "charged_number": pl.String(),
    "calling_number": pl.String(),
    "called_number": pl.String(),
    "start_utc": pl.Datetime("us"),
    "call_date": pl.Date(),
    "billsec": pl.Int64(),
    "service": pl.String(),
    "units": pl.Int64(),  # voice: billsec; sms/mms: messages; data: bytes; vas: events (shared contract)
    "sms_chars": pl.Int32(),
    "event_code": pl.String(),
    "visited_country": pl.String(),
    "disposition": pl.String(),
}


def nanp_e164(raw: pl.Expr) -> pl.Expr:
    """A number as dialled in the North American Numbering Plan, in E.164: ``+1NPANXXXXXX`` for 10 digits
    or 1+10 digits, ``+CC…`` after the 011 international prefix or a '+'; short codes and N11 (≤ 6 digits)
    stay as dialled digits without '+'; anything else is null (not a valid number)."""
    text = raw.str.strip_chars()
    digits = text.str.replace_all(r"[^0-9]", "")
    return (
        pl.when(text.str.starts_with("+") & digits.str.contains(r"^[1-9]\d{6,14}$"))
        .then(pl.lit("+") + digits)
        .when(digits.str.contains(r"^011[1-9]\d{6,14}$"))
        .then(pl.lit("+") + digits.str.slice(3))
        .when(digits.str.contains(r"^[2-9]\d{2}[2-9]\d{6}$"))
        .then(pl.lit("+1") + digits)
        .when(digits.str.contains(r"^1[2-9]\d{2}[2-9]\d{6}$"))
        .then(pl.lit("+") + digits)
        .when(digits.str.contains(r"^\d{2,6}$"))
        .then(digits)
        .otherwise(pl.lit(None))
    )


def spreadsheet_damaged(raw: pl.Expr) -> pl.Expr:
    """A number a spreadsheet rewrote in scientific notation (``9.12678E+11``): its digits are lost."""
    return raw.str.strip_chars().str.contains(r"^[0-9]+(\.[0-9]+)?[Ee][+-]?[0-9]+$").fill_null(value=False)


def disposition_rule(disposition: pl.Expr, billsec: pl.Expr) -> pl.Expr:
    """The discard reason of a record by its disposition (``DISPOSITION_RULES``), or null when billable: an
    answered call with no billed second is NOT_ANSWERED too; an unknown disposition is NOT_ANSWERED."""
    rule = (
        disposition.str.strip_chars()
        .str.to_uppercase()
        .replace_strict(DISPOSITION_RULES, default=NOT_ANSWERED, return_dtype=pl.String)
    )
    answered = disposition.str.strip_chars().str.to_uppercase() == "ANSWERED"
    return (
        pl.when(answered & (billsec > 0))
        .then(pl.lit(None, pl.String))
        .when(answered)
        .then(pl.lit(NOT_ANSWERED))
        .otherwise(rule)
    )


def local_to_utc(raw: pl.Expr, timezone: str) -> pl.Expr:
    """A switch's local wall-clock time to naive UTC. Written DST rule: an ambiguous hour (fall back) is read
    as its first occurrence; a time inside the spring-forward gap does not exist and is null (suspense)."""
    local = raw.str.strip_chars().str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")
    return (
        local.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )


def normalise(
    records: pl.DataFrame,
    *,
    file_id: int,
    source_id: str,
    timezone: str,
    billing_timezone: str,
    registered_cycle: str,
) -> pl.DataFrame:
    """Apply the normalisation rules to one file's raw records (``pipeline.formats.RAW_SCHEMA``).

    status is ``ok`` (goes on to mediation), ``suspended`` (reason = a suspense code) or ``discarded``
    (reason = the discard rule). A record without a usable time belongs to the cycle that registered its file.
    """
    start_utc = local_to_utc(pl.col("start_local_raw"), timezone)
    billsec = pl.col("billsec_raw").str.strip_chars().cast(pl.Int64, strict=False)
    charged = nanp_e164(pl.col("charged_raw"))
    called = nanp_e164(pl.col("called_raw"))
    discard = disposition_rule(pl.col("disposition"), billsec)
    damaged = spreadsheet_damaged(pl.col("charged_raw")) | spreadsheet_damaged(pl.col("called_raw"))
    reason = (
        pl.when(pl.col("parse_error").is_not_null())
        .then(pl.col("parse_error"))
        .when(start_utc.is_null())
        .then(pl.lit(BAD_TIMESTAMP))
        .when(billsec.is_null() | (billsec < 0) | (billsec > MAX_BILLSEC))
        .then(pl.lit(BAD_DURATION))
        .when(discard.is_not_null())
        .then(discard)
        .when(damaged)
        .then(pl.lit(DAMAGED_NUMBER))
        .when(charged.is_null())
        .then(pl.lit(BAD_CHARGED_NUMBER))
        .when(called.is_null())
        .then(pl.lit(BAD_CALLED_NUMBER))
        .otherwise(pl.lit(None))
    )
    billing_local = start_utc.dt.replace_time_zone("UTC").dt.convert_time_zone(billing_timezone)
    cycle_of_call = billing_local.dt.strftime("%Y-%m")
    out = records.with_columns(reason=reason).with_columns(
        file_id=pl.lit(file_id, pl.Int32),
        source_id=pl.lit(source_id),
        cycle=pl.coalesce(cycle_of_call, pl.lit(registered_cycle)),
        status=pl.when(pl.col("reason").is_null())
        .then(pl.lit("ok"))
        .when(pl.col("reason").is_in(DISCARD_REASONS))
        .then(pl.lit("discarded"))
        .otherwise(pl.lit("suspended")),
        charged_number=charged,
        calling_number=nanp_e164(pl.col("calling_raw")),
        called_number=called,
        start_utc=start_utc,
        call_date=billing_local.dt.date(),
        billsec=billsec,
        service=pl.lit("voice"),
        units=billsec,
        sms_chars=pl.lit(None, pl.Int32),
        event_code=pl.lit(None, pl.String),
        visited_country=pl.lit(None, pl.String),
        disposition=pl.col("disposition").str.strip_chars().str.to_uppercase(),
    )
    return out.select([pl.col(c).cast(t) for c, t in NORMALISED_SCHEMA.items()])
