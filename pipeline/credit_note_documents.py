"""Credit note documents: each credit note issued against a final invoice (``pipeline/credit_notes.py``) as its
own PDF, delivered once like the invoice it corrects.

Billing rules applied here:

* a credit note shows its number, the invoice it corrects (number, issue date, total), the reason, its lines
  (each a credit, negative: ``credit_note_lines``, e.g. a usage credit and its tax; a line against an invoice
  line names it, with that line's description when it has none of its own; a credit note issued before lines
  existed has one line, the whole amount) and their total, the amount credited and the **new balance of the invoice**: invoice total − payments
  applied to it by cycles finalised before the credit note was issued − credit notes issued before it − this
  credit (a negative balance is money owed to the customer); every figure comes from the state ledgers, which
  never change, so the document is the same however often it is rendered;
* the same look and the same words mechanism as the invoice: ``templates/credit_note.html.j2`` with the
  invoice's stylesheet and shipped font, strings ``templates/strings/credit_note.<language>.json``, money by
  babel for the account's locale and currency; no tax id is ever printed (``masking.redact_tax_ids`` on every
  free text: name, address, reason); the account number is printed in full, as on the customer's own bill;
* delivery follows the account's invoices: e-mail (delivery preference ``email`` with a usable address, not
  switched to paper after bounces) through the exactly-once ledger ``delivery_ledger`` (``send_once``, channel
  ``credit_note``, deterministic Message-ID ``<CN-…@cdrbill.invalid>``); a failure for now is retried by the
  next run; a refusal for good, no usable address, or paper by choice records channel ``credit_note_print``
  (the PDF goes into the cycle's next print batch, ``pipeline/print_batches.py``);
* a credit note is delivered with the cycle of the invoice it corrects, and only once that cycle is approved.
"""

from __future__ import annotations

import email.policy
import email.utils
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from babel.dates import format_date

from pipeline.delivery import MESSAGE_ID_DOMAIN, ledger_status, parse_recipient, record_delivery, send_once
from pipeline.documents import INVOICE_CSS, format_money, load_strings, template_environment
from pipeline.durable import write_atomically
from pipeline.mail import display_name, sender_address
from pipeline.masking import redact_tax_ids
from pipeline.transports import Transport

log = logging.getLogger(__name__)

EMAIL_CHANNEL = "credit_note"
PRINT_CHANNEL = "credit_note_print"
TEMPLATE = "credit_note.html.j2"
EMAIL_TEMPLATE = "credit_note_email.txt.j2"
STRINGS = "credit_note"
SENT = "sent"


@dataclass(frozen=True)
class CreditNoteLine:
    """One printed line of a credit note (amount negative: a credit)."""

    description: str
    amount: Decimal


@dataclass(frozen=True)
class CreditNoteDocument:
    """Everything printed on one credit note, and where it goes."""

    credit_note_number: str  # "CN-00000001"
    invoice_number: str
    cycle: str  # the cycle of the invoice it corrects
    issue_date: date
    invoice_issue_date: date
    account_id: str
    account_name: str
    address_lines: tuple[str, ...]
    language: str
    currency: str
    reason: str
    amount: Decimal  # > 0: the amount credited
    invoice_total: Decimal
    payments_before: Decimal  # payments applied to the invoice before the credit note was issued
    credited_before: Decimal  # earlier credit notes on the same invoice
    delivery_preference: str  # email | paper
    email: str | None
    lines: tuple[CreditNoteLine, ...] = ()

    @property
    def balance_before(self) -> Decimal:
        """What was left to pay on the invoice just before this credit note."""
        return self.invoice_total - self.payments_before - self.credited_before

    @property
    def new_balance(self) -> Decimal:
        """What is left to pay on the invoice after this credit note (negative: owed to the customer)."""
        return self.balance_before - self.amount


