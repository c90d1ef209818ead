"""Statement assembly: the numbers a printed or e-mailed invoice shows, read from the finalised invoice tables
and the cycle's rated events (so documents, reports and e-invoices all read the same numbers)."""

from __future__ import annotations

from pathlib import Path

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


def invoice_documents(lake: Path, cycle: str, reference: Reference) -> list[InvoiceDocument]:
    """One document model per finalised invoice of the cycle, in invoice-number order."""
    folder = partition_dir(lake, INVOICES, cycle=cycle)
    invoices = pl.read_parquet(folder / "invoices.parquet").sort("invoice_number")
    lines = pl.read_parquet(folder / "invoice_lines.parquet").sort("invoice_number", "line_no")
    items = usage_items_local(pl.scan_parquet(partition_dir(lake, RATED, cycle=cycle) / "rated.parquet"))
    accounts = {row["account_id"]: row for row in reference.accounts.iter_rows(named=True)}
    lines_by_invoice = lines.partition_by("invoice_number", as_dict=True)
    items_by_account = items.partition_by("account_id", as_dict=True)
    docs = []
    for invoice in invoices.iter_rows(named=True):
        account = accounts[invoice["account_id"]]
        invoice_lines = lines_by_invoice.get((invoice["invoice_number"],), lines.clear())
        account_items = items_by_account.get((invoice["account_id"],), items.clear())
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
                lines=tuple(
                    InvoiceLine(
                        section=r["section"],
                        service_number=r["service_number"],
                        description=r["description"],
                        quantity=r["quantity"],
                        unit=r["unit"],
                        amount=r["amount"],
                    )
                    for r in invoice_lines.iter_rows(named=True)
                ),
                total=invoice["total_amount"],
                usage_items=tuple(
                    UsageItem(
                        service_number=r["charged_number"],
                        start_local=r["start_local"],
                        called_number=r["called_number"],
                        destination=r["destination"],
                        billsec=r["billsec"],
                        billed_seconds=r["billed_seconds"],
                        charge=r["charge_amount"],
                    )
                    for r in account_items.iter_rows(named=True)
                ),
            )
        )
    return docs
