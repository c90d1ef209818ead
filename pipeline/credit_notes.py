"""Credit notes: the only way to reduce a finalised invoice. Each has its own gapless number in its own series,
references the original invoice, and carries a reason and who approved it; it is issued in one transaction
with its number, and can never credit more than is left of the invoice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import duckdb

from pipeline.currencies import minor_units
from pipeline.engine import first_row
from pipeline.settings import Settings


class CreditNoteError(ValueError):
    """A credit note that cannot be issued; the message says why and what to do."""


@dataclass(frozen=True)
class CreditLine:
    """One line of a credit note to issue: an amount credited (> 0) with its own description, or against a line
    of the original invoice (``invoice_line_no``: its description is printed when none is given). The only line
    of a credit note may have neither: it is printed as the credit on the invoice for the reason."""

    amount: Decimal
    description: str | None = None
    invoice_line_no: int | None = None


@dataclass(frozen=True)
class CreditNote:
    """An issued credit note."""

    credit_note_number: str
    invoice_number: str
    account_id: str
    amount: Decimal
    currency: str
    lines: tuple[CreditLine, ...] = ()


def issue_credit_note(
    state: duckdb.DuckDBPyConnection,
    invoice_number: str,
    amount: Decimal,
    reason: str,
    approved_by: str,
    settings: Settings,
    issue_date: date | None = None,
) -> CreditNote:
    """Issue a credit note of one line of ``amount`` (> 0, in whole minor units of the invoice's currency: cents
    for USD, yen for JPY) against a finalised invoice (``issue_credit_note_lines``)."""
    return issue_credit_note_lines(
        state, invoice_number, [CreditLine(amount)], reason, approved_by, settings, issue_date
    )


def issue_credit_note_lines(
    state: duckdb.DuckDBPyConnection,
    invoice_number: str,
    lines: Sequence[CreditLine],
    reason: str,
    approved_by: str,
    settings: Settings,
    issue_date: date | None = None,
) -> CreditNote:
    """Issue one credit note of several lines against a finalised invoice, in one transaction with its number
    (gapless credit note series). Rules: every line credits > 0 in whole minor units of the invoice's currency;
    a line against an invoice line credits at most what is left of that line (its amount less the earlier
    credit note lines against it; only a charge, never a discount or credit line, can be credited); the total
    (= Σ lines, the credit note's amount) is at most the invoice total less the credit notes already issued
    against it. The original invoice never changes."""
    if not lines:
        raise CreditNoteError("a credit note needs at least one line, e.g. --amount 12.50")
    if not reason.strip() or not approved_by.strip():
        raise CreditNoteError("a credit note needs a reason and the name of who approved it")
    for n, line in enumerate(lines, start=1):
        if line.amount <= 0:
            raise CreditNoteError(f"line {n}: amount {line.amount} must be positive, e.g. 12.50")
        if line.description is not None and not line.description.strip():
            raise CreditNoteError(f"line {n}: the description is empty; give one or name an invoice line")
    amount = sum((line.amount for line in lines), Decimal(0))
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
    for n, line in enumerate(lines, start=1):
        if line.amount != line.amount.quantize(Decimal(1).scaleb(-minor)):
            raise CreditNoteError(
                f"line {n}: amount {line.amount} must be in whole minor units of {currency} ({minor} decimals), "
                f"e.g. {Decimal(1250).scaleb(-minor)}"
            )
    _check_invoice_lines(state, invoice_number, lines)
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
        state.executemany(
            "insert into credit_note_lines values (?, ?, ?, ?, ?)",
            [
                [number, n, line.description.strip() if line.description else None, line.invoice_line_no,
                 line.amount]
                for n, line in enumerate(lines, start=1)
            ],  # fmt: skip
        )
        state.execute("commit")
    except BaseException:
        state.execute("rollback")
        raise
    return CreditNote(number, invoice_number, account_id, amount, currency, tuple(lines))


def _check_invoice_lines(
    state: duckdb.DuckDBPyConnection, invoice_number: str, lines: Sequence[CreditLine]
) -> None:
    """Lines against an invoice line: the line exists, is a charge (amount > 0), and is not credited past its
    amount by this and the earlier credit notes."""
    asked: dict[int, Decimal] = {}
    for line in lines:
        if line.invoice_line_no is not None:
            asked[line.invoice_line_no] = asked.get(line.invoice_line_no, Decimal(0)) + line.amount
        elif line.description is None and len(lines) > 1:
            raise CreditNoteError("each line of a credit note of several lines needs a description or an invoice line")
    for line_no, credit in sorted(asked.items()):
        row = first_row(
            state,
            """
            select amount, amount - coalesce((
                select sum(l.amount) from credit_note_lines l join credit_notes c using (credit_note_number)
                where c.invoice_number = invoice_lines.invoice_number and l.invoice_line_no = invoice_lines.line_no
            ), 0)
            from invoice_lines where invoice_number = ? and line_no = ?
            """,
            [invoice_number, line_no],
        )
        if row is None:
            raise CreditNoteError(f"{invoice_number} has no line {line_no}; see its lines in the warehouse")
        charged, left = row
        if charged <= 0:
            raise CreditNoteError(f"line {line_no} of {invoice_number} is a credit ({charged}), not a charge")
        if credit > left:
            raise CreditNoteError(
                f"{credit} is more than the {left} left to credit on line {line_no} of {invoice_number}"
            )


def parse_credit_line(text: str) -> CreditLine:
    """A credit line as written on the command line: ``DESCRIPTION=AMOUNT`` (e.g. ``Outage credit=10.00``)."""
    description, _, amount = text.rpartition("=")
    if not description.strip():
        raise CreditNoteError(f"credit line {text!r}: write DESCRIPTION=AMOUNT, e.g. 'Outage credit=10.00'")
    return CreditLine(_amount(amount, text), description=description.strip())


def parse_invoice_line_credit(text: str) -> CreditLine:
    """A credit against a line of the invoice as written on the command line: ``LINE_NO=AMOUNT`` (e.g.
    ``3=0.70``: 0.70 of invoice line 3, printed with that line's description)."""
    line_no, _, amount = text.partition("=")
    if not line_no.strip().isdigit():
        raise CreditNoteError(f"invoice line credit {text!r}: write LINE_NO=AMOUNT, e.g. 3=0.70")
    return CreditLine(_amount(amount, text), invoice_line_no=int(line_no))


def _amount(text: str, line: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        raise CreditNoteError(f"credit line {line!r}: {text!r} is not an amount, e.g. 12.50") from None
