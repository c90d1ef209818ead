"""Statement assembly: the numbers a printed or e-mailed invoice shows, read from the finalised invoice tables
and the cycle's rated events (so documents, reports and e-invoices all read the same numbers)."""

from __future__ import annotations

from itertools import starmap
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.documents import InvoiceDocument, InvoiceLine, UsageItem
from pipeline.invoicing import INVOICES
from pipeline.lake import partition_dir
from pipeline.rating import RATED
from pipeline.reference import Reference

# Where a line's usage is shown in local time: the time zone of its service state.
STATE_TIMEZONES = {
    "CA": "America/Los_Angeles",
    "FL": "America/New_York",
    "IL": "America/Chicago",
    "NY": "America/New_York",
    "TX": "America/Chicago",
}
DEFAULT_TIMEZONE = "America/Chicago"


def usage_items_local(rated: pl.LazyFrame) -> pl.DataFrame:
    """Rated events with their start in the local time of their line's service state (one conversion per
    state, vectorised)."""
    frame = rated.select(
        "account_id",
        "charged_number",
        "service_state",
        "start_utc",
        "called_number",
        "destination",
        "billsec",
        "billed_seconds",
        "charge_amount",
    ).collect()
    parts = []
    for state in frame["service_state"].unique().sort().to_list():
        zone = STATE_TIMEZONES.get(state or "", DEFAULT_TIMEZONE)
        parts.append(
            frame.filter(pl.col("service_state") == state).with_columns(
                start_local=pl.col("start_utc")
                .dt.replace_time_zone("UTC")
                .dt.convert_time_zone(zone)
                .dt.replace_time_zone(None)
            )
        )
    if not parts:
        return frame.with_columns(start_local=pl.col("start_utc"))
    return pl.concat(parts).sort("account_id", "charged_number", "start_local")


def row_slices(frame: pl.DataFrame, key: str) -> dict[Any, slice]:
    """Where each value of ``key`` has its rows in ``frame`` (sorted by ``key``, so each group is one run of
    rows): one vectorised group-by instead of one small frame per group."""
    bounds = (
        frame.select(key)
        .with_row_index("_row")
        .group_by(key, maintain_order=True)
        .agg(start=pl.col("_row").min(), end=pl.col("_row").max() + 1)
    )
    return {value: slice(start, end) for value, start, end in bounds.iter_rows()}


def invoice_documents(lake: Path, cycle: str, reference: Reference) -> list[InvoiceDocument]:
    """One document model per finalised invoice of the cycle, in invoice-number order (lines and calls are
    built in one pass over each table, then handed to their invoice by row ranges)."""
    folder = partition_dir(lake, INVOICES, cycle=cycle)
    invoices = pl.read_parquet(folder / "invoices.parquet").sort("invoice_number")
    lines = pl.read_parquet(folder / "invoice_lines.parquet").sort("invoice_number", "line_no")
    items = usage_items_local(pl.scan_parquet(partition_dir(lake, RATED, cycle=cycle) / "rated.parquet"))
    accounts = {row["account_id"]: row for row in reference.accounts.iter_rows(named=True)}
    all_lines = list(
        starmap(
            InvoiceLine,
            lines.select(
                "section", "service_number", "description", "quantity", "unit", "amount"
            ).iter_rows(),
        )
    )
    all_items = list(
        starmap(
            UsageItem,
            items.select(
                "charged_number",
                "start_local",
                "called_number",
                "destination",
                "billsec",
                "billed_seconds",
                "charge_amount",
            ).iter_rows(),
        )
    )
    lines_by_invoice = row_slices(lines, "invoice_number")
    items_by_account = row_slices(items, "account_id")
    nothing = slice(0, 0)
    docs = []
    for invoice in invoices.iter_rows(named=True):
        account = accounts[invoice["account_id"]]
        docs.append(
            InvoiceDocument(
                invoice_number=invoice["invoice_number"],
                cycle=cycle,
                issue_date=invoice["issue_date"],
                due_date=invoice["due_date"],
                period_start=invoice["period_start"],
                period_end=invoice["period_end"],
                account_id=account["account_id"],
                account_name=account["account_name"],
                address_lines=(
                    account["billing_address_line1"],
                    f"{account['billing_city']}, {account['billing_state']} {account['billing_zip']}",
                ),
                language=account["language"],
                currency=invoice["currency"],
                lines=tuple(all_lines[lines_by_invoice.get(invoice["invoice_number"], nothing)]),
                total=invoice["total_amount"],
                usage_items=tuple(all_items[items_by_account.get(invoice["account_id"], nothing)]),
            )
        )
    return docs
