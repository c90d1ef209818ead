"""E-mail through a real SMTP server on loopback (aiosmtpd): settings from the environment, TLS and AUTH,
messages read back as received, retries with back-off, permanent refusals, exactly-once after a crash, and
the password never shown anywhere."""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailserver import ARCHIVE, PASSWORD, USER, MailServer, free_port, start
from test_documents import TEMPLATES, make_doc

from pipeline.bounces import accounts_to_switch
from pipeline.delivery import (
    DeliveryItem,
    build_invoice_email,
    deliver_invoices,
    ensure_delivery_ledger,
    parse_recipient,
)
from pipeline.documents import InvoiceDocument
from pipeline.rendering import render_invoice_pdfs
from pipeline.smtp import SmtpSettings, SmtpTransport, smtp_settings_from_env, transport_for
from pipeline.transports import MaildirTransport

SENDER = "cdrbill Telecom Billing <billing@cdrbill.invalid>"
Pdfs = dict[str, tuple[InvoiceDocument, Path]]
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> Pdfs:
    docs = [
        make_doc("INV-00000201", "en", name="Ana García"),
        make_doc("INV-00000202", "es", name='Beto "El Jefe" Ruiz'),
        make_doc("INV-00000203", "en", name="Carla Bounce"),
    ]
    out = tmp_path_factory.mktemp("smtp-pdfs")
    rendered = render_invoice_pdfs(docs, out, TEMPLATES, workers=1)
    return {r.invoice_number: (doc, r.path) for doc, r in zip(docs, rendered, strict=True)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    yield from start(tmp_path)


def transport(
    server: MailServer, sleeps: list[float] | None = None, attempts: int = 3, **env: str
) -> SmtpTransport:
    settings = smtp_settings_from_env(server.env(**env))
    assert settings is not None
    delays = sleeps if sleeps is not None else []
    return SmtpTransport(
        settings, "billing@cdrbill.invalid", attempts=attempts, retry_delay_s=0.01, sleep=delays.append
    )


def items(pdfs: Pdfs, *addresses: tuple[str, str]) -> list[DeliveryItem]:
    return [DeliveryItem(pdfs[number][0], pdfs[number][1], "email", address) for number, address in addresses]


def ledger(db: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db)) as con:
        return con.execute(
            "select invoice_number, channel, status, message_id, destination, attempts, last_error, transport "
            "from delivery_ledger order by 1, 2"
        ).fetchall()


def deliver(tmp_path: Path, batch: list[DeliveryItem], via: SmtpTransport | MaildirTransport):
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        return deliver_invoices(
            con, batch, tmp_path / "outbox", tmp_path / "print", SENDER, TEMPLATES, transport=via
        )


# ------------------------------------------------------------------------------------------- settings


def test_settings_come_from_the_environment_and_hide_the_password(tmp_path: Path) -> None:
    assert smtp_settings_from_env({}) is None  # no host: the Maildir outbox
    assert isinstance(transport_for({}, tmp_path / "o", SENDER), MaildirTransport)
    assert smtp_settings_from_env({"CDRBILL_SMTP_HOST": "mx.example.com"}) == SmtpSettings(
        "mx.example.com", 587
    )
    assert smtp_settings_from_env({"CDRBILL_SMTP_HOST": "h", "CDRBILL_SMTP_SECURITY": "TLS"}).port == 465  # type: ignore[union-attr]
    assert smtp_settings_from_env({"CDRBILL_SMTP_HOST": "h", "CDRBILL_SMTP_SECURITY": "none"}).port == 25  # type: ignore[union-attr]
    secret_file = tmp_path / "password"
    secret_file.write_text(PASSWORD + "\n")
    settings = smtp_settings_from_env(
        {"CDRBILL_SMTP_HOST": "h", "CDRBILL_SMTP_USER": USER, "CDRBILL_SMTP_PASSWORD_FILE": str(secret_file)}
    )
    assert settings is not None and settings.password == PASSWORD  # the trailing newline is not part of it
    assert PASSWORD not in repr(settings) and PASSWORD not in repr(
        SmtpTransport(settings, "b@cdrbill.invalid")
    )

    bad = [
        ({"CDRBILL_SMTP_SECURITY": "ssl"}, "CDRBILL_SMTP_SECURITY='ssl'. Fix"),
        ({"CDRBILL_SMTP_PORT": "99999"}, "CDRBILL_SMTP_PORT='99999'. Fix"),
        ({"CDRBILL_SMTP_PASSWORD": PASSWORD}, "without CDRBILL_SMTP_USER"),
        (
            {"CDRBILL_SMTP_USER": USER, "CDRBILL_SMTP_PASSWORD": PASSWORD, "CDRBILL_SMTP_PASSWORD_FILE": "x"},
            "set only one",
        ),
        ({"CDRBILL_SMTP_USER": USER, "CDRBILL_SMTP_PASSWORD_FILE": str(tmp_path / "nope")}, "cannot be read"),
        ({"CDRBILL_SMTP_ARCHIVE": "a@b.com\r\nBcc: x@y.com"}, "CDRBILL_SMTP_ARCHIVE="),
    ]
    for extra, message in bad:
        with pytest.raises(ValueError, match="Fix|without|one") as raised:
            smtp_settings_from_env({"CDRBILL_SMTP_HOST": "h", **extra})
        assert message in str(raised.value) and PASSWORD not in str(raised.value)


