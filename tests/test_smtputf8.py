"""Internationalised e-mail addresses (RFC 6531) through a real SMTP server on loopback (aiosmtpd): SMTPUTF8 when
the server offers it, the domain's IDNA A-label when it does not, and a clear permanent failure — the invoice
on paper — for a non-ASCII mailbox name that only SMTPUTF8 could carry."""

from __future__ import annotations

import email
import email.message
import email.policy
import mailbox
from pathlib import Path

import duckdb
import pytest
from mailserver import start
from test_documents import TEMPLATES, make_doc
from test_smtp import SENDER, deliver, items, ledger, transport

from pipeline.delivery import build_invoice_email, parse_recipient
from pipeline.mail import ascii_addr_spec
from pipeline.rendering import render_invoice_pdfs
from pipeline.transports import MaildirTransport


def utf8_message(data: bytes) -> email.message.EmailMessage:
    """A received message whose headers are UTF-8 (RFC 6532), parsed as text."""
    msg = email.message_from_string(data.decode("utf-8"), policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory):
    docs = [
        make_doc("INV-00000301", "es", name="José Peña"),
        make_doc("INV-00000302", "en", name="Zoë Brandt"),
    ]
    rendered = render_invoice_pdfs(docs, tmp_path_factory.mktemp("utf8-pdfs"), TEMPLATES, workers=1)
    return {r.invoice_number: (doc, r.path) for doc, r in zip(docs, rendered, strict=True)}


@pytest.mark.parametrize(
    ("value", "addr_spec", "ascii_form"),
    [
        ("josé@example.com", "josé@example.com", None),
        ("maria@exämple.com", "maria@exämple.com", "maria@xn--exmple-cua.com"),
        ("maria@EXÄMPLE.com", "maria@exämple.com", "maria@xn--exmple-cua.com"),  # UTS 46 maps case
        ("用户@例子.广告", "用户@例子.广告", None),
        ("ana@example.com", "ana@example.com", "ana@example.com"),
        ("jo sé@example.com", None, None),  # a space
        ("jo\u3000sé@example.com", None, None),  # an ideographic space
        ("jo\u200bsé@example.com", None, None),  # a format character (zero-width space)
        ("josé@exa mple.com", None, None),
        ("josé@ex\u00e4mple", None, None),  # no top-level domain
        ("ana@xn--.com", None, None),  # not a valid IDNA label
        ("é" * 33 + "@example.com", None, None),  # 66 octets in UTF-8: over 64
    ],
)
def test_internationalised_addresses_are_parsed(
    value: str, addr_spec: str | None, ascii_form: str | None
) -> None:
    parsed = parse_recipient(value)
    assert (parsed.addr_spec if parsed else None) == addr_spec
    if parsed is not None:
        assert ascii_addr_spec(parsed.addr_spec) == ascii_form


def test_smtputf8_server_gets_the_address_as_it_is(tmp_path: Path, pdfs) -> None:
    server = start(tmp_path, smtputf8=True)
    mail = next(server)
    try:
        report = deliver(tmp_path, items(pdfs, ("INV-00000301", "josé@exämple.com")), transport(mail))
        assert (report.emailed, report.printed) == (1, 0)
        [received] = mail.received
        assert "SMTPUTF8" in received.mail_options
        assert received.rcpt_tos == ["josé@exämple.com"]
        assert (
            "To: Jos\u00e9 Pe\u00f1a <jos\u00e9@ex\u00e4mple.com>".encode() in received.data
        )  # UTF-8 headers
        assert [a.addr_spec for a in utf8_message(received.data)["To"].addresses] == ["josé@exämple.com"]
        assert [r[1:3] for r in ledger(tmp_path / "state.duckdb")] == [("email", "sent")]
    finally:
        server.close()


def test_without_smtputf8_the_domain_goes_as_its_a_label(tmp_path: Path, pdfs) -> None:
    server = start(tmp_path)
    mail = next(server)
    try:
        report = deliver(tmp_path, items(pdfs, ("INV-00000302", "zoe@bücher.example")), transport(mail))
        assert (report.emailed, report.printed) == (1, 0)
        [received] = mail.received
        assert "SMTPUTF8" not in received.mail_options and received.data.isascii()
        assert received.rcpt_tos == ["zoe@xn--bcher-kva.example"]
        assert [a.addr_spec for a in received.message()["To"].addresses] == ["zoe@xn--bcher-kva.example"]
        assert received.message()["To"].addresses[0].display_name == "Zoë Brandt"
    finally:
        server.close()


def test_a_non_ascii_mailbox_without_smtputf8_fails_clearly_and_goes_on_paper(tmp_path: Path, pdfs) -> None:
    server = start(tmp_path)
    mail = next(server)
    try:
        batch = items(pdfs, ("INV-00000301", "josé@example.com"))
        report = deliver(tmp_path, batch, transport(mail))
        assert (report.emailed, report.rejected, report.printed) == (0, 1, 1)
        assert "does not offer SMTPUTF8" in report.failures["INV-00000301"]
        assert mail.received == []  # nothing handed over
        assert [r[1:3] for r in ledger(tmp_path / "state.duckdb")] == [
            ("email", "rejected"),
            ("print", "sent"),
        ]
        assert (tmp_path / "print" / "INV-00000301.pdf").read_bytes() == pdfs["INV-00000301"][1].read_bytes()
        with duckdb.connect(str(tmp_path / "state.duckdb")) as con:  # RFC 6531's status: 5.6.7
            assert con.execute("select kind, status, recipient from bounces").fetchall() == [
                ("hard", "5.6.7", "josé@example.com")
            ]
        assert deliver(tmp_path, batch, transport(mail)).skipped_already_delivered == 1  # never twice
    finally:
        server.close()


def test_the_maildir_outbox_keeps_an_international_address_as_utf8(tmp_path: Path, pdfs) -> None:
    doc, pdf = pdfs["INV-00000301"]
    outbox = MaildirTransport(tmp_path / "outbox")
    outbox.send(build_invoice_email(doc, pdf, "josé@exämple.com", SENDER, TEMPLATES), "josé@exämple.com")
    [stored] = list(mailbox.Maildir(tmp_path / "outbox", factory=None))
    parsed = utf8_message(stored.as_bytes())
    assert [a.addr_spec for a in parsed["To"].addresses] == ["josé@exämple.com"]
    assert MaildirTransport(tmp_path / "outbox").find_sent(
        str(parsed["Message-ID"])
    )  # found again after a crash