@dataclass
class CreditNoteDeliveryReport:
    """Counts of one credit note delivery run."""

    rendered: int = 0
    emailed: int = 0
    printed: int = 0
    already_delivered: int = 0
    failed_retryable: int = 0
    rejected: int = 0
    recovered_by_message_id: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def credit_note_documents(
    state: duckdb.DuckDBPyConnection, cycle: str, accounts: pl.DataFrame, templates_dir: Path
) -> list[CreditNoteDocument]:
    """The credit notes issued against the invoices of ``cycle``, in number order, each with the figures it
    prints (rule: new balance = invoice total − payments applied before it − earlier credit notes − it)."""
    notes = state.sql(
        """
        select
            c.credit_note_number, c.invoice_number, i.cycle, c.issue_date, i.issue_date as invoice_issue_date,
            c.account_id, c.currency, c.amount, c.reason, i.total_amount as invoice_total,
            coalesce((
                select sum(a.amount)
                from payment_allocations a join finalized_cycles f on f.cycle = a.allocated_cycle
                where a.invoice_number = c.invoice_number and f.finalized_at <= c.issued_at
            ), 0)::decimal(18, 2) as payments_before,
            coalesce((
                select sum(p.amount) from credit_notes p
                where p.invoice_number = c.invoice_number and p.series = c.series and p.sequence_no < c.sequence_no
            ), 0)::decimal(18, 2) as credited_before
        from credit_notes c
        join invoices i using (invoice_number)
        where i.cycle = $cycle
        order by c.series, c.sequence_no
        """,
        params={"cycle": cycle},
    ).pl()
    if notes.is_empty():
        return []
    lines_by_note = _credit_note_lines(state, cycle)
    by_id = {
        row["account_id"]: row
        for row in accounts.filter(
            pl.col("account_id").is_in(notes["account_id"].unique().to_list())
        ).iter_rows(named=True)
    }
    docs = []
    for note in notes.iter_rows(named=True):
        account = by_id.get(note["account_id"])
        if account is None:
            raise ValueError(
                f"credit note {note['credit_note_number']}: account {note['account_id']} is not in "
                "reference/accounts.csv. Fix: restore the account row"
            )
        strings = load_strings_for(account["language"], templates_dir)
        reason = redact_tax_ids(str(note["reason"]))
        docs.append(
            CreditNoteDocument(
                credit_note_number=note["credit_note_number"],
                invoice_number=note["invoice_number"],
                cycle=note["cycle"],
                issue_date=note["issue_date"],
                invoice_issue_date=note["invoice_issue_date"],
                account_id=note["account_id"],
                account_name=redact_tax_ids(str(account["account_name"])),
                address_lines=(
                    redact_tax_ids(str(account["billing_address_line1"] or "")),
                    redact_tax_ids(
                        f"{account['billing_city']}, {account['billing_state']} {account['billing_zip']}"
                    ),
                ),
                language=account["language"],
                currency=note["currency"],
                reason=reason,
                amount=note["amount"],
                invoice_total=note["invoice_total"],
                payments_before=note["payments_before"],
                credited_before=note["credited_before"],
                delivery_preference=account["delivery_preference"],
                email=account["email"],
                lines=tuple(
                    CreditNoteLine(_line_text(strings, line, note["invoice_number"], reason), -line["amount"])
                    for line in lines_by_note.get(note["credit_note_number"], [])
                )
                or (  # issued before credit notes had lines: one line, the whole amount
                    CreditNoteLine(
                        str(strings["line_credit"]).format(
                            invoice_number=note["invoice_number"], reason=reason
                        ),
                        -note["amount"],
                    ),
                ),
            )
        )
    return docs


