"""Invoice delivery: e-mail into a Maildir outbox, paper into a print folder, recorded exactly once.

Billing rules applied here:

* an invoice is delivered at most once per channel: the ``delivery_ledger`` row for
  (invoice_number, channel) is the proof, and an existing row means "skip";
* a message found in the outbox without its ledger row (crash between the two writes) is recorded,
  never written a second time: its ``Message-ID`` is deterministic per invoice and cycle;
* an e-mail customer without a usable address gets the invoice on paper instead, and is reported;
* no customer data can add a header: names and addresses go through ``email.headerregistry.Address``
  after CR/LF and other control characters are stripped.
"""

from __future__ import annotations

import email.policy
import email.utils
import logging
import mailbox
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from babel.dates import format_date, format_interval
from babel.numbers import format_currency

from pipeline.documents import InvoiceDocument, load_strings, template_environment
from pipeline.durable import fsync_path, write_atomically
from pipeline.faults import crash_point
from pipeline.sql import read_sql

log = logging.getLogger(__name__)

EMAIL_CHANNEL = "email"
PRINT_CHANNEL = "print"
MESSAGE_ID_DOMAIN = "cdrbill.invalid"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_MSGID_PART = re.compile(r"^[A-Za-z0-9._-]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")


@dataclass(frozen=True)
class DeliveryItem:
    """One invoice to deliver: ``channel`` is the account's choice, "email" or "paper"."""

    doc: InvoiceDocument
    pdf_path: Path
    channel: str  # "email" | "paper"
    email: str | None


def delivery_items(docs: Sequence[InvoiceDocument], accounts: pl.DataFrame, folder: Path) -> list[DeliveryItem]:
    """Each invoice with its PDF in ``folder`` and its account's delivery preference and e-mail address."""
    by_id = {row["account_id"]: row for row in accounts.iter_rows(named=True)}
    return [
        DeliveryItem(
            doc=doc,
            pdf_path=folder / f"{doc.invoice_number}.pdf",
            channel=by_id[doc.account_id]["delivery_preference"],
            email=by_id[doc.account_id]["email"],
        )
        for doc in docs
    ]


@dataclass
class DeliveryReport:
    """Counts of one delivery run.

    ``emailed`` includes ``recovered_from_outbox`` (recorded from a message already in the outbox);
    ``printed`` includes ``fallback_to_paper`` (e-mail accounts without a usable address).
    """

    emailed: int = 0
    printed: int = 0
    skipped_already_delivered: int = 0
    fallback_to_paper: int = 0
    recovered_from_outbox: int = 0
    fallback_invoices: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- ledger


def ensure_delivery_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``delivery_ledger`` (with the other ledgers of ``sql/state_schema.sql``) if missing; rule: one
    row per delivered (invoice_number, channel)."""
    con.execute(read_sql("state_schema.sql"))


def _delivered_keys(con: duckdb.DuckDBPyConnection, invoice_numbers: Sequence[str]) -> set[tuple[str, str]]:
    if not invoice_numbers:
        return set()
    rows = con.execute(
        "select invoice_number, channel from delivery_ledger "
        "where invoice_number in (select unnest(?::varchar[]))",
        [list(invoice_numbers)],
    ).fetchall()
    return {(str(r[0]), str(r[1])) for r in rows}


def _record(
    con: duckdb.DuckDBPyConnection,
    doc: InvoiceDocument,
    channel: str,
    message_id: str | None,
    destination: str,
) -> None:
    con.execute(
        "insert into delivery_ledger values (?, ?, ?, ?, ?, ?, 'sent', ?) on conflict do nothing",
        [
            doc.invoice_number,
            channel,
            doc.cycle,
            doc.account_id,
            message_id,
            destination,
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )


# --------------------------------------------------------------------------------------------- e-mail


def clean_header_text(value: str) -> str:
    """Strip CR/LF and other control characters from customer text put in a header (rule: no injection)."""
    return " ".join(_CONTROL_CHARS.sub(" ", value).split())


def parse_recipient(value: str | None) -> Address | None:
    """Return the customer's ``Address``, or None when empty or invalid (rule: such accounts get paper)."""
    if value is None:
        return None
    candidate = _CONTROL_CHARS.sub("", value).strip()
    if not candidate or candidate.count("@") != 1:
        return None
    local, domain = candidate.rsplit("@", 1)
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    if not _DOMAIN.match(domain):
        return None
    try:
        addr = Address(addr_spec=candidate)
    except (ValueError, IndexError):
        return None
    if addr.addr_spec != candidate:
        return None
    return addr


