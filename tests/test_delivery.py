"""Invoice delivery: real PDFs, a real Maildir, a real DuckDB ledger file."""

from __future__ import annotations

import email
import email.policy
import mailbox
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import duckdb
import pytest
from test_documents import TEMPLATES, make_doc

from pipeline.delivery import (
    DeliveryItem,
    build_invoice_email,
    deliver_invoices,
    ensure_delivery_ledger,
    parse_recipient,
)
from pipeline.documents import InvoiceDocument
from pipeline.rendering import render_invoice_pdfs

SENDER = "cdrbill Telecom Billing <billing@cdrbill.invalid>"


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[InvoiceDocument, Path]]:
    docs = [
        make_doc("INV-00000101", "en", name="Ana García"),
        make_doc("INV-00000102", "es", name="Beto Ruiz"),
        make_doc("INV-00000103", "en", name="Carla Paper"),
        make_doc("INV-00000104", "en", name="Dan Badaddress"),
        make_doc("INV-00000105", "es", name="Eva Sinemail"),
        make_doc("INV-00000106", "en", name="Evil\r\nBcc: victim@example.com"),
    ]
    out = tmp_path_factory.mktemp("pdfs")
    rendered = render_invoice_pdfs(docs, out, TEMPLATES, workers=1)
    return {r.invoice_number: (doc, r.path) for doc, r in zip(docs, rendered, strict=True)}


def stored_messages(outbox: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(outbox, create=False)
    messages = []
    for key in box.iterkeys():
        msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        messages.append(msg)
    return messages


def attachment_bytes(msg: EmailMessage) -> bytes:
    parts = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(parts) == 1
    payload = parts[0].get_content()
    assert isinstance(payload, bytes)
    return payload


def ledger(db: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db)) as con:
        return con.execute(
            "select invoice_number, channel, cycle, account_id, message_id, destination, status "
            "from delivery_ledger order by invoice_number, channel"
        ).fetchall()


def test_deliver_twice_delivers_once(tmp_path: Path, pdfs: dict[str, tuple[InvoiceDocument, Path]]) -> None:
    emails = {
        "INV-00000101": ("email", "ana@example.com"),
        "INV-00000102": ("email", " beto.ruiz+bills@example.org "),
        "INV-00000103": ("paper", None),
        "INV-00000104": ("email", "dan at example dot com"),
        "INV-00000105": ("email", None),
    }
    items = [DeliveryItem(pdfs[n][0], pdfs[n][1], channel, addr) for n, (channel, addr) in emails.items()]
    db, outbox, print_dir = tmp_path / "billing.duckdb", tmp_path / "outbox", tmp_path / "print"

    with duckdb.connect(str(db)) as con:
        first = deliver_invoices(con, items, outbox, print_dir, SENDER, TEMPLATES)
    assert (first.emailed, first.printed, first.skipped_already_delivered) == (2, 3, 0)
    assert first.fallback_to_paper == 2 and first.fallback_invoices == ["INV-00000104", "INV-00000105"]

    with duckdb.connect(str(db)) as con:
        second = deliver_invoices(con, items, outbox, print_dir, SENDER, TEMPLATES)
    assert (second.emailed, second.printed, second.fallback_to_paper, second.skipped_already_delivered) == (
        0,
        0,
        0,
        5,
    )

    # Ledger rows lost after the Maildir write (stored with LF line ends): recorded, not resent.
    with duckdb.connect(str(db)) as con:
        con.execute("delete from delivery_ledger where channel = 'email'")
        third = deliver_invoices(con, items, outbox, print_dir, SENDER, TEMPLATES)
    assert (third.emailed, third.recovered_from_outbox, third.skipped_already_delivered) == (2, 2, 3)
    assert all(b"\r\n" not in p.read_bytes() for p in (outbox / "new").iterdir())

    messages = {m["Message-ID"]: m for m in stored_messages(outbox)}
    assert len(messages) == len(stored_messages(outbox)) == 2
    assert sorted(messages) == [
        "<INV-00000101.2026-10@cdrbill.invalid>",
        "<INV-00000102.2026-10@cdrbill.invalid>",
    ]
    ana = messages["<INV-00000101.2026-10@cdrbill.invalid>"]
    assert ana["To"].addresses[0].addr_spec == "ana@example.com"
    assert ana["To"].addresses[0].display_name == "Ana García"
    assert ana["From"].addresses[0].addr_spec == "billing@cdrbill.invalid"
    assert ana["Subject"] == "Your cdrbill Telecom invoice INV-00000101 for Oct 1 – 31, 2026"
    assert attachment_bytes(ana) == pdfs["INV-00000101"][1].read_bytes()
    text = ana.get_body(preferencelist=("plain",))
    html = ana.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    # the e-mail shows the amount due: current charges 1,283.36 + balance forward 30.00 (test_documents.make_doc)
    assert "$1,313.36" in text.get_content() and "November 21, 2026" in text.get_content()
    assert "$1,313.36" in html.get_content()
    beto = messages["<INV-00000102.2026-10@cdrbill.invalid>"]
    assert beto["To"].addresses[0].addr_spec == "beto.ruiz+bills@example.org"
    assert beto["Subject"].startswith("Su factura de cdrbill Telecom INV-00000102")
    beto_text = beto.get_body(preferencelist=("plain",))
    assert beto_text is not None and "Importe a pagar: $1,313.36" in beto_text.get_content()

    assert sorted(p.name for p in print_dir.iterdir()) == [
        "INV-00000103.pdf",
        "INV-00000104.pdf",
        "INV-00000105.pdf",
    ]
    for name in ("INV-00000103", "INV-00000104", "INV-00000105"):
        assert (print_dir / f"{name}.pdf").read_bytes() == pdfs[name][1].read_bytes()

    rows = ledger(db)
    assert [(r[0], r[1]) for r in rows] == [
        ("INV-00000101", "email"),
        ("INV-00000102", "email"),
        ("INV-00000103", "print"),
        ("INV-00000104", "print"),
        ("INV-00000105", "print"),
    ]
    assert rows[0][2:] == (
        "2026-10",
        "ACC-1001",
        "<INV-00000101.2026-10@cdrbill.invalid>",
        "ana@example.com",
        "sent",
    )
    assert rows[2][4] is None and rows[2][5] == str(print_dir / "INV-00000103.pdf")


