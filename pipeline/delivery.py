"""Invoice delivery: e-mail (Maildir outbox or SMTP) or paper (a print folder), recorded exactly once.

Billing rules applied here:

* an invoice is delivered at most once per channel: the ``delivery_ledger`` row for
  (invoice_number, channel) is the proof. An e-mail's intent (status ``sending``, with its Message-ID) is
  committed *before* it is handed over and its outcome (``sent``) after;
* a message without its ``sent`` row (a crash between hand-over and ledger) is first looked for by its
  Message-ID (the Maildir outbox, or the SMTP archive copy): found, it is recorded, never sent again; not
  provable, it is sent again with the SAME Message-ID, so receivers (and our archive) see one message;
* transient failures (4xx, connection refused) are retried with back-off by the transport, then recorded
  ``failed`` with the reason and retried by the next run; a permanent refusal (5xx) is recorded ``rejected``
  and the invoice goes on paper;
* an e-mail customer without a usable address, or switched to paper after bounces (pipeline/bounces.py), gets
  the invoice on paper instead, and is reported;
* no customer data can add a header (pipeline/mail.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import duckdb
import polars as pl

from pipeline.bounces import record_refusal
from pipeline.documents import InvoiceDocument, itemisation_csv_name
from pipeline.durable import write_atomically
from pipeline.faults import crash_point
from pipeline.mail import (  # re-exported: the public names of delivery
    MESSAGE_ID_DOMAIN,
    build_invoice_email,
    clean_header_text,
    message_id_for,
    parse_recipient,
)
from pipeline.sql import read_sql
from pipeline.transports import MaildirTransport, SendFailure, Transport

__all__ = [
    "EMAIL_CHANNEL",
    "MESSAGE_ID_DOMAIN",
    "PRINT_CHANNEL",
    "DeliveryItem",
    "DeliveryReport",
    "SendOutcome",
    "build_invoice_email",
    "clean_header_text",
    "deliver_invoices",
    "delivery_items",
    "ensure_delivery_ledger",
    "message_id_for",
    "parse_recipient",
    "record_delivery",
    "send_once",
]

log = logging.getLogger(__name__)

EMAIL_CHANNEL = "email"
PRINT_CHANNEL = "print"
DONE = "sent"


@dataclass(frozen=True)
class DeliveryItem:
    """One invoice to deliver: ``channel`` is the account's choice, "email" or "paper"; ``attachments`` are
    further files sent with the PDF (e.g. the CSV itemisation of a large account)."""

    doc: InvoiceDocument
    pdf_path: Path
    channel: str  # "email" | "paper"
    email: str | None
    attachments: tuple[Path, ...] = ()
    switched_to_paper: bool = False  # e-mail preference overridden to paper after bounces


def delivery_items(
    docs: Sequence[InvoiceDocument],
    accounts: pl.DataFrame,
    folder: Path,
    overrides: Mapping[str, str] | None = None,
) -> list[DeliveryItem]:
    """Each invoice with its PDF in ``folder`` (and its itemisation CSV when the bill is itemised as CSV) and its
    account's delivery preference and e-mail address; ``overrides`` (account → preference, from bounces) win over
    the reference preference."""
    by_id = {row["account_id"]: row for row in accounts.iter_rows(named=True)}
    overrides = overrides or {}
    items = []
    for doc in docs:
        chosen = by_id[doc.account_id]["delivery_preference"]
        channel = overrides.get(doc.account_id, chosen)
        items.append(
            DeliveryItem(
                doc=doc,
                pdf_path=folder / f"{doc.invoice_number}.pdf",
                channel=channel,
                email=by_id[doc.account_id]["email"],
                switched_to_paper=chosen == "email" and channel == "paper",
                attachments=(folder / itemisation_csv_name(doc.invoice_number),)
                if doc.itemisation == "csv"
                else (),
            )
        )
    return items


@dataclass
class DeliveryReport:
    """Counts of one delivery run.

    ``emailed`` includes ``recovered_from_outbox`` (recorded from a message proven sent by its Message-ID)
    and ``resent_same_message_id`` (sent again after a crash that left no proof); ``printed`` includes
    ``fallback_to_paper`` (e-mail accounts without a usable address, or refused for good), and
    ``switched_to_paper`` (accounts moved to paper after bounces).
    """

    emailed: int = 0
    printed: int = 0
    skipped_already_delivered: int = 0
    fallback_to_paper: int = 0
    recovered_from_outbox: int = 0
    resent_same_message_id: int = 0
    failed_retryable: int = 0
    rejected: int = 0
    switched_to_paper: int = 0
    fallback_invoices: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # invoice → reason (failed or rejected)
    transport: str = "maildir"


# --------------------------------------------------------------------------------------------- ledger


def ensure_delivery_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``delivery_ledger`` (with the other ledgers of ``sql/state_schema.sql``) if missing; rule: one
    row per (invoice_number, channel)."""
    con.execute(read_sql("state_schema.sql"))


