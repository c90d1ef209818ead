"""Normalisation: turn a parsed file's raw records into billable-event candidates — E.164 numbers, UTC times
from the source's time zone, billed seconds, the bill cycle — and apply the written rules that suspend or
discard a record. Every input row leaves with exactly one status."""

from __future__ import annotations

import calendar
import functools
import re
import threading
from datetime import UTC, date, datetime, timedelta

import phonenumbers
import polars as pl
from phonenumbers.phonemetadata import PhoneMetadata

# Suspense reason codes set here (see docs/GLOSSARY.md); parse reasons come from the format parsers.
BAD_TIMESTAMP = "BAD_TIMESTAMP"
BAD_DURATION = "BAD_DURATION"
NEGATIVE_DURATION = "NEGATIVE_DURATION"
ABSURD_DURATION = "ABSURD_DURATION"
FUTURE_CALL = "FUTURE_CALL"
OUTSIDE_BILLING_WINDOW = "OUTSIDE_BILLING_WINDOW"
BAD_CHARGED_NUMBER = "BAD_CHARGED_NUMBER"
BAD_CALLED_NUMBER = "BAD_CALLED_NUMBER"
DAMAGED_NUMBER = "DAMAGED_NUMBER"  # a number a spreadsheet turned into scientific notation (9.12678E+11)
UNKNOWN_SERVICE_TYPE = "UNKNOWN_SERVICE_TYPE"  # a type of record we do not bill (CGRateS ToR *generic…)
# The types of record a source names (``service_raw``: CGRateS ToR) → our service. A record that names none
# is voice. voice is priced in billed seconds; sms and mms in messages (``units_raw``, one when not given);
# data in bytes (``units_raw``, required). Non-voice records have no answer disposition: one with no unit
# (0 messages, 0 bytes) was not delivered (NOT_ANSWERED), one with units is billable.
SERVICE_TYPES = {"*voice": "voice", "*sms": "sms", "*mms": "mms", "*data": "data"}
MESSAGE_SERVICES = ("sms", "mms")
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
    "answer_utc": pl.Datetime("us"),  # null where the source gave no usable answer time
    "call_date": pl.Date(),
    "billsec": pl.Int64(),
    "service": pl.String(),
    "units": pl.Int64(),  # voice: billsec; sms/mms: messages; data: bytes; vas: events (shared contract)
    "sms_chars": pl.Int32(),
    "event_code": pl.String(),
    "visited_country": pl.String(),
    "disposition": pl.String(),
}


_SHORT_CODE = re.compile(r"\d{2,6}")
_VERTICAL_SERVICE_CODE = re.compile(r"\*\d{2,3}")  # a feature dialled with a star: *69 call return, *67…
_DIAL_STRING = re.compile(r"\+?[0-9()\-.\s/]+")
_NANP_NATIONAL = re.compile(r"[2-9]\d{2}[2-9]\d{6}")
_PLAIN_NANP = r"^1?[2-9]\d{2}[2-9]\d{6}$"  # NANP dialled as 10 digits or 1 + 10: "+1" and the last 10
# phonenumbers loads a region's metadata on first use (a second thread may load it again meanwhile): the calls
# are pure Python (the GIL serialises them anyway), so they are taken one batch at a time
_PHONENUMBERS = threading.Lock()


@functools.lru_cache(maxsize=1 << 18)  # the same distinct numbers come again in every batch and file
def to_e164(text: str, region: str) -> str | None:
    """One dialled number in E.164 by the ``phonenumbers`` library, read in ``region``'s numbering plan
    (NANP for US: 10 digits or 1 + 10 digits, the 011 international prefix, '+'); short codes and N11
    (2–6 digits without '+') stay as dialled digits, a vertical service code (``*69``) as dialled; anything
    else (letters, an unknown country code, fewer than 8 or more than 15 digits, an NPA or NXX starting 0/1)
    is None."""
    stripped = text.strip()
    if _VERTICAL_SERVICE_CODE.fullmatch(stripped):
        return stripped
    digits = "".join(ch for ch in stripped if ch.isdigit())
    if not digits or not _DIAL_STRING.fullmatch(stripped):
        return None
    if not stripped.startswith("+") and _SHORT_CODE.fullmatch(digits):
        return digits
    try:
        number = phonenumbers.parse(stripped if stripped.startswith("+") else digits, region)
    except phonenumbers.NumberParseException:
        return None
    if number.country_code is None:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if number.country_code == 1:  # NANP: NPA and NXX start 2-9, 10 digits
        return e164 if _NANP_NATIONAL.fullmatch(str(number.national_number)) else None
    # abroad: a known country code and 8-15 digits; the foreign plan's own lengths are not judged (Mexico's
    # legacy mobile '1' after +52 is still dialled) — the rate card decides what it prices
    known = phonenumbers.region_code_for_country_code(number.country_code) != "ZZ"
    return e164 if known and 8 <= len(e164) - 1 <= 15 else None