def _credit_note_lines(state: duckdb.DuckDBPyConnection, cycle: str) -> dict[str, list[dict[str, Any]]]:
    """The lines of the credit notes on ``cycle``'s invoices, in line order, each with the description of the
    invoice line it corrects (invoice lines never change, so neither does the text)."""
    rows = state.sql(
        """
        select l.credit_note_number, l.line_no, l.description, l.invoice_line_no, l.amount,
               invoice_lines.description as invoice_line_description
        from credit_note_lines l
        join credit_notes c using (credit_note_number)
        join invoices i using (invoice_number)
        left join invoice_lines on invoice_lines.invoice_number = c.invoice_number
            and invoice_lines.line_no = l.invoice_line_no
        where i.cycle = $cycle
        order by l.credit_note_number, l.line_no
        """,
        params={"cycle": cycle},
    ).pl()
    by_note: dict[str, list[dict[str, Any]]] = {}
    for row in rows.iter_rows(named=True):
        by_note.setdefault(row["credit_note_number"], []).append(row)
    return by_note


def _line_text(strings: Mapping[str, Any], line: Mapping[str, Any], invoice_number: str, reason: str) -> str:
    """A credit line as printed: its own description, the invoice line it corrects, both (tax ids hidden), or
    neither (the only line of a credit note: the credit on the invoice for the reason)."""
    own = redact_tax_ids(str(line["description"])) if line["description"] else None
    if line["invoice_line_no"] is None:
        return own or str(strings["line_credit"]).format(invoice_number=invoice_number, reason=reason)
    if own:
        return str(strings["line_with_invoice_line"]).format(description=own, line_no=line["invoice_line_no"])
    return str(strings["line_invoice_line"]).format(
        line_no=line["invoice_line_no"], description=redact_tax_ids(str(line["invoice_line_description"] or ""))
    )


def load_strings_for(language: str, templates_dir: Path) -> dict[str, Any]:
    """The credit note's strings for ``language`` (``strings/credit_note.<language>.json``)."""
    return load_strings(templates_dir, language, STRINGS)


def _context(doc: CreditNoteDocument, templates_dir: Path) -> dict[str, Any]:
    strings = load_strings_for(doc.language, templates_dir)
    locale = strings["locale"]

    def t(key: str, **kwargs: Any) -> str:
        return str(strings[key]).format(**kwargs)

    def money(amount: Decimal) -> str:
        return format_money(amount, doc.currency, locale)

    view = {
        "lang": locale[:2],
        "issue_date": format_date(doc.issue_date, "long", locale=locale),
        "invoice_issue_date": format_date(doc.invoice_issue_date, "long", locale=locale),
        "amount": money(doc.amount),
        "credit": money(-doc.amount),
        "invoice_total": money(doc.invoice_total),
        "payments_before": money(-doc.payments_before) if doc.payments_before else None,
        "credited_before": money(-doc.credited_before) if doc.credited_before else None,
        "balance_before": money(doc.balance_before),
        "new_balance": money(doc.new_balance),
        "owed_to_customer": doc.new_balance < 0,
        "lines": [{"description": line.description, "amount": money(line.amount)} for line in doc.lines],
    }
    return {"doc": doc, "s": strings, "t": t, "v": view}


def render_credit_note_html(doc: CreditNoteDocument, templates_dir: Path) -> str:
    """The credit note's HTML (Jinja2 ``credit_note.html.j2``); refuses lines that do not add up to the credit."""
    if sum((line.amount for line in doc.lines), Decimal(0)) != -doc.amount:
        raise ValueError(f"{doc.credit_note_number}: lines do not add up to the credit of {doc.amount}")
    return template_environment(templates_dir).get_template(TEMPLATE).render(_context(doc, templates_dir))


def credit_note_pdf_path(folder: Path, credit_note_number: str) -> Path:
    """Where a credit note's PDF lives: ``documents/<cycle>/credit_notes/<number>.pdf``."""
    return Path(folder) / "credit_notes" / f"{credit_note_number}.pdf"


def render_credit_note_pdf(doc: CreditNoteDocument, templates_dir: Path, target: Path) -> Path:
    """Render one credit note with the invoice's stylesheet and shipped font, written aside and moved in."""
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    css = weasyprint.CSS(filename=str(Path(templates_dir) / INVOICE_CSS), font_config=fonts)
    pdf = weasyprint.HTML(
        string=render_credit_note_html(doc, templates_dir), base_url=str(templates_dir)
    ).write_pdf(stylesheets=[css], font_config=fonts)
    assert pdf is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(target, pdf)