def ledger_status(
    con: duckdb.DuckDBPyConnection, invoice_numbers: Sequence[str]
) -> dict[tuple[str, str], str]:
    """The delivery ledger's status per (document number, channel) of these documents (rule: one row per key)."""
    if not invoice_numbers:
        return {}
    rows = con.execute(
        "select invoice_number, channel, status from delivery_ledger "
        "where invoice_number in (select unnest(?::varchar[]))",
        [list(invoice_numbers)],
    ).fetchall()
    return {(str(r[0]), str(r[1])): str(r[2]) for r in rows}


def _write_row(
    con: duckdb.DuckDBPyConnection,
    key: tuple[str, str],
    cycle: str,
    account_id: str,
    message_id: str | None,
    destination: str,
    status: str,
    *,
    transport: str | None = None,
    attempts: int | None = None,
    last_error: str | None = None,
) -> None:
    """Insert or update the ledger row of ``key`` (one statement: committed on its own)."""
    con.execute(
        "insert into delivery_ledger (invoice_number, channel, cycle, account_id, message_id, destination, "
        "status, delivered_at, attempts, last_error, transport) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "on conflict (invoice_number, channel) do update set message_id = excluded.message_id, "
        "destination = excluded.destination, status = excluded.status, delivered_at = excluded.delivered_at, "
        "attempts = coalesce(delivery_ledger.attempts, 0) + coalesce(excluded.attempts, 0), "
        "last_error = excluded.last_error, transport = excluded.transport",
        [
            key[0],
            key[1],
            cycle,
            account_id,
            message_id,
            destination,
            status,
            datetime.now(UTC).replace(tzinfo=None),
            attempts,
            last_error,
            transport,
        ],
    )


def record_delivery(
    con: duckdb.DuckDBPyConnection,
    key: tuple[str, str],
    cycle: str,
    account_id: str,
    message_id: str | None,
    destination: str,
    status: str,
) -> None:
    """Record a delivery that needs no hand-over protocol (paper: the document is in the print folder) in
    ``delivery_ledger`` under ``key`` = (document number, channel); rule: one row per key."""
    _write_row(con, key, cycle, account_id, message_id, destination, status)


# --------------------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class SendOutcome:
    """What ``send_once`` did: status ``sent`` (``recovered``: proven earlier, ``resent``: sent again after an
    unproven crash), ``failed`` (retry next run) or ``rejected`` (refused for good); ``skipped``: already sent."""

    status: str
    recovered: bool = False
    resent: bool = False
    skipped: bool = False
    reason: str | None = None
    server_down: bool = False