def e164_table(numbers: pl.Series, region: str) -> pl.DataFrame:
    """Raw number → E.164 (columns ``raw``, ``e164``) for the DISTINCT raw numbers of a batch: in a NANP region
    the plain 10-digit and 1 + 10-digit dial strings — nearly all of them — are written ``+1…`` by string
    operations, which is what ``phonenumbers`` gives for them, and so are the plain ``011`` international
    numbers that ``phonenumbers`` would take as they are (``international_e164``); hypothesis tests hold each
    path to ``to_e164``. Only the distinct rest goes through ``to_e164`` (cached across batches and files).
    Records take their numbers from it with a vectorised ``replace_strict``, never a Python call per record."""
    distinct = pl.DataFrame({"raw": numbers.drop_nulls().unique()})
    nanp = phonenumbers.country_code_for_region(region) == 1
    plain = pl.col("raw").str.contains(_PLAIN_NANP) if nanp else pl.lit(value=False)
    distinct = distinct.with_columns(plain=plain)
    abroad = international_e164(distinct.filter(~pl.col("plain"))["raw"], region)
    rest = abroad.filter(~pl.col("decided"))["raw"].to_list()
    with _PHONENUMBERS:  # batches normalised on two threads: one at a time through phonenumbers and its cache
        converted = pl.Series([to_e164(text, region) for text in rest], dtype=pl.String)
    decided = abroad.filter(pl.col("decided"))
    return distinct.select(
        "raw",
        e164=pl.when("plain")
        .then("+1" + pl.col("raw").str.slice(-10))
        .otherwise(
            pl.col("raw").replace_strict(
                pl.concat([decided["raw"], pl.Series(rest, dtype=pl.String)]),
                pl.concat([decided["e164"], converted]),
                default=None,
                return_dtype=pl.String,
            )
        ),
    )


_MAX_NSN_DIGITS = 17  # phonenumbers' longest national significant number: a longer one is TOO_LONG (None)


def international_e164(numbers: pl.Series, region: str) -> pl.DataFrame:
    """``to_e164`` of plain international dial strings, vectorised (columns ``raw``, ``e164``, ``decided``):
    the region's ``011`` prefix, a country code (the shortest leading 1–3 digits ``phonenumbers`` knows), and
    a national number of 2–17 digits that the country's national-prefix rule does not match — then
    ``phonenumbers`` keeps the digits as they are, and the number is ``+<cc><digits>`` when it has 8–15 digits
    (``to_e164``'s rule abroad), else None. Everything else (a short code, NANP's own +1, a national number
    the country's prefix rule matches or whose rule polars cannot read) is not ``decided``: ``to_e164`` says."""
    frame = pl.DataFrame({"raw": numbers}, schema={"raw": pl.String()})
    if region != "US" or frame.height == 0:  # the 011 prefix is the NANP's; elsewhere phonenumbers decides
        return frame.with_columns(e164=pl.lit(None, pl.String), decided=pl.lit(value=False))
    digits = pl.col("raw").str.slice(3)
    code = pl.lit(None, pl.String)
    for width in (3, 2, 1):  # the shortest known code wins, as phonenumbers reads it
        prefix = digits.str.slice(0, width)
        code = pl.when(prefix.is_in(_COUNTRY_CODES)).then(prefix).otherwise(code)
    frame = frame.with_columns(
        code=pl.when(pl.col("raw").str.contains(r"^011[1-9][0-9]{3,}$")).then(code)
    ).with_columns(national=digits.str.slice(pl.col("code").str.len_chars()))
    keeps = pl.lit(value=False)  # the national number stays as dialled: the country's prefix rule does not match
    for code_text in frame["code"].drop_nulls().unique().to_list():
        pattern = _national_prefix_rule(int(code_text))
        if pattern == "":
            rule_misses = pl.lit(value=True)
        elif pattern is not None:
            rule_misses = ~pl.col("national").str.contains(f"^(?:{pattern})")
        else:
            continue  # a rule polars cannot read: phonenumbers decides
        keeps = keeps | ((pl.col("code") == code_text) & rule_misses)
    length = pl.col("national").str.len_chars()
    decided = (pl.col("code") != "1") & length.is_between(2, _MAX_NSN_DIGITS) & keeps
    whole = pl.col("code").str.len_chars() + length
    return frame.select(
        "raw",
        e164=pl.when(decided & whole.is_between(8, 15)).then("+" + pl.col("code") + pl.col("national")),
        decided=decided.fill_null(value=False),
    )


