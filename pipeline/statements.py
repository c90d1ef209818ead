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

import tempfile
import uuid
from collections.abc import Collection, Generator, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.documents import (
    BalanceBlock,
    DocumentTerms,
    InvoiceDocument,
    InvoiceLine,
    TierUsage,
    UsageItem,
)
from pipeline.engine import session
from pipeline.invoicing import INVOICES
from pipeline.lake import lake_partition, lake_table
from pipeline.rating import RATED, rated_events_sql
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
# Each ``UsageItem`` field from the rated column it is read from, nulls filled (in the dataclass's field order when
# selected: a field added without its column here fails at once).
_ITEM_FIELDS: dict[str, pl.Expr] = {
    "service_number": pl.col("charged_number"),
    "start_local": pl.col("start_local"),
    "called_number": pl.col("called_number").fill_null(""),
    "destination": pl.col("destination").fill_null(""),
    "billsec": pl.col("billsec").fill_null(0),
    "billed_seconds": pl.col("billed_seconds").fill_null(0),
    "charge": pl.col("charge_amount"),
    "service": pl.col("service").fill_null("voice"),
    "units": pl.col("units"),
    "billed_units": pl.col("billed_units"),
    "included_units": pl.col("included_units").fill_null(0),
    "late_from_cycle": pl.col("late_from_cycle"),
}
# Invoices whose models are Python objects at once (a batch's calls: ~50 per invoice in the generated months).
DOCUMENT_BATCH = 2_000
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