def message_id_for(doc: InvoiceDocument) -> str:
    """Deterministic Message-ID ``<invoice_number.cycle@cdrbill.invalid>`` (rule: detect a resend)."""
    for part in (doc.invoice_number, doc.cycle):
        if not _MSGID_PART.match(part):
            raise ValueError(f"cannot build a Message-ID from {part!r}")
    return f"<{doc.invoice_number}.{doc.cycle}@{MESSAGE_ID_DOMAIN}>"


def _sender_address(sender: str) -> Address:
    name, addr = email.utils.parseaddr(clean_header_text(sender))
    parsed = parse_recipient(addr)
    if parsed is None:
        raise ValueError(f"invalid sender address {sender!r}")
    return Address(display_name=clean_header_text(name), addr_spec=parsed.addr_spec)


def build_invoice_email(
    doc: InvoiceDocument,
    pdf_path: Path,
    recipient: str,
    sender: str,
    templates_dir: Path,
    *,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """Build the invoice e-mail: HTML + text body, PDF attached (rule: fixed Message-ID, no injection).

    Raises ValueError when ``recipient`` is not a usable address.
    """
    to_addr = parse_recipient(recipient)
    if to_addr is None:
        raise ValueError(f"{doc.invoice_number}: invalid recipient address {recipient!r}")
    templates_dir = Path(templates_dir)
    strings = load_strings(templates_dir, doc.language)
    locale = strings["locale"]
    view: dict[str, Any] = {
        "period": format_interval(doc.period_start, doc.period_end, "yMMMd", locale=locale),
        "total": format_currency(doc.total, doc.currency, locale=locale),
        "due_date": format_date(doc.due_date, "long", locale=locale),
        "name": clean_header_text(doc.account_name),
    }

    def t(key: str, **kwargs: Any) -> str:
        return str(strings[key]).format(**kwargs)

    subject = clean_header_text(t("email_subject", invoice_number=doc.invoice_number, period=view["period"]))
    env = template_environment(templates_dir)
    context = {"doc": doc, "s": strings, "t": t, "v": view, "subject": subject}
    text_body = env.get_template("email_body.txt.j2").render(context)
    html_body = env.get_template("email_body.html.j2").render(context)

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = _sender_address(sender)
    msg["To"] = Address(display_name=clean_header_text(doc.account_name), addr_spec=to_addr.addr_spec)
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(sent_at or datetime.now(UTC))
    msg["Message-ID"] = message_id_for(doc)
    msg.set_content(text_body)
    msg.add_alternative(html_body, subtype="html")
    msg.add_attachment(
        Path(pdf_path).read_bytes(),
        maintype="application",
        subtype="pdf",
        filename=f"{doc.invoice_number}.pdf",
    )
    return msg


def _read_message_id(fh: Any) -> str | None:
    """Message-ID from a stored message's header block (reads the headers only)."""
    current: str | None = None
    for raw in fh:
        line = raw.decode("ascii", errors="replace")
        if line in ("\n", "\r\n"):
            break
        if line[:1] in (" ", "\t"):
            if current is not None:
                current += line.strip()
            continue
        if current is not None:
            return current
        name, _, value = line.partition(":")
        if name.strip().lower() == "message-id":
            current = value.strip()
    return current


def _outbox_index(box: mailbox.Maildir) -> dict[str, str]:
    index: dict[str, str] = {}
    for key in box.iterkeys():
        fh = box.get_file(key)
        try:
            mid = _read_message_id(fh)
        finally:
            fh.close()
        if mid:
            index[mid] = key
    return index


def _write_to_outbox(box: mailbox.Maildir, outbox_dir: Path, msg: EmailMessage) -> str:
    # Stored with LF line ends, as Maildir expects; the SMTP policy's CRLF is for the wire.
    key = box.add(msg.as_bytes(policy=email.policy.SMTP.clone(linesep="\n")))
    new_file = outbox_dir / "new" / key
    if new_file.exists():
        fsync_path(new_file)
        fsync_path(outbox_dir / "new")
    return key


# --------------------------------------------------------------------------------------------- paper


def _copy_to_print(pdf_path: Path, print_dir: Path, invoice_number: str) -> Path:
    return write_atomically(print_dir / f"{invoice_number}.pdf", Path(pdf_path).read_bytes())


# --------------------------------------------------------------------------------------------- run


def deliver_invoices(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[DeliveryItem],
    outbox_dir: Path,
    print_dir: Path,
    sender: str,
    templates_dir: Path,
) -> DeliveryReport:
    """Deliver each invoice once per channel (rule: ledger row after the write; outbox re-checked on crash).

    E-mail goes to the Maildir ``outbox_dir``; paper (and e-mail without a usable address) is copied to
    ``print_dir/<invoice_number>.pdf``. Each delivery commits its own ledger row, so a crash loses nothing.
    """
    outbox_dir = Path(outbox_dir)
    print_dir = Path(print_dir)
    ensure_delivery_ledger(con)
    for item in items:
        if item.channel not in ("email", "paper"):
            raise ValueError(f"{item.doc.invoice_number}: unknown delivery channel {item.channel!r}")
        if not Path(item.pdf_path).is_file():
            raise FileNotFoundError(f"{item.doc.invoice_number}: PDF {item.pdf_path} is missing")

    report = DeliveryReport()
    delivered = _delivered_keys(con, sorted({item.doc.invoice_number for item in items}))
    box: mailbox.Maildir | None = None
    outbox_ids: dict[str, str] | None = None

    for item in items:
        doc = item.doc
        recipient = parse_recipient(item.email) if item.channel == "email" else None
        channel = EMAIL_CHANNEL if recipient is not None else PRINT_CHANNEL
        if (doc.invoice_number, channel) in delivered or (
            item.channel == "email" and (doc.invoice_number, EMAIL_CHANNEL) in delivered
        ):
            report.skipped_already_delivered += 1
            continue

        if recipient is not None:
            if box is None:
                box = mailbox.Maildir(outbox_dir, factory=None, create=True)
                outbox_ids = _outbox_index(box)
            assert outbox_ids is not None
            mid = message_id_for(doc)
            if mid in outbox_ids:
                log.warning("%s: message %s already in the outbox, recording it", doc.invoice_number, mid)
                report.recovered_from_outbox += 1
            else:
                msg = build_invoice_email(doc, item.pdf_path, recipient.addr_spec, sender, templates_dir)
                outbox_ids[mid] = _write_to_outbox(box, outbox_dir, msg)
                crash_point("delivery.emailed")
            _record(con, doc, EMAIL_CHANNEL, mid, recipient.addr_spec)
            report.emailed += 1
        else:
            if item.channel == "email":
                log.warning("%s: no usable e-mail address, falling back to paper", doc.invoice_number)
                report.fallback_to_paper += 1
                report.fallback_invoices.append(doc.invoice_number)
            print_dir.mkdir(parents=True, exist_ok=True)
            target = _copy_to_print(item.pdf_path, print_dir, doc.invoice_number)
            crash_point("delivery.printed")
            _record(con, doc, PRINT_CHANNEL, None, str(target))
            report.printed += 1
        delivered.add((doc.invoice_number, channel))
    return report