_COUNTRY_CODES = [str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]


@functools.cache
def _national_prefix_rule(country_code: int) -> str | None:
    """The country's national-prefix rule for parsing as a polars regex ('' when it has none), or None when
    polars cannot read it (a look-ahead): the metadata ``phonenumbers.parse`` strips a prefix by."""
    region = phonenumbers.region_code_for_country_code(country_code)
    with _PHONENUMBERS:  # the metadata of a region is loaded on first use
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return None
    pattern = metadata.national_prefix_for_parsing
    if not pattern:
        return ""
    try:
        pl.Series([""]).str.contains(f"^(?:{pattern})")
    except pl.exceptions.PolarsError:
        return None
    return pattern


def e164_numbers(columns: dict[str, pl.Series], region: str) -> tuple[dict[str, pl.Series], pl.DataFrame]:
    """Each column of raw numbers in E.164 by ``e164_table``'s rules, and the ``e164_table`` of the distinct raw
    numbers that are not plain NANP dial strings. In a NANP region a plain one (nearly every number of a batch,
    and nearly all distinct at 200,000 accounts) is written ``+1`` + its last 10 digits where it stands; only
    the distinct rest goes through ``e164_table``, its results put back at their rows (a 113,493-record batch:
    0.024–0.030 CPU s, against 0.051–0.053 for a distinct table of every number)."""
    nanp = phonenumbers.country_code_for_region(region) == 1
    plain = {
        name: raw.str.contains(_PLAIN_NANP).fill_null(value=False)
        if nanp
        else pl.repeat(value=False, n=raw.len(), eager=True)
        for name, raw in columns.items()
    }
    lookup = e164_table(pl.concat([raw.filter(~plain[name]) for name, raw in columns.items()]), region)
    converted = {}
    for name, raw in columns.items():
        e164 = pl.select(pl.when(plain[name]).then(pl.lit("+1") + raw.str.slice(-10))).to_series()
        rest = (~plain[name]).arg_true()
        if rest.len():
            looked_up = raw.gather(rest).replace_strict(
                lookup["raw"], lookup["e164"], default=None, return_dtype=pl.String
            )
            e164 = e164.scatter(rest, looked_up)
        converted[name] = e164
    return converted, lookup


def e164_lookup(numbers: pl.Series, region: str) -> dict[str, str | None]:
    """``e164_table`` as a dict: raw number → E.164 (or None), for the distinct raw numbers."""
    table = e164_table(numbers, region)
    return dict(zip(table["raw"].to_list(), table["e164"].to_list(), strict=True))


def spreadsheet_damaged(raw: pl.Expr) -> pl.Expr:
    """A number a spreadsheet rewrote in scientific notation (``9.12678E+11``): its digits are lost."""
    return raw.str.strip_chars().str.contains(r"^[0-9]+(\.[0-9]+)?[Ee][+-]?[0-9]+$").fill_null(value=False)


def disposition_rule(disposition: pl.Expr, billsec: pl.Expr) -> pl.Expr:
    """The discard reason of a record by its disposition (``DISPOSITION_RULES``), or null when billable: an
    answered call with no billed second is NOT_ANSWERED too; an unknown disposition is NOT_ANSWERED."""
    return _disposition_rule(disposition.str.strip_chars().str.to_uppercase(), billsec)


def _disposition_rule(disposition: pl.Expr, billsec: pl.Expr) -> pl.Expr:
    """``disposition_rule`` of a disposition already stripped and upper-cased (as ``normalise`` carries it)."""
    rule = disposition.replace_strict(DISPOSITION_RULES, default=NOT_ANSWERED, return_dtype=pl.String)
    answered = disposition == "ANSWERED"
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