def _usage_items_sql(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> str:
    """A SELECT of the rated events the itemisation reads, each with its invoice number and batch (the table
    ``statement_invoices``); a batch sorts its own into print order (``_with_local_start``)."""
    rated = rated_events_sql(lake, cycle)
    names = {row[0] for row in con.sql(f"describe ({rated})").fetchall()}
    optional = [c if c in names else f"null::{dtype} as {c}" for c, dtype in _OPTIONAL_ITEM_COLUMNS.items()]
    return f"""
        select i.batch_no, i.invoice_number, {", ".join(f"r.{c}" for c in _ITEM_COLUMNS)}, {", ".join(optional)},
            r.file_id, r.line_no
        from ({rated}) as r
        join statement_invoices as i using (account_id)
    """


def _batch_calls(calls: pl.LazyFrame | None, batch_no: int) -> Iterator[tuple[Any, ...]]:
    """One batch's calls in print order, as ``UsageItem``'s fields in order (nulls filled in polars, not per
    call: the objects are most of the statements' CPU)."""
    if calls is None:
        return iter(())
    batch = _with_local_start(calls.filter(pl.col("batch_no") == batch_no).collect())
    return batch.select(_ITEM_FIELDS[field.name] for field in fields(UsageItem)).iter_rows()


def _with_local_start(calls: pl.DataFrame) -> pl.DataFrame:
    """Calls with their start in the local time of their line's service state (one vectorised conversion per
    state), in the order a statement prints them: invoice, service number, local start (file and line break
    ties; the local order differs from the UTC order only in a repeated autumn hour)."""
    parts = [
        calls.filter(pl.col("service_state").eq_missing(state)).with_columns(
            start_local=pl.col("start_utc")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone(STATE_TIMEZONES.get(state or "", DEFAULT_TIMEZONE))
            .dt.replace_time_zone(None)
        )
        for state in calls["service_state"].unique().to_list()
    ]
    if not parts:
        return calls.with_columns(start_local=pl.col("start_utc"))
    return pl.concat(parts).sort("invoice_number", "charged_number", "start_local", "file_id", "line_no")


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


def invoice_documents(
    lake: Path, cycle: str, reference: Reference, settings: Settings | None = None
) -> list[InvoiceDocument]:
    """Every document model of the cycle in one list (``invoice_document_batches`` joined): for a small cycle
    or a test; a bill run renders batch by batch."""
    with tempfile.TemporaryDirectory(prefix="statements-") as work:
        return [
            doc
            for batch in invoice_document_batches(lake, cycle, reference, Path(work), settings)
            for doc in batch
        ]


def invoice_document_batches(
    lake: Path,
    cycle: str,
    reference: Reference,
    work_dir: Path,
    settings: Settings | None = None,
    *,
    accounts: Collection[str] | None = None,
    batch_invoices: int = DOCUMENT_BATCH,
    memory_limit: str = "2GB",
    with_usage: bool = True,
) -> Generator[list[InvoiceDocument]]:
    """The document models of the cycle's finalised invoices (only ``accounts``' when given: a market shard), in
    invoice-number order, ``batch_invoices`` at a time: each its lines, balance block, the carrier's terms, its
    itemisation level and privacy settings, its usage and tier usage. Rule: memory is bounded by a batch, not by
    the cycle — DuckDB writes the calls in batch order under ``memory_limit`` (spilling into ``work_dir``) to a
    Parquet file there, and only one batch's calls become Python objects (10M calls as objects are ~10 GB;
    docs/SCALE_LOG.md, "Statements in batches"). ``with_usage`` False: no calls in the
    models (``usage_items`` empty, ``usage_rows`` and the itemisation level still from their count) — what
    delivery needs."""
    settings = settings or Settings()
    folder = lake_partition(lake, INVOICES, cycle=cycle)
    invoices = pl.read_parquet(folder / "invoices.parquet").sort("invoice_number")
    if accounts is not None:
        invoices = invoices.filter(pl.col("account_id").is_in(list(accounts)))
    lines = (
        pl.read_parquet(folder / "invoice_lines.parquet")
        .join(invoices.select("invoice_number"), on="invoice_number", how="semi")
        .sort("invoice_number", "line_no")
    )
    for column, dtype in (
        ("category", pl.String()),
        ("taxable_base", pl.Decimal(18, 6)),
        ("rate", pl.Decimal(18, 6)),
    ):
        if column not in lines.columns:  # lakes written before these columns
            lines = lines.with_columns(pl.lit(None, dtype).alias(column))
    calls_file = work_dir / f"statement-calls-{cycle}-{uuid.uuid4().hex}.parquet"
    try:
        with session(memory_limit=memory_limit, spill_dir=work_dir) as con:
            # each invoice's batch, in invoice-number order; the calls are written in batch order (an integer
            # sort, not the cycle's print order: a batch sorts its own), so a batch's read skips the file's
            # other row groups by their statistics
            numbered = invoices.select("invoice_number", "account_id").with_row_index("batch_no")
            numbered = numbered.with_columns(pl.col("batch_no") // batch_invoices)
            con.register("statement_invoice_frame", numbered)
            con.execute("create temp table statement_invoices as select * from statement_invoice_frame")
            con.unregister("statement_invoice_frame")
            calls = _usage_items_sql(con, lake, cycle)
            if with_usage:
                con.execute(
                    f"copy ({calls} order by i.batch_no) to '{calls_file.as_posix()}' (format parquet)"
                )
                calls = f"select * from read_parquet('{calls_file.as_posix()}')"
            item_counts = dict(
                con.sql(f"select invoice_number, count(*) from ({calls}) group by all").fetchall()
            )
        yield from _batches(
            invoices,
            lines,
            pl.scan_parquet(calls_file) if with_usage else None,
            item_counts,
            cycle,
            reference,
            settings,
            lake,
            batch_invoices,
        )
    finally:
        calls_file.unlink(missing_ok=True)


def _batches(
    invoices: pl.DataFrame,
    lines: pl.DataFrame,
    calls: pl.LazyFrame | None,
    item_counts: dict[str, int],
    cycle: str,
    reference: Reference,
    settings: Settings,
    lake: Path,
    batch_invoices: int,
) -> Iterator[list[InvoiceDocument]]:
    """The models of ``invoices`` (invoice-number order), a batch at a time: a batch's lines and calls are
    contiguous rows of ``lines`` and of the batch's calls (the rows of ``calls`` with its ``batch_no``, sorted
    here; None: models without calls), read and made objects in one pass each; ``item_counts``: each invoice's
    calls."""
    folder = lake_partition(lake, INVOICES, cycle=cycle)
    balances = _balances(folder)
    tiers = _tier_usage(lake, cycle)
    prefs = _preferences(reference)
    terms = DocumentTerms(
        late_fee_percent=settings.late_fee_percent,
        late_fee_grace_days=settings.late_fee_grace_days,
        questions_phone=settings.billing_questions_phone,
    )
    accounts = {row["account_id"]: row for row in reference.accounts.iter_rows(named=True)}
    line_counts = dict(lines.group_by("invoice_number").len().iter_rows())
    line_start = 0
    for start in range(0, invoices.height, batch_invoices):
        batch = invoices.slice(start, batch_invoices)
        numbers = batch["invoice_number"].to_list()
        n_lines = sum(line_counts.get(n, 0) for n in numbers)
        batch_lines = [
            InvoiceLine(**r)
            for r in lines.slice(line_start, n_lines)
            .select(
                "section", "service_number", "description", "quantity", "unit", "amount", "category",
                "taxable_base", "rate",
            )
            .iter_rows(named=True)
        ]  # fmt: skip
        batch_items = [UsageItem(*fields) for fields in _batch_calls(calls, start // batch_invoices)]
        line_start += n_lines
        docs, at_line, at_item = [], 0, 0
        for invoice in batch.iter_rows(named=True):
            account = accounts[invoice["account_id"]]
            pref = prefs.get(account["account_id"], {})
            number = invoice["invoice_number"]
            own_lines = batch_lines[at_line : at_line + line_counts.get(number, 0)]
            n_own = item_counts.get(number, 0)
            own_items = batch_items[at_item : at_item + n_own]
            at_line, at_item = at_line + len(own_lines), at_item + len(own_items)
            docs.append(
                InvoiceDocument(
                    invoice_number=number,
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
                    lines=tuple(own_lines),
                    total=invoice["total_amount"],
                    usage_items=tuple(own_items),
                    balance=balances.get(number),
                    terms=terms,
                    itemisation=itemisation_level(
                        pref.get("itemisation"), n_own, settings.itemisation_max_rows
                    ),
                    mask_called_numbers=pref.get("mask_called_numbers") == "yes",
                    einvoice=pref.get("einvoice") == "facturx",
                    tier_usage=tuple(tiers.get(account["account_id"], ())),
                    usage_rows=n_own,
                )
            )
        yield docs
