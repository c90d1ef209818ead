"""Bounces: real RFC 3464 reports (tests/data/dsn) in a real Maildir, matched to a real DuckDB ledger; accounts
switched to paper with a notice PDF, and their next invoice printed."""

from __future__ import annotations

import mailbox
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pypdf import PdfReader
from test_documents import TEMPLATES, make_doc

from pipeline.bounces import accounts_to_switch, preference_overrides, process_bounces, read_bounces
from pipeline.delivery import deliver_invoices, delivery_items, ensure_delivery_ledger
from pipeline.dsn import parse_dsn
from pipeline.rendering import render_invoice_pdfs

DSN_DIR = Path(__file__).parent / "data" / "dsn"
SENDER = "billing@cdrbill.invalid"

# invoice → (cycle, account, address the e-mail went to)
SENT = {
    "INV-00000001": ("2026-10", "ACC-A", "ana@example.com"),
    "INV-00000002": ("2026-10", "ACC-B", "beto@example.org"),
    "INV-00000003": ("2026-08", "ACC-C", "carla@example.net"),
    "INV-00000004": ("2026-09", "ACC-C", "carla@example.net"),
    "INV-00000005": ("2026-10", "ACC-C", "carla@example.net"),
    "INV-00000006": ("2026-10", "ACC-E", "eve@example.com"),
    "INV-00000007": ("2026-08", "ACC-D", "dan@example.com"),
    "INV-00000008": ("2026-09", "ACC-D", "dan@example.com"),
    "INV-00000009": ("2026-10", "ACC-D", "dan@example.com"),
    "INV-00000010": ("2026-10", "ACC-F", "fran@example.com"),
}
ACCOUNTS = pl.DataFrame(
    [
        {
            "account_id": account,
            "account_name": name,
            "billing_address_line1": f"{n}00 W Cermak Rd",
            "billing_city": "Chicago",
            "billing_state": "IL",
            "billing_zip": f"6060{n}",
            "language": "es" if account == "ACC-C" else "en",
            "delivery_preference": "email",
            "email": address,
        }
        for n, (account, name, address) in enumerate(
            [
                ("ACC-A", "Ana García", "ana@example.com"),
                ("ACC-B", "Beto Ruiz", "beto@example.org"),
                ("ACC-C", "Carla Díaz", "carla@example.net"),
                ("ACC-D", "Dan Brown", "dan@example.com"),
                ("ACC-E", "Eve Stone", "eve@example.com"),
                ("ACC-F", "Fran Lee", "fran@example.com"),
            ],
            start=1,
        )
    ]
)


def test_reports_are_parsed_per_rfc_3464() -> None:
    hard = parse_dsn((DSN_DIR / "01-hard-user-unknown.eml").read_bytes())
    assert hard is not None and len(hard) == 1
    assert (hard[0].original_message_id, hard[0].recipient, hard[0].action, hard[0].status, hard[0].kind) == (
        "<INV-00000001.2026-10@cdrbill.invalid>",
        "ana@example.com",
        "failed",
        "5.1.1",
        "hard",
    )
    assert hard[0].diagnostic == "smtp; 550 5.1.1 <ana@example.com>: Recipient address rejected: User unknown"
    soft = parse_dsn((DSN_DIR / "02-soft-mailbox-full-warning-1.eml").read_bytes())
    assert soft is not None and [(r.original_message_id, r.kind, r.action) for r in soft] == [
        ("<INV-00000002.2026-10@cdrbill.invalid>", "soft", "delayed")  # from the returned message/rfc822
    ]
    success = parse_dsn((DSN_DIR / "08-success-dan-2026-09.eml").read_bytes())
    assert success is not None and success[0].kind == "success"
    bare = parse_dsn((DSN_DIR / "10-hard-eve-no-headers.eml").read_bytes())
    assert bare is not None and (bare[0].original_message_id, bare[0].recipient) == (None, "eve@example.com")
    two = parse_dsn((DSN_DIR / "11-unmatched.eml").read_bytes())
    assert two is not None and [r.status for r in two] == ["5.1.2", "5.2.1"]
    assert parse_dsn((DSN_DIR / "12-auto-reply.eml").read_bytes()) is None
    assert parse_dsn(b"not a message at all\x00\xff") is None


