"""The suspense reason catalogue (every code a record can be suspended with: its stage, meaning and fix),
the reasons a whole file is quarantined for, and suspense by reason and age for the UI."""

from __future__ import annotations

from datetime import date

import polars as pl

# code, stage, meaning, fix — recycling re-mediates every suspended record once the fix is made
SUSPENSE_REASONS: tuple[tuple[str, str, str, str], ...] = (
    ("UNPARSEABLE", "parse", "a line with broken quoting or escapes, or a column count the format (or the "
     "source's template) does not have", "correct the source's format/template, or get a clean file"),
    ("BAD_RECORD_LENGTH", "parse", "an EMI record that is not 175 or 210 characters long",
     "ask the sender for a corrected file"),
    ("UNKNOWN_RECORD_TYPE", "parse", "an EMI record id cdrbill does not read", "extend docs/formats/emi.md"),
    ("UNKNOWN_SERVICE_TYPE", "normalise", "the record names a type of service cdrbill does not bill (a CGRateS "
     "ToR other than *voice, *sms, *mms, *data)", "filter the source's export to the billed types, or extend "
     "normalise.SERVICE_TYPES"),
    ("BAD_TIMESTAMP", "normalise", "the start time is missing, unreadable, or does not exist in the source's "
     "time zone (the spring-forward gap)", "check the source's timezone setting"),
    ("BAD_DURATION", "normalise", "the billed seconds (or an SMS's messages, a data session's bytes) are "
     "missing or unreadable", "get the record re-sent"),
    ("NEGATIVE_DURATION", "normalise", "the billed seconds (or messages, bytes) are negative",
     "get the record re-sent"),
    ("ABSURD_DURATION", "normalise", "more than 24 hours billed on one record",
     "confirm the call with the switch owner, then correct the record"),
    ("FUTURE_CALL", "normalise", "the call is dated more than a day after the file arrived and after its "
     "cycle", "fix the switch clock or the source's timezone"),
    ("OUTSIDE_BILLING_WINDOW", "normalise", "the call is older than billing_window_days before its file's "
     "cycle: too old to bill", "raise billing_window_days in settings.toml if it must be billed"),
    ("DAMAGED_NUMBER", "normalise", "a number a spreadsheet turned into scientific notation (9.12678E+11)",
     "get the original file from the switch"),
    ("BAD_CHARGED_NUMBER", "normalise", "the number to bill is not a valid number in the source's region",
     "check the source's default_region, or the switch's number format"),
    ("BAD_CALLED_NUMBER", "normalise", "the called number is not a valid number in the source's region",
     "check the source's default_region, or the switch's number format"),
    ("LATE_USAGE_TOO_OLD", "mediation", "late usage (its cycle was final when it arrived) older than "
     "late_usage_max_age_days before the first day of the next open cycle: too old to bill late",
     "raise late_usage_max_age_days in settings.toml and re-run the cycle if it must be billed"),
    ("UNKNOWN_SUBSCRIBER", "mediation", "the charged number has never been any account's service number",
     "add the number to service_numbers.csv"),
    ("NOT_IN_SERVICE", "mediation", "the charged number is known but no account held it on the call date",
     "correct valid_from/valid_to in service_numbers.csv"),
    ("NO_PRICE_BOOK", "rating", "no price book for the account's plan, agent and state on the call date",
     "add a price book row"),
    ("NO_RATE", "rating", "the price book's rate card has no prefix for the called number",
     "add the destination to the rate card"),
)  # fmt: skip

# reasons a whole file is quarantined for (nothing of it is loaded)
QUARANTINE_REASONS: tuple[tuple[str, str, str], ...] = (
    ("UNKNOWN_SOURCE", "no source claims the landing folder", "add reference/sources/<id>.toml"),
    ("UNKNOWN_FORMAT", "the source names a format without a parser", "use a format of the registry"),
    ("UNKNOWN_TEMPLATE", "the source names a template its format does not have", "use default or example"),
    ("MISSING_HEADER", "a CUCM or CGRateS file without its names line (or lacking a needed column)", "get the file again"),
    ("EMPTY_FILE", "an EMI file without records", "ask the sender"),
    ("MISSING_PACK_HEADER", "an EMI file that does not start with a pack header", "ask the sender"),
    ("MISSING_PACK_TRAILER", "an EMI pack without one closing trailer (truncated)", "ask for a resend"),
    ("CONTROL_TOTAL_MISMATCH", "an EMI trailer count differs from the records of its pack", "ask for a resend"),
    ("UNKNOWN_BLOCKING", "an EMI file without newlines that is not whole 175/210-character records",
     "ask for a resend"),
    ("CONFLICTING_RESEND", "a file or pack sequence number already loaded from other content",
     "decide which file is right; archive the wrong one, land the right one again"),
    ("BAD_FILE_NAME", "a landed file's name holds a control or text-direction character, is not UTF-8, or is over "
     "248 bytes", "rename it and land it again"),
)  # fmt: skip


def catalogue() -> pl.DataFrame:
    """The suspense reason catalogue as a table (code, stage, meaning, fix)."""
    return pl.DataFrame(SUSPENSE_REASONS, schema=["code", "stage", "meaning", "fix"], orient="row")


def suspense_by_reason_and_age(suspended: pl.DataFrame, today: date) -> pl.DataFrame:
    """Suspended records per reason, with how long ago their calls were: 0–30, 31–60, 61–90 and over 90
    days (by call date; a record without a usable date counts as age unknown)."""
    age = (pl.lit(today) - pl.col("call_date")).dt.total_days()
    return (
        suspended.group_by("reason")
        .agg(
            records=pl.len(),
            oldest_call=pl.col("call_date").min(),
            age_0_30=(age <= 30).sum(),
            age_31_60=((age > 30) & (age <= 60)).sum(),
            age_61_90=((age > 60) & (age <= 90)).sum(),
            age_over_90=(age > 90).sum(),
            age_unknown=age.is_null().sum(),
        )
        .sort("records", "reason", descending=[True, False])
    )
