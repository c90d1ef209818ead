"""Statement assembly: the numbers a printed or e-mailed invoice shows, read from the finalised invoice tables
and the cycle's rated events (so documents, reports and e-invoices all read the same numbers).

Billing rules applied here:

* the balance block (previous balance, payments, credit notes, balance forward, amount due) is the one the
  bill run wrote with the invoice (``invoice_balances``), never recomputed;
* the itemisation level is the account's preference (``document_preferences``: full, summary or csv), and a
  full itemisation of more than ``itemisation_max_rows`` rows becomes a CSV attachment (no 300-page PDFs);
* called numbers are masked to their last four digits when the account asks for it; nothing of the account
  but its name, billing address and number reaches the document (no tax id).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipeline.documents import (
    BalanceBlock,
    DocumentTerms,
    InvoiceDocument,
    InvoiceLine,
    TierUsage,
    UsageItem,
)
from pipeline.invoicing import INVOICES
from pipeline.lake import lake_partition, lake_table
from pipeline.rating import RATED, rated_events
from pipeline.reference import Reference
from pipeline.settings import Settings

# Where a line's usage is shown in local time: the time zone of its service state.
STATE_TIMEZONES = {
    "CA": "America/Los_Angeles",
    "FL": "America/New_York",
    "IL": "America/Chicago",
    "NY": "America/New_York",
    "TX": "America/Chicago",
}
DEFAULT_TIMEZONE = "America/Chicago"
# Rated columns the itemisation reads; the ones after billed_seconds are optional in older lakes.
_ITEM_COLUMNS = (
    "account_id",
    "charged_number",
    "service_state",
    "start_utc",
    "called_number",
    "destination",
    "billsec",
    "billed_seconds",
    "charge_amount",
)
_OPTIONAL_ITEM_COLUMNS: dict[str, pl.DataType] = {
    "service": pl.String(),
    "units": pl.Int64(),
    "billed_units": pl.Int64(),
    "included_units": pl.Int64(),
    "late_from_cycle": pl.String(),
}


def usage_items_local(rated: pl.LazyFrame) -> pl.DataFrame:
    """Rated events with their start in the local time of their line's service state (one conversion per
    state, vectorised)."""
    names = rated.collect_schema().names()
    frame = rated.select(
        *_ITEM_COLUMNS,
        *[
            pl.col(c) if c in names else pl.lit(None, dtype).alias(c)
            for c, dtype in _OPTIONAL_ITEM_COLUMNS.items()
        ],
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


def _preferences(reference: Reference) -> dict[str, dict[str, str | None]]:
    prefs = reference.tables().get("document_preferences")
    if prefs is None:
        return {}
    return {row["account_id"]: row for row in prefs.iter_rows(named=True)}


def itemisation_level(preference: str | None, rows: int, max_rows: int) -> str:
    """The itemisation a bill gets: the account's preference (default full), but a full itemisation of more
    than ``max_rows`` rows goes to a CSV attachment instead of pages (rule: no accidental 300-page PDF)."""
    level = preference or "full"
    if level == "full" and rows > max_rows:
        return "csv"
    return level


def _tier_usage(lake: Path, cycle: str) -> dict[str, list[TierUsage]]:
    path = lake_table(lake, RATED, "tier_charges", cycle=cycle)
    if not path.exists():
        return {}
    tiers: dict[str, list[TierUsage]] = {}
    for r in pl.read_parquet(path).sort("account_id", "tier_id").iter_rows(named=True):
        tiers.setdefault(r["account_id"], []).append(
            TierUsage(
                tier_id=r["tier_id"],
                service=r["service"],
                mode=r["mode"],
                total_units=int(r["total_units"]),
                breakdown=r["tier_breakdown"] or "",
                charge=r["charge_amount"],
            )
        )
    return tiers


def _balances(folder: Path) -> dict[str, BalanceBlock]:
    path = folder / "invoice_balances.parquet"
    if not path.exists():
        return {}
    return {
        r["invoice_number"]: BalanceBlock(
            previous_balance=r["previous_balance"],
            payments=r["payments"],
            credit_notes=r["credit_notes"],
            balance_forward=r["balance_forward"],
            current_charges=r["current_charges"],
            amount_due=r["amount_due"],
            disputed_held=r["disputed_held"],
            past_due=r["past_due"],
        )
        for r in pl.read_parquet(path).iter_rows(named=True)
    }


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


def invoice_documents(
    lake: Path, cycle: str, reference: Reference, settings: Settings | None = None
) -> list[InvoiceDocument]:
    """One document model per finalised invoice of the cycle, in invoice-number order: its lines, its balance
    block, the carrier's terms, its itemisation level and privacy settings, its usage and tier usage (lines and
    calls are built in one pass over each table, then handed to their invoice by row ranges)."""
    settings = settings or Settings()
    folder = lake_partition(lake, INVOICES, cycle=cycle)
    invoices = pl.read_parquet(folder / "invoices.parquet").sort("invoice_number")
    lines = pl.read_parquet(folder / "invoice_lines.parquet").sort("invoice_number", "line_no")
    balances = _balances(folder)
    tiers = _tier_usage(lake, cycle)
    prefs = _preferences(reference)
    terms = DocumentTerms(
        late_fee_percent=settings.late_fee_percent,
        late_fee_grace_days=settings.late_fee_grace_days,
        questions_phone=settings.billing_questions_phone,
    )
    items = usage_items_local(rated_events(lake, cycle))
    accounts = {row["account_id"]: row for row in reference.accounts.iter_rows(named=True)}
    for column, dtype in (("category", pl.String()), ("taxable_base", pl.Decimal(18, 6)), ("rate", pl.Decimal(18, 6))):
        if column not in lines.columns:  # lakes written before these columns
            lines = lines.with_columns(pl.lit(None, dtype).alias(column))
    all_lines = [
        InvoiceLine(**r)
        for r in lines.select(
            "section", "service_number", "description", "quantity", "unit", "amount", "category", "taxable_base",
            "rate",
        ).iter_rows(named=True)
    ]
    all_items = [
        UsageItem(
            service_number=r["charged_number"],
            start_local=r["start_local"],
            called_number=r["called_number"] or "",
            destination=r["destination"] or "",
            billsec=r["billsec"] or 0,
            billed_seconds=r["billed_seconds"] or 0,
            charge=r["charge_amount"],
            service=r["service"] or "voice",
            units=r["units"],
            billed_units=r["billed_units"],
            included_units=r["included_units"] or 0,
            late_from_cycle=r["late_from_cycle"],
        )
        for r in items.iter_rows(named=True)
    ]
    lines_by_invoice = row_slices(lines, "invoice_number")
    items_by_account = row_slices(items, "account_id")
    nothing = slice(0, 0)
    docs = []
    for invoice in invoices.iter_rows(named=True):
        account = accounts[invoice["account_id"]]
        pref = prefs.get(account["account_id"], {})
        rows = items_by_account.get(invoice["account_id"], nothing)
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
                usage_items=tuple(all_items[rows]),
                balance=balances.get(invoice["invoice_number"]),
                terms=terms,
                itemisation=itemisation_level(
                    pref.get("itemisation"), rows.stop - rows.start, settings.itemisation_max_rows
                ),
                mask_called_numbers=pref.get("mask_called_numbers") == "yes",
                einvoice=pref.get("einvoice") == "facturx",
                tier_usage=tuple(tiers.get(account["account_id"], ())),
                usage_rows=rows.stop - rows.start,
            )
        )
    return docs