def test_crlf_in_customer_data_cannot_add_a_header(
    tmp_path: Path, pdfs: dict[str, tuple[InvoiceDocument, Path]]
) -> None:
    doc, pdf = pdfs["INV-00000106"]
    msg = build_invoice_email(doc, pdf, "ok@example.com", SENDER, TEMPLATES)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None and "victim@example.com" not in [k.lower() for k in parsed]
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ok@example.com"]
    assert parsed["To"].addresses[0].display_name == "Evil Bcc victim example.com"
    wire = msg.as_bytes()
    assert b"\nBcc:" not in wire and b"\rBcc:" not in wire  # not even in a body

    # An injected address is not an address: build refuses it, delivery falls back to paper.
    bad = "ok@example.com\r\nBcc: victim@example.com"
    assert parse_recipient(bad) is None
    with pytest.raises(ValueError, match="invalid recipient"):
        build_invoice_email(doc, pdf, bad, SENDER, TEMPLATES)
    with duckdb.connect(str(tmp_path / "b.duckdb")) as con:
        report = deliver_invoices(
            con,
            [DeliveryItem(doc, pdf, "email", bad)],
            tmp_path / "outbox",
            tmp_path / "print",
            SENDER,
            TEMPLATES,
        )
    assert (report.emailed, report.fallback_to_paper, report.printed) == (0, 1, 1)
    assert not (tmp_path / "outbox").exists() or stored_messages(tmp_path / "outbox") == []


def test_crash_after_outbox_write_records_without_resending(
    tmp_path: Path, pdfs: dict[str, tuple[InvoiceDocument, Path]]
) -> None:
    doc, pdf = pdfs["INV-00000101"]
    outbox = tmp_path / "outbox"
    # The crash: the message reached the Maildir, the ledger row was never written.
    box = mailbox.Maildir(outbox, create=True)
    box.add(build_invoice_email(doc, pdf, "ana@example.com", SENDER, TEMPLATES).as_bytes())
    db = tmp_path / "billing.duckdb"
    with duckdb.connect(str(db)) as con:
        ensure_delivery_ledger(con)
        ensure_delivery_ledger(con)  # idempotent
        report = deliver_invoices(
            con,
            [DeliveryItem(doc, pdf, "email", "ana@example.com")],
            outbox,
            tmp_path / "print",
            SENDER,
            TEMPLATES,
        )
    assert (report.emailed, report.recovered_from_outbox, report.printed) == (1, 1, 0)
    assert len(stored_messages(outbox)) == 1
    assert ledger(db) == [
        (
            "INV-00000101",
            "email",
            "2026-10",
            "ACC-1001",
            "<INV-00000101.2026-10@cdrbill.invalid>",
            "ana@example.com",
            "sent",
        )
    ]


def test_same_invoice_twice_in_one_batch_and_bad_channel(
    tmp_path: Path, pdfs: dict[str, tuple[InvoiceDocument, Path]]
) -> None:
    doc, pdf = pdfs["INV-00000103"]
    item = DeliveryItem(doc, pdf, "paper", None)
    with duckdb.connect(str(tmp_path / "c.duckdb")) as con:
        report = deliver_invoices(con, [item, item], tmp_path / "o", tmp_path / "p", SENDER, TEMPLATES)
        assert (report.printed, report.skipped_already_delivered) == (1, 1)
        with pytest.raises(ValueError, match="channel"):
            deliver_invoices(
                con, [replace(item, channel="fax")], tmp_path / "o", tmp_path / "p", SENDER, TEMPLATES
            )


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ana@example.com", True),
        ("  ana@example.com ", True),
        ("", False),
        ("   ", False),
        ("ana@", False),
        ("@example.com", False),
        ("ana@example", False),
        ("a b@example.com", False),
        ("ana@@example.com", False),
        ("Ana <ana@example.com>", False),
        ("ana@example.com, eve@example.com", False),
    ],
)
def test_parse_recipient(value: str, ok: bool) -> None:
    assert (parse_recipient(value) is not None) is ok