def credit_note_message_id(credit_note_number: str) -> str:
    """Deterministic Message-ID of a credit note e-mail (rule: a resend is recognised, never repeated)."""
    return f"<{credit_note_number}@{MESSAGE_ID_DOMAIN}>"


def build_credit_note_email(
    doc: CreditNoteDocument, pdf_path: Path, recipient: str, sender: str, templates_dir: Path
) -> EmailMessage:
    """The credit note e-mail: text body from ``credit_note_email.txt.j2``, the PDF attached, no header
    injection from customer data (``mail.display_name``)."""
    to_addr = parse_recipient(recipient)
    if to_addr is None:
        raise ValueError(f"{doc.credit_note_number}: invalid recipient address {recipient!r}")
    context = _context(doc, templates_dir)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender_address(sender)
    msg["To"] = Address(
        display_name=display_name(doc.account_name), username=to_addr.username, domain=to_addr.domain
    )
    msg["Subject"] = context["t"](
        "email_subject", credit_note_number=doc.credit_note_number, invoice_number=doc.invoice_number
    )
    msg["Date"] = email.utils.format_datetime(datetime.now(UTC))
    msg["Message-ID"] = credit_note_message_id(doc.credit_note_number)
    msg.set_content(template_environment(templates_dir).get_template(EMAIL_TEMPLATE).render(context))
    msg.add_attachment(
        Path(pdf_path).read_bytes(),
        maintype="application",
        subtype="pdf",
        filename=f"{doc.credit_note_number}.pdf",
    )
    return msg


def deliver_credit_notes(
    state: duckdb.DuckDBPyConnection,
    docs: Sequence[CreditNoteDocument],
    folder: Path,
    transport: Transport,
    sender: str,
    templates_dir: Path,
    overrides: Mapping[str, str] | None = None,
) -> CreditNoteDeliveryReport:
    """Render each credit note not rendered yet into ``folder/credit_notes/`` and deliver it once (rule: see
    the module docstring): e-mail through ``send_once`` on channel ``credit_note``, else the channel
    ``credit_note_print`` for the cycle's print batch. ``overrides`` (account → preference, after bounces) win
    over the account's preference."""
    report = CreditNoteDeliveryReport()
    overrides = overrides or {}
    status = ledger_status(state, [doc.credit_note_number for doc in docs])
    try:
        for doc in docs:
            number = doc.credit_note_number
            pdf_path = credit_note_pdf_path(folder, number)
            if not pdf_path.is_file():
                render_credit_note_pdf(doc, templates_dir, pdf_path)
                report.rendered += 1
            if SENT in (status.get((number, EMAIL_CHANNEL)), status.get((number, PRINT_CHANNEL))):
                report.already_delivered += 1
                continue
            preference = overrides.get(doc.account_id, doc.delivery_preference)
            recipient = parse_recipient(doc.email) if preference == "email" else None
            if recipient is not None and status.get((number, EMAIL_CHANNEL)) != "rejected":
                message = build_credit_note_email(doc, pdf_path, recipient.addr_spec, sender, templates_dir)
                outcome = send_once(
                    state,
                    transport,
                    (number, EMAIL_CHANNEL),
                    doc.cycle,
                    doc.account_id,
                    message,
                    recipient.addr_spec,
                )
                if outcome.status == SENT:
                    report.emailed += 1
                    report.recovered_by_message_id += outcome.recovered
                    continue
                report.failures[number] = outcome.reason or outcome.status
                if outcome.status == "failed":  # for now: the next run tries again
                    report.failed_retryable += 1
                    continue
                report.rejected += 1  # refused for good: on paper below
            if preference == "email":
                log.warning("%s: no usable e-mail address or refused, on paper", number)
            record_delivery(
                state, (number, PRINT_CHANNEL), doc.cycle, doc.account_id, None, str(pdf_path), SENT
            )
            report.printed += 1
    finally:
        transport.close()
    return report