def _distinct_columns(records: pl.DataFrame, columns: tuple[str, ...]) -> dict[str, str]:
    """Each of ``columns`` → the first of them holding the very same values (itself when none before does)."""
    same: dict[str, str] = {}
    for column in columns:
        same[column] = next((kept for kept in same.values() if records[kept].equals(records[column])), column)
    return same


def _service_and_units(service_raw: pl.Expr, units_raw: pl.Expr, billsec: pl.Expr) -> dict[str, pl.Expr]:
    """``service`` by ``SERVICE_TYPES`` (null: a type we do not bill) and ``units`` in the service's unit:
    voice its billed seconds, messages (one when not given) and bytes as the source counted them (null when
    unreadable)."""
    named = service_raw.str.strip_chars().str.to_lowercase()
    service = (
        pl.when(service_raw.is_null())
        .then(pl.lit("voice"))
        .otherwise(named.replace_strict(SERVICE_TYPES, default=None, return_dtype=pl.String))
    )
    counted = units_raw.str.strip_chars()
    return {
        "service": service,
        "units": pl.when(service == "voice")
        .then(billsec)
        .when(service.is_in(MESSAGE_SERVICES) & (counted.fill_null("") == ""))
        .then(pl.lit(1, pl.Int64))
        .otherwise(counted.cast(pl.Int64, strict=False)),
    }


