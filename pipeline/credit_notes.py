"""Credit notes: the only way to reduce a finalised invoice. Each has its own gapless number in its own series,
references the original invoice, and carries a reason and who approved it; it is issued in one transaction
with its number, and can never credit more than is left of the invoice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb

from pipeline.currencies import minor_units
from pipeline.engine import first_row
from pipeline.settings import Settings


class CreditNoteError(ValueError):
    """A credit note that cannot be issued; the message says why and what to do."""


@dataclass(frozen=True)
class CreditNote:
    """An issued credit note."""

    credit_note_number: str
    invoice_number: str
    account_id: str
    amount: Decimal
    currency: str


def issue_credit_note(
    state: duckdb.DuckDBPyConnection,
    invoice_number: str,
    amount: Decimal,
    reason: str,
    approved_by: str,
    settings: Settings,
    issue_date: date | None = None,
) -> CreditNote:
    """Issue a credit note of ``amount`` (> 0, in whole minor units of the invoice's currency: cents for USD,
    yen for JPY) against a finalised invoice: numbered in the credit note series, never more than the invoice
    total less the credit notes already issued against it."""
    if amount <= 0:
        raise CreditNoteError(f"amount {amount} must be positive, e.g. 12.50")
    if not reason.strip() or not approved_by.strip():
        raise CreditNoteError("a credit note needs a reason and the name of who approved it")
    invoice = first_row(
        state,
        """
        select account_id, currency, total_amount
            - coalesce((select sum(amount) from credit_notes c where c.invoice_number = invoices.invoice_number), 0)
        from invoices where invoice_number = ?
        """,
        [invoice_number],
    )
    if invoice is None:
        raise CreditNoteError(f"invoice {invoice_number} is not a finalised invoice")
    account_id, currency, creditable = invoice
    minor = minor_units(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-minor)):
        raise CreditNoteError(
            f"amount {amount} must be in whole minor units of {currency} ({minor} decimals), "
            f"e.g. {Decimal(1250).scaleb(-minor)}"
        )
    if amount > creditable:
        raise CreditNoteError(
            f"{amount} is more than the {creditable} left to credit on {invoice_number}; issue at most that"
        )
    series = settings.credit_note_series
    today = issue_date or datetime.now(UTC).date()
    state.execute("begin transaction")
    try:
        state.execute(
            "insert into invoice_series select ?, 0 where not exists (select 1 from invoice_series where series = ?)",
            [series, series],
        )
        state.execute("update invoice_series set last_number = last_number + 1 where series = ?", [series])
        row = first_row(state, "select last_number from invoice_series where series = ?", [series])
        assert row is not None
        number = f"{series}-{int(row[0]):08d}"
        state.execute(
            "insert into credit_notes values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, null)",
            [
                number,
                series,
                row[0],
                invoice_number,
                account_id,
                today,
                currency,
                amount,
                reason.strip(),
                approved_by.strip(),
                datetime.now(UTC).replace(tzinfo=None),
            ],  # fmt: skip
        )
        state.execute("commit")
    except BaseException:
        state.execute("rollback")
        raise
    return CreditNote(number, invoice_number, account_id, amount, currency)