# ------------------------------------------------------------------------------------------- sending


@pytest.mark.parametrize(("security", "auth"), [("none", False), ("starttls", True), ("tls", True)])
def test_sent_through_smtp_and_read_back(tmp_path: Path, pdfs: Pdfs, security: str, auth: bool) -> None:
    runner = start(tmp_path, security, auth)
    server = next(runner)
    try:
        credentials = {"CDRBILL_SMTP_USER": USER, "CDRBILL_SMTP_PASSWORD": PASSWORD} if auth else {}
        itemisation = tmp_path / "INV-00000201.csv"
        itemisation.write_bytes(b"date,number,charge\r\n2026-10-01,+13125559876,0.01\r\n")
        batch = items(pdfs, ("INV-00000201", "ana@example.com"), ("INV-00000202", "beto@example.org"))
        batch[0] = DeliveryItem(batch[0].doc, batch[0].pdf_path, "email", "ana@example.com", (itemisation,))
        first = deliver(tmp_path, batch, transport(server, **credentials))
        again = deliver(tmp_path, batch, transport(server, **credentials))
    finally:
        runner.close()
    assert (first.emailed, first.printed, first.transport) == (2, 0, "smtp")
    assert (again.emailed, again.skipped_already_delivered) == (0, 2)  # re-running never sends twice
    assert len(server.received) == 2
    by_id = {r.message()["Message-ID"]: r for r in server.received}
    ana = by_id["<INV-00000201.2026-10@cdrbill.invalid>"]
    assert ana.mail_from == "billing@cdrbill.invalid" and ana.rcpt_tos == ["ana@example.com"]
    msg = ana.message()
    assert msg["To"].addresses[0].display_name == "Ana García"
    assert msg.get_content_type() == "multipart/mixed"
    text, html = msg.get_body(preferencelist=("plain",)), msg.get_body(preferencelist=("html",))
    assert text is not None and "$1,313.36" in text.get_content()
    assert html is not None and "$1,313.36" in html.get_content()
    files = {part.get_filename(): part for part in msg.iter_attachments()}
    assert files["INV-00000201.pdf"].get_content() == pdfs["INV-00000201"][1].read_bytes()
    assert files["INV-00000201.csv"].get_content_type() == "application/csv"
    assert files["INV-00000201.csv"].get_content() == itemisation.read_bytes()  # CRLF kept byte for byte
    beto = by_id["<INV-00000202.2026-10@cdrbill.invalid>"].message()
    assert beto["To"].addresses[0].display_name == "Beto El Jefe Ruiz"  # quotes are not kept
    assert [f.get_filename() for f in beto.iter_attachments()] == ["INV-00000202.pdf"]
    rows = ledger(tmp_path / "state.duckdb")
    assert [(r[0], r[2], r[5], r[7]) for r in rows] == [
        ("INV-00000201", "sent", 1, "smtp"),
        ("INV-00000202", "sent", 1, "smtp"),
    ]


def test_the_password_never_appears_in_logs_errors_or_the_ledger(
    tmp_path: Path, pdfs: Pdfs, caplog: pytest.LogCaptureFixture
) -> None:
    runner = start(tmp_path, "starttls", auth=True)
    server = next(runner)
    caplog.set_level(logging.DEBUG)
    try:
        waits: list[float] = []
        wrong = transport(server, waits, CDRBILL_SMTP_USER=USER, CDRBILL_SMTP_PASSWORD=PASSWORD + "-old")
        refused = deliver(tmp_path, items(pdfs, ("INV-00000201", "ana@example.com")), wrong)
        right = transport(server, CDRBILL_SMTP_USER=USER, CDRBILL_SMTP_PASSWORD=PASSWORD)
        sent = deliver(tmp_path, items(pdfs, ("INV-00000201", "ana@example.com")), right)
    finally:
        runner.close()
    assert (refused.emailed, refused.failed_retryable) == (0, 1)
    assert "authentication refused (535)" in refused.failures["INV-00000201"]
    assert waits == []  # a refused login is a setting to fix: not retried
    assert sent.emailed == 1 and len(server.received) == 1
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        dump = repr(con.execute("select * from delivery_ledger").fetchall())
    shown = " ".join([caplog.text, dump, repr(refused), repr(sent), repr(wrong), repr(right.settings)])
    assert "authentication refused" in shown
    for secret in (PASSWORD, PASSWORD + "-old"):
        assert secret not in shown
    assert right.scrub(f"reply: {PASSWORD}") == "reply: ***"