def _ledger(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        ensure_delivery_ledger(con)
        for invoice, (cycle, account, address) in SENT.items():
            con.execute(
                "insert into delivery_ledger (invoice_number, channel, cycle, account_id, message_id, "
                "destination, status, delivered_at) values (?, 'email', ?, ?, ?, ?, 'sent', ?)",
                [
                    invoice,
                    cycle,
                    account,
                    f"<{invoice}.{cycle}@cdrbill.invalid>",
                    address,
                    datetime(2026, 11, 1),
                ],
            )


def _bounce_box(folder: Path) -> Path:
    box = mailbox.Maildir(folder, create=True)
    for path in sorted(DSN_DIR.glob("*.eml")):
        box.add(path.read_bytes())
    return folder


def _process(con: duckdb.DuckDBPyConnection, box: Path, out: Path, limit: int = 3):
    return process_bounces(
        con, box, ACCOUNTS, limit, "2026-11", out / "print" / "2026-11" / "notices", TEMPLATES,
        "cdrbill Telecom", "1-800-555-0100",
    )  # fmt: skip


def test_bounces_switch_accounts_to_paper_with_a_notice(tmp_path: Path) -> None:
    db = tmp_path / "state.duckdb"
    _ledger(db)
    box = _bounce_box(tmp_path / "bounces")
    with duckdb.connect(str(db)) as con:
        first = _process(con, box, tmp_path)
        rows = con.execute(
            "select source, invoice_number, account_id, matched_by, kind, status from bounces order by source, status"
        ).fetchall()
        overrides = con.execute(
            "select account_id, preference, reason, cycle from delivery_preference_overrides order by 1"
        ).fetchall()
        again = _process(con, box, tmp_path)
        assert con.execute("select count(*) from bounces").fetchall() == [(12,)]

    # 12 files: 11 reports with 12 recipient results (11-unmatched has two), 1 auto-reply
    assert (first.files_read, first.not_reports) == (12, 1)
    # hard: ana, eve, and the two unmatched; soft: 2 warnings (beto) + 3 (carla) + 2 (dan); success: dan
    assert (first.hard, first.soft, first.success, first.unmatched) == (4, 7, 1, 2)
    matched = {(r[2], r[3]) for r in rows}
    assert ("ACC-E", "recipient") in matched and ("ACC-A", "message_id") in matched
    unmatched = [r for r in rows if r[3] == "none"]
    assert [(r[1], r[2], r[5]) for r in unmatched] == [(None, None, "5.1.2"), (None, None, "5.2.1")]
    # ACC-A: one hard bounce. ACC-C: 3 different messages soft-bounced (limit 3). ACC-E: hard, by recipient.
    # Not ACC-B (two warnings about ONE message), not ACC-D (the success report breaks the row: 1 after it).
    assert overrides == [
        (
            "ACC-A",
            "paper",
            "hard bounce 5.1.1 (smtp; 550 5.1.1 <ana@example.com>: Recipient address rejected: User unknown)",
            "2026-11",
        ),
        ("ACC-C", "paper", "3 soft bounces in a row (last 4.4.1)", "2026-11"),
        (
            "ACC-E",
            "paper",
            "hard bounce 5.7.1 (smtp; 554 5.7.1 Message rejected by recipient policy)",
            "2026-11",
        ),
    ]
    assert first.switched_to_paper == ["ACC-A", "ACC-C", "ACC-E"]
    # reading the same mailbox again: nothing new, no second switch
    assert (again.already_recorded, again.hard, again.soft, again.switched_to_paper) == (12, 0, 0, [])

    notices = {p.name: p for p in first.notices}
    assert sorted(notices) == ["NOTICE-ACC-A.pdf", "NOTICE-ACC-C.pdf", "NOTICE-ACC-E.pdf"]
    text = " ".join(PdfReader(notices["NOTICE-ACC-A.pdf"]).pages[0].extract_text().split())
    assert "Ana García" in text and "100 W Cermak Rd" in text and "Chicago, IL 60601" in text
    assert "Your bills will now come by mail" in text and "a***@example.com" in text
    assert "ana@example.com" not in text  # the address is masked on paper
    spanish = " ".join(PdfReader(notices["NOTICE-ACC-C.pdf"]).pages[0].extract_text().split())
    assert "Sus facturas llegarán ahora por correo postal" in spanish and "varias veces seguidas" in spanish


@pytest.mark.parametrize(
    ("limit", "switched"),
    [
        # 1: every account with a soft bounce since its latest success report — beto and dan too
        (1, ["ACC-A", "ACC-B", "ACC-C", "ACC-D", "ACC-E"]),
        # 2: beto's two warnings are about ONE message; dan has 2 soft bounces but only 1 after his success
        (2, ["ACC-A", "ACC-C", "ACC-E"]),
    ],
)
def test_soft_bounce_limit_is_a_setting(tmp_path: Path, limit: int, switched: list[str]) -> None:
    db = tmp_path / "state.duckdb"
    _ledger(db)
    box = _bounce_box(tmp_path / "bounces")
    with duckdb.connect(str(db)) as con:
        read_bounces(con, box)
        assert accounts_to_switch(con, limit)["account_id"].to_list() == switched


def test_the_next_invoice_of_a_switched_account_is_printed(tmp_path: Path) -> None:
    db = tmp_path / "state.duckdb"
    _ledger(db)
    box = _bounce_box(tmp_path / "bounces")
    docs = [
        replace(make_doc("INV-00000011"), account_id="ACC-A", cycle="2026-11"),
        replace(make_doc("INV-00000012"), account_id="ACC-B", cycle="2026-11"),
    ]
    folder = tmp_path / "documents"
    render_invoice_pdfs(docs, folder, TEMPLATES, workers=1)
    with duckdb.connect(str(db)) as con:
        _process(con, box, tmp_path)
        items = delivery_items(docs, ACCOUNTS, folder, preference_overrides(con))
        report = deliver_invoices(
            con, items, tmp_path / "outbox", tmp_path / "print" / "2026-11", SENDER, TEMPLATES
        )
    assert [(i.doc.account_id, i.channel, i.switched_to_paper) for i in items] == [
        ("ACC-A", "paper", True),
        ("ACC-B", "email", False),
    ]
    assert (report.emailed, report.printed, report.switched_to_paper, report.fallback_to_paper) == (
        1,
        1,
        1,
        0,
    )
    assert (tmp_path / "print" / "2026-11" / "INV-00000011.pdf").is_file()

