"""Explanation: how a rated event was priced, read back from the cycle's rated (or suspended) events — the
columns every rated event carries (price book and its fallback level, rate card row, jurisdiction, time bands,
billed units, allowance used, rounding applied) in the words support reads to a customer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipeline.lake import lake_partition
from pipeline.rating import RATED, rated_events

# (label, column), in the order support reads them
EXPLANATION_FIELDS = (
    ("event", "event"),
    ("account", "account_id"),
    ("line", "charged_number"),
    ("called", "called_number"),
    ("start (UTC)", "start_utc"),
    ("service", "service"),
    ("status", "status"),
    ("late usage", "late_usage"),
    ("suspense reason", "reason"),
    ("jurisdiction", "jurisdiction"),
    ("price book", "price_book_id"),
    ("chosen at level", "price_book_level"),
    ("rate card", "rate_card_id"),
    ("rate row: prefix", "prefix"),
    ("rate row: jurisdiction", "rate_jurisdiction"),
    ("rate row: event code", "rate_event_code"),
    ("destination", "destination"),
    ("rate per unit", "rate_per_unit"),
    ("unit", "unit_seconds"),
    ("increments (steps)", "billing_increment"),
    ("connect fee", "connect_fee"),
    ("time bands", "time_bands"),
    ("band policy", "band_policy"),
    ("measured", "billsec"),
    ("billed units", "billed_units"),
    ("allowance", "allowance_id"),
    ("included units", "included_units"),
    ("charged units", "charged_units"),
    ("exact charge", "unrounded_charge"),
    ("rounding", "rounding_rule"),
    ("minimum / maximum applied", "charge_limit"),
    ("charge", "charge_amount"),
    ("data rounding", "data_rounding_note"),
)

# a data session of a plan that rounds per cycle meets its service number's cycle rounding
# (``sql/data_rounding.sql``) on these columns; the rounding's own columns are read under the names on the right
DATA_ROUNDING_GROUP = (
    "account_id", "charged_number", "service_state", "plan_id", "rate_card_id", "prefix", "destination",
    "rate_per_unit",
)  # fmt: skip
DATA_ROUNDING_COLUMNS = {
    "sessions": "data_sessions",
    "charged_bytes": "data_charged_bytes",
    "rounded_bytes": "data_rounded_bytes",
    "rounding_bytes": "data_rounding_bytes",
    "data_unit": "data_unit",
    "charge_amount": "data_rounding_charge",
}
DATA_UNIT_BYTES = {"MB": 1_048_576, "KB": 1024, "byte": 1}


def find_events(
    lake: Path,
    cycle: str,
    *,
    file_id: int | None = None,
    line_no: int | None = None,
    number: str | None = None,
    account_id: str | None = None,
) -> pl.DataFrame:
    """The cycle's rated and suspended events that match the given file/line, charged number or account."""
    folder = lake_partition(lake, RATED, cycle=cycle)
    frames = [rated_events(lake, cycle), pl.scan_parquet(folder / "suspended.parquet")]
    events = pl.concat(frames, how="diagonal_relaxed")
    if (folder / "data_rounding.parquet").exists():
        events = with_data_rounding(events, pl.scan_parquet(folder / "data_rounding.parquet"))
    if file_id is not None:
        events = events.filter(pl.col("file_id") == file_id)
    if line_no is not None:
        events = events.filter(pl.col("line_no") == line_no)
    if number is not None:
        events = events.filter(pl.col("charged_number") == number)
    if account_id is not None:
        events = events.filter(pl.col("account_id") == account_id)
    return events.sort("start_utc", "file_id", "line_no").collect()


def with_data_rounding(events: pl.LazyFrame, rounding: pl.LazyFrame) -> pl.LazyFrame:
    """Each rated data session of a plan that rounds data per cycle with its service number's cycle rounding at
    its price (the group ``sql/data_rounding.sql`` rounds up once); other events get nulls."""
    rounding = rounding.select(
        *DATA_ROUNDING_GROUP,
        pl.col("roaming_surcharge").alias("_surcharge"),
        pl.lit("data").alias("service"),
        *(pl.col(column).alias(name) for column, name in DATA_ROUNDING_COLUMNS.items()),
    )
    keyed = events.with_columns(
        _surcharge=pl.col("roaming_surcharge").fill_null(0).cast(pl.Decimal(18, 6))
        if "roaming_surcharge" in events.collect_schema().names()
        else pl.lit(0, pl.Decimal(18, 6))
    )
    return keyed.join(
        rounding, on=[*DATA_ROUNDING_GROUP, "service", "_surcharge"], how="left", nulls_equal=True
    ).drop("_surcharge")


def data_rounding_note(event: dict[str, Any]) -> str | None:
    """How the cycle rounding of data applies to a session (docs/GLOSSARY.md, "Data rounding"): rated on its exact
    bytes, its service number's charged bytes at this price rounded up once to the plan's unit."""
    if event.get("data_rounded_bytes") is None:
        return None
    unit = event["data_unit"]
    units = event["data_rounded_bytes"] // DATA_UNIT_BYTES.get(unit, 1)
    sessions = event["data_sessions"]
    return (
        f"per cycle: this session is rated on its exact bytes; {event['data_charged_bytes']} bytes charged "
        f"this cycle ({sessions} session{'s' if sessions != 1 else ''} of {event.get('charged_number')} at this "
        f"price) are rounded up once to {units} {unit}: {event['data_rounding_bytes']} bytes added, "
        f"{event['data_rounding_charge']} on the invoice's data rounding line"
    )


def explanation(event: dict[str, Any]) -> dict[str, Any]:
    """One event's explanation: label → value, only the fields that apply to it (JSON-ready strings)."""
    values = {**event, "event": f"file {event.get('file_id')} line {event.get('line_no')}"}
    values["data_rounding_note"] = data_rounding_note(event)
    if event.get("late_from_cycle"):  # late usage (pipeline/late_usage.py): billed after its cycle was final
        values["late_usage"] = f"late usage from cycle {event['late_from_cycle']}, billed in {event.get('cycle')}"
    return {
        label: str(values[column])
        for label, column in EXPLANATION_FIELDS
        if values.get(column) is not None and values.get(column) != ""
    }


def format_explanation(fields: dict[str, Any]) -> str:
    """An explanation as aligned text lines."""
    width = max(len(label) for label in fields)
    return "\n".join(f"  {label.ljust(width)}  {value}" for label, value in fields.items())