def test_transient_failures_are_retried_with_backoff(tmp_path: Path, pdfs: Pdfs, server: MailServer) -> None:
    server.handler.script["ana@example.com"] = ["451 4.7.1 greylisted, try later"] * 2
    sleeps: list[float] = []
    report = deliver(tmp_path, items(pdfs, ("INV-00000201", "ana@example.com")), transport(server, sleeps))
    assert report.emailed == 1 and len(server.received) == 1
    assert sleeps == [0.01, 0.02]  # retry_delay_s × 2^(n−1) before retry n
    assert ledger(tmp_path / "state.duckdb")[0][2::3] == ("sent", 3)  # status, attempts


def test_retries_exhausted_leave_the_invoice_for_the_next_run(
    tmp_path: Path, pdfs: Pdfs, server: MailServer
) -> None:
    server.handler.script["ana@example.com"] = ["452 4.2.2 mailbox full"] * 3
    batch = items(pdfs, ("INV-00000201", "ana@example.com"), ("INV-00000202", "beto@example.org"))
    first = deliver(tmp_path, batch, transport(server))
    assert (first.emailed, first.failed_retryable, first.printed) == (1, 1, 0)
    assert first.failures == {"INV-00000201": "recipient refused: 452 4.2.2 mailbox full"}
    row = ledger(tmp_path / "state.duckdb")[0]
    assert row[2] == "failed" and row[5] == 3 and row[6] == "recipient refused: 452 4.2.2 mailbox full"
    second = deliver(tmp_path, batch, transport(server))
    assert (second.emailed, second.failed_retryable, second.skipped_already_delivered) == (1, 0, 1)
    assert sorted(r.message()["Message-ID"] for r in server.received) == [
        "<INV-00000201.2026-10@cdrbill.invalid>",
        "<INV-00000202.2026-10@cdrbill.invalid>",
    ]
    assert ledger(tmp_path / "state.duckdb")[0][2::3] == ("sent", 4)  # 3 failed tries, then 1


def test_a_server_that_is_down_is_tried_once_per_run_not_per_invoice(tmp_path: Path, pdfs: Pdfs) -> None:
    settings = SmtpSettings("127.0.0.1", free_port(), security="none", timeout_s=5)
    sleeps: list[float] = []
    down = SmtpTransport(
        settings, "billing@cdrbill.invalid", attempts=3, retry_delay_s=0.01, sleep=sleeps.append
    )
    batch = items(pdfs, ("INV-00000201", "ana@example.com"), ("INV-00000202", "beto@example.org"))
    report = deliver(tmp_path, batch, down)
    assert (report.emailed, report.failed_retryable, report.printed) == (0, 2, 0)
    assert sleeps == [0.01, 0.02]  # three tries for the first invoice, none for the second
    assert "ConnectionRefusedError" in report.failures["INV-00000202"]
    assert [r[2] for r in ledger(tmp_path / "state.duckdb")] == ["failed", "failed"]


def test_a_permanent_refusal_goes_on_paper(tmp_path: Path, pdfs: Pdfs, server: MailServer) -> None:
    server.handler.script["carla@example.com"] = ["550 5.1.1 no such user"]
    sleeps: list[float] = []
    batch = items(pdfs, ("INV-00000203", "carla@example.com"))
    report = deliver(tmp_path, batch, transport(server, sleeps))
    assert (report.emailed, report.rejected, report.printed, sleeps) == (0, 1, 1, [])  # no retry of a 5xx
    assert [r[1:3] for r in ledger(tmp_path / "state.duckdb")] == [("email", "rejected"), ("print", "sent")]
    assert (tmp_path / "print" / "INV-00000203.pdf").read_bytes() == pdfs["INV-00000203"][1].read_bytes()
    assert deliver(tmp_path, batch, transport(server)).skipped_already_delivered == 1
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:  # a hard bounce: paper from the next cycle
        assert con.execute("select account_id, kind, status, action from bounces").fetchall() == [
            ("ACC-1001", "hard", "5.1.1", "refused")
        ]
        assert accounts_to_switch(con, 3)["account_id"].to_list() == ["ACC-1001"]


# ------------------------------------------------------------------------------------------- exactly once