def normalise(
    records: pl.DataFrame,
    *,
    file_id: int,
    source_id: str,
    timezone: str,
    billing_timezone: str,
    registered_cycle: str,
    region: str = "US",
    received_on: date | None = None,
    billing_window_days: int = 180,
) -> pl.DataFrame:
    """Apply the normalisation rules to one file's raw records (``pipeline.formats.RAW_SCHEMA``).

    status is ``ok`` (goes on to mediation), ``suspended`` (reason = a suspense code) or ``discarded``
    (reason = the discard rule). A record without a usable time belongs to the cycle that registered its file.
    Written time rules: a call dated after both the day the file was received (``received_on``, default
    today) and the end of the registering cycle, by more than a day, is FUTURE_CALL; a call dated more than
    ``billing_window_days`` before the registering cycle's first day is OUTSIDE_BILLING_WINDOW (too old to
    bill). The answer time (``answer_utc``) is read by the start's time rule and suspends nothing: an empty or
    unreadable one is null (mediation's duplicate key then uses the start). Service rules: a record whose
    source names its type (``service_raw``, CGRateS ToR) takes the service of ``SERVICE_TYPES`` (another type
    is UNKNOWN_SERVICE_TYPE) and, for SMS, MMS and data, its units from ``units_raw``: such a record has no
    answer disposition and is billable when its units are positive (else NOT_ANSWERED); a data session has
    no called number. A record that names no type is voice, its units its billed seconds.
    """
    first_day = date(int(registered_cycle[:4]), int(registered_cycle[5:7]), 1)
    last_day = first_day.replace(day=calendar.monthrange(first_day.year, first_day.month)[1])
    latest_call_day = max(received_on or datetime.now(UTC).date(), last_day) + timedelta(days=1)
    earliest_call_day = first_day - timedelta(days=billing_window_days)
    # a column equal to the one before it (Asterisk's src is both the charged and the calling number) is looked
    # up once and copied: the same numbers, one lookup less
    number_columns = _distinct_columns(records, ("charged_raw", "calling_raw", "called_raw"))
    distinct_columns = dict.fromkeys(number_columns.values())
    converted, lookup = e164_numbers({column: records[column] for column in distinct_columns}, region)
    # the distinct numbers a spreadsheet damaged (few, usually none; never a plain one): judged once each
    damaged_numbers = lookup.filter(spreadsheet_damaged(pl.col("raw")))["raw"]

    def damaged(column: str) -> pl.Expr:
        if damaged_numbers.len() == 0:
            return pl.lit(value=False)
        return pl.col(column).is_in(damaged_numbers.implode()).fill_null(value=False)

    def number(column: str) -> str:
        return column.removesuffix("_raw") + "_number"

    looked_up = {number(column): converted[column] for column, kept in number_columns.items() if kept == column}
    copied = {number(column): pl.col(number(kept)) for column, kept in number_columns.items() if column != kept}
    # the values the rules and the output share, computed once (time zones and number lookups are the cost)
    # the answer time is read by the same rule as the start; one equal to the start (EMI) is converted once
    same_answer = records["answer_local_raw"].equals(records["start_local_raw"])
    records = records.with_columns(
        start_utc=local_to_utc(pl.col("start_local_raw"), timezone),
        **({} if same_answer else {"answer_utc": local_to_utc(pl.col("answer_local_raw"), timezone)}),
        billsec=pl.col("billsec_raw").str.strip_chars().cast(pl.Int64, strict=False),
        disposition=pl.col("disposition").str.strip_chars().str.to_uppercase(),  # as the output carries it
        **looked_up,
    ).with_columns(
        **copied,
        **({"answer_utc": pl.col("start_utc")} if same_answer else {}),
    ).with_columns(
        billing_local=pl.col("start_utc").dt.replace_time_zone("UTC").dt.convert_time_zone(billing_timezone)
    ).with_columns(call_day=pl.col("billing_local").dt.date())
    start_utc, billsec = pl.col("start_utc"), pl.col("billsec")
    charged, called = pl.col("charged_number"), pl.col("called_number")
    # a file whose records name their service (CGRateS) takes the service rules; other files are voice throughout
    # and pay nothing for them (one null count, no column more to compute)
    typed = records["service_raw"].null_count() < records.height
    if typed:
        service_and_units = _service_and_units(pl.col("service_raw"), pl.col("units_raw"), billsec)
        records = records.with_columns(**service_and_units)
    service, units = (pl.col("service"), pl.col("units")) if typed else (pl.lit("voice"), billsec)
    # what makes a record billable: an answered call's billed seconds, a delivered message's or session's units
    billable = pl.when(service == "voice").then(billsec).otherwise(units) if typed else billsec
    discard = _disposition_rule(pl.col("disposition"), billable)  # stripped and upper-cased once, above
    call_day = pl.col("call_day")
    either_damaged = damaged("charged_raw") | damaged("called_raw")  # spreadsheet_damaged of either number
    # the rules on units and services (a file that names no service: its billed seconds alone, as they were)
    unknown_service = service.is_null() if typed else pl.lit(value=False)
    unreadable = (billsec.is_null() | units.is_null()) if typed else billsec.is_null()
    negative = ((billsec < 0) | (units < 0)) if typed else billsec < 0
    no_called_number = (called.is_null() & (service != "data")) if typed else called.is_null()  # data: none
    reason = (
        pl.when(pl.col("parse_error").is_not_null())
        .then(pl.col("parse_error"))
        .when(unknown_service)
        .then(pl.lit(UNKNOWN_SERVICE_TYPE))
        .when(start_utc.is_null())
        .then(pl.lit(BAD_TIMESTAMP))
        .when(unreadable)
        .then(pl.lit(BAD_DURATION))
        .when(negative)
        .then(pl.lit(NEGATIVE_DURATION))
        .when(billsec > MAX_BILLSEC)
        .then(pl.lit(ABSURD_DURATION))
        .when(discard.is_not_null())
        .then(discard)
        .when(call_day > latest_call_day)
        .then(pl.lit(FUTURE_CALL))
        .when(call_day < earliest_call_day)
        .then(pl.lit(OUTSIDE_BILLING_WINDOW))
        .when(either_damaged)
        .then(pl.lit(DAMAGED_NUMBER))
        .when(charged.is_null())
        .then(pl.lit(BAD_CHARGED_NUMBER))
        .when(no_called_number)
        .then(pl.lit(BAD_CALLED_NUMBER))
        .otherwise(pl.lit(None))
    )
    cycle_of_call = call_day.dt.strftime("%Y-%m")  # the billing zone's date: its year and month
    out = records.with_columns(reason=reason).with_columns(
        file_id=pl.lit(file_id, pl.Int32),
        source_id=pl.lit(source_id),
        cycle=pl.coalesce(cycle_of_call, pl.lit(registered_cycle)),
        status=pl.when(pl.col("reason").is_null())
        .then(pl.lit("ok"))
        .when(pl.col("reason").is_in(DISCARD_REASONS))
        .then(pl.lit("discarded"))
        .otherwise(pl.lit("suspended")),
        call_date=call_day,
        service=service,
        units=units,
        sms_chars=pl.lit(None, pl.Int32),
        event_code=pl.lit(None, pl.String),
        visited_country=pl.lit(None, pl.String),
    )
    return out.select([pl.col(c).cast(t) for c, t in NORMALISED_SCHEMA.items()])
