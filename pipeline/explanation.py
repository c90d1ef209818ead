"""Explanation: how a rated event was priced, read back from the cycle's rated (or suspended) events — the
columns every rated event carries (price book and its fallback level, rate card row, jurisdiction, time bands,
billed units, allowance used, rounding applied) in the words support reads to a customer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipeline.lake import partition_dir
from pipeline.rating import RATED

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
)


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
    folder = partition_dir(lake, RATED, cycle=cycle)
    frames = [pl.scan_parquet(folder / f"{name}.parquet") for name in ("rated", "suspended")]
    events = pl.concat(frames, how="diagonal_relaxed")
    if file_id is not None:
        events = events.filter(pl.col("file_id") == file_id)
    if line_no is not None:
        events = events.filter(pl.col("line_no") == line_no)
    if number is not None:
        events = events.filter(pl.col("charged_number") == number)
    if account_id is not None:
        events = events.filter(pl.col("account_id") == account_id)
    return events.sort("start_utc", "file_id", "line_no").collect()


def explanation(event: dict[str, Any]) -> dict[str, Any]:
    """One event's explanation: label → value, only the fields that apply to it (JSON-ready strings)."""
    values = {**event, "event": f"file {event.get('file_id')} line {event.get('line_no')}"}
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