def _crashed_after_accept(tmp_path: Path, doc: InvoiceDocument, pdf: Path, via: SmtpTransport) -> None:
    """The state a kill between the server's 250 and the outcome row leaves: intent row, message accepted."""
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        ensure_delivery_ledger(con)
        con.execute(
            "insert into delivery_ledger (invoice_number, channel, cycle, account_id, message_id, destination, "
            "status, delivered_at) values (?, 'email', ?, ?, ?, 'ana@example.com', 'sending', now())",
            [
                doc.invoice_number,
                doc.cycle,
                doc.account_id,
                f"<{doc.invoice_number}.{doc.cycle}@cdrbill.invalid>",
            ],
        )
    via.send(build_invoice_email(doc, pdf, "ana@example.com", SENDER, TEMPLATES), "ana@example.com")
    via.close()


def test_a_crash_after_accept_is_resolved_by_the_archive_copy(
    tmp_path: Path, pdfs: Pdfs, server: MailServer
) -> None:
    server.handler.archive_maildir = tmp_path / "archive"
    env = {"CDRBILL_SMTP_ARCHIVE": ARCHIVE, "CDRBILL_SMTP_ARCHIVE_MAILDIR": str(tmp_path / "archive")}
    doc, pdf = pdfs["INV-00000201"]
    _crashed_after_accept(tmp_path, doc, pdf, transport(server, **env))
    report = deliver(tmp_path, items(pdfs, ("INV-00000201", "ana@example.com")), transport(server, **env))
    assert (report.emailed, report.recovered_from_outbox, report.resent_same_message_id) == (1, 1, 0)
    assert len(server.received) == 1 and server.received[0].rcpt_tos == ["ana@example.com", ARCHIVE]
    assert "archive" not in server.received[0].data.decode().lower().split("\r\n\r\n")[0]  # envelope only
    assert len(mailbox.Maildir(tmp_path / "archive", create=False)) == 1
    assert ledger(tmp_path / "state.duckdb")[0][2] == "sent"


def test_a_crash_after_accept_without_proof_resends_the_same_message_id(
    tmp_path: Path, pdfs: Pdfs, server: MailServer
) -> None:
    doc, pdf = pdfs["INV-00000201"]
    _crashed_after_accept(tmp_path, doc, pdf, transport(server))
    report = deliver(tmp_path, items(pdfs, ("INV-00000201", "ana@example.com")), transport(server))
    assert (report.emailed, report.recovered_from_outbox, report.resent_same_message_id) == (1, 0, 1)
    ids = [r.message()["Message-ID"] for r in server.received]
    assert ids == ["<INV-00000201.2026-10@cdrbill.invalid>"] * 2  # receivers dedupe on it


# ------------------------------------------------------------------------------------------- hostile input

EXPECTED_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}
FRAGMENTS = [
    "\r\nBcc: victim@evil.example",
    "\nX-Injected: yes",
    "\rCc: victim@evil.example",
    "\u2028Bcc: victim@evil.example",
    "\x85Bcc: victim@evil.example",
    "=?utf-8?q?=0D=0ABcc:_victim@evil.example?=",
    '"',
    "<victim@evil.example>",
    ", victim@evil.example",
    ";",
    "\\",
    "José Ñúñez 電話",
    "\x00",
    "\t",
]
hostile_text = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(FRAGMENTS)), max_size=6).map("".join)


def header_names(data: bytes) -> set[str]:
    """The header names of a message as received on the wire (continuation lines folded away)."""
    block = data.split(b"\r\n\r\n", 1)[0].decode("ascii")  # the wire headers are pure ASCII
    return {
        line.split(":", 1)[0].strip().lower() for line in block.split("\r\n") if line[:1] not in (" ", "\t")
    }


def test_hostile_names_and_addresses_never_inject_a_header(pdfs: Pdfs, server: MailServer) -> None:
    doc, pdf = pdfs["INV-00000201"]
    via = transport(server, attempts=1)

    @given(name=hostile_text, address=hostile_text)
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(name: str, address: str) -> None:
        hostile = replace(doc, account_name=name)
        msg = build_invoice_email(hostile, pdf, "ok@example.com", SENDER, TEMPLATES)
        via.send(msg, "ok@example.com")
        received = server.received[-1]
        assert header_names(received.data) == EXPECTED_HEADERS
        parsed = received.message()
        assert [a.addr_spec for a in parsed["To"].addresses] == ["ok@example.com"]
        assert received.rcpt_tos == ["ok@example.com"]
        for candidate in (address, "ok@example.com" + address):
            recipient = parse_recipient(candidate)
            assert recipient is None or set(recipient.addr_spec) & set('\r\n\x00\u2028\x85 ,;<>"\\') == set()

    try:
        check()
    finally:
        via.close()