def send_once(
    con: duckdb.DuckDBPyConnection,
    transport: Transport,
    key: tuple[str, str],
    cycle: str,
    account_id: str,
    message: EmailMessage,
    recipient: str,
) -> SendOutcome:
    """Send ``message`` at most once for ``key`` = (document number, channel) — the invoice e-mail, or a
    payment reminder on its own channel (e.g. ``reminder-1``) — with the intent/outcome ledger protocol
    (rule: intent committed before the hand-over, outcome after; a crash in between is resolved by the
    Message-ID)."""
    message_id = str(message["Message-ID"])
    previous = ledger_status(con, [key[0]]).get(key)
    if previous in (DONE, "rejected"):  # delivered, or refused for good (a hard bounce): never again
        return SendOutcome(previous, skipped=True)
    if transport.find_sent(message_id):
        log.warning("%s: message %s already handed over, recording it", key[0], message_id)
        _write_row(con, key, cycle, account_id, message_id, recipient, DONE, transport=transport.name)
        return SendOutcome(DONE, recovered=True)
    resent = previous == "sending"  # a crash after the intent, with no proof either way
    if resent:
        log.warning(
            "%s: no proof that %s was sent, sending it again with the same Message-ID", key[0], message_id
        )
    _write_row(con, key, cycle, account_id, message_id, recipient, "sending", transport=transport.name)
    crash_point("delivery.intent")
    try:
        attempts = transport.send(message, recipient)
    except SendFailure as failure:
        status = "rejected" if failure.permanent else "failed"
        _write_row(
            con,
            key,
            cycle,
            account_id,
            message_id,
            recipient,
            status,
            transport=transport.name,
            attempts=failure.attempts,
            last_error=failure.reason,
        )
        log.warning("%s: e-mail %s: %s", key[0], status, failure.reason)
        return SendOutcome(status, reason=failure.reason, server_down=failure.server_down)
    crash_point("delivery.emailed")
    _write_row(
        con, key, cycle, account_id, message_id, recipient, DONE, transport=transport.name, attempts=attempts
    )
    return SendOutcome(DONE, resent=resent)


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
    *,
    transport: Transport | None = None,
) -> DeliveryReport:
    """Deliver each invoice once per channel (rule: see the module docstring).

    E-mail goes through ``transport`` (default: the Maildir ``outbox_dir``); paper (and e-mail without a
    usable address or refused for good) is copied to ``print_dir/<invoice_number>.pdf``. Each delivery commits
    its own ledger rows, so a crash loses nothing. When the SMTP server is down, the remaining e-mails are
    recorded ``failed`` at once (no retries against a dead server) and left for the next run.
    """
    print_dir = Path(print_dir)
    ensure_delivery_ledger(con)
    for item in items:
        if item.channel not in ("email", "paper"):
            raise ValueError(f"{item.doc.invoice_number}: unknown delivery channel {item.channel!r}")
        for path in (item.pdf_path, *item.attachments):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{item.doc.invoice_number}: {path} is missing")

    transport = transport if transport is not None else MaildirTransport(Path(outbox_dir))
    report = DeliveryReport(transport=transport.name)
    status = ledger_status(con, sorted({item.doc.invoice_number for item in items}))
    server_down: str | None = None
    try:
        for item in items:
            doc = item.doc
            email_key, print_key = (doc.invoice_number, EMAIL_CHANNEL), (doc.invoice_number, PRINT_CHANNEL)
            if status.get(email_key) == DONE or status.get(print_key) == DONE:
                report.skipped_already_delivered += 1
                continue
            recipient = parse_recipient(item.email) if item.channel == "email" else None
            if recipient is not None and status.get(email_key) != "rejected":
                if server_down is not None:
                    _write_row(
                        con, email_key, doc.cycle, doc.account_id, message_id_for(doc), recipient.addr_spec,
                        "failed", transport=transport.name, attempts=0, last_error=server_down,
                    )  # fmt: skip
                    report.failed_retryable += 1
                    report.failures[doc.invoice_number] = server_down
                    continue
                msg = build_invoice_email(
                    doc,
                    item.pdf_path,
                    recipient.addr_spec,
                    sender,
                    templates_dir,
                    attachments=item.attachments,
                )
                outcome = send_once(
                    con, transport, email_key, doc.cycle, doc.account_id, msg, recipient.addr_spec
                )
                status[email_key] = outcome.status
                if outcome.status == DONE:
                    report.emailed += 1
                    report.recovered_from_outbox += outcome.recovered
                    report.resent_same_message_id += outcome.resent
                    continue
                report.failures[doc.invoice_number] = outcome.reason or outcome.status
                if outcome.status == "failed":
                    report.failed_retryable += 1
                    if outcome.server_down:
                        server_down = outcome.reason
                    continue
                report.rejected += 1  # refused for good: a hard bounce, and on paper below
                record_refusal(
                    con, doc.invoice_number, doc.account_id, message_id_for(doc), recipient.addr_spec,
                    outcome.reason or "refused",
                )  # fmt: skip
            if item.channel == "email":
                log.warning("%s: no usable e-mail address, falling back to paper", doc.invoice_number)
                report.fallback_to_paper += 1
                report.fallback_invoices.append(doc.invoice_number)
            elif item.switched_to_paper:
                report.switched_to_paper += 1
            print_dir.mkdir(parents=True, exist_ok=True)
            target = _copy_to_print(item.pdf_path, print_dir, doc.invoice_number)
            crash_point("delivery.printed")
            _write_row(con, print_key, doc.cycle, doc.account_id, None, str(target), DONE)
            status[print_key] = DONE
            report.printed += 1
    finally:
        transport.close()
    return report
