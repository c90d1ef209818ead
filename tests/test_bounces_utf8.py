"""Bounces for internationalised addresses (RFC 6531 SMTPUTF8, RFC 6533 DSNs): a report that names the recipient
in UTF-8, ``\\x{…}``-escaped or with the domain's A-label is matched to the e-mail by its recipient — real DSN
files (tests/data/dsn-utf8) in a real Maildir, matched against a real DuckDB delivery ledger."""

from __future__ import annotations

import mailbox
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pipeline.bounces import accounts_to_switch, read_bounces
from pipeline.delivery import ensure_delivery_ledger
from pipeline.dsn import canonical_address, parse_dsn

DSN_DIR = Path(__file__).parent / "data" / "dsn-utf8"
# invoice → (account, the address the e-mail went to, as the ledger records it)
SENT = {
    "INV-00000301": ("ACC-J", "josé@exämple.com"),
    "INV-00000302": ("ACC-Z", "zoe@bücher.example"),
    "INV-00000303": ("ACC-A", "ana@example.com"),
}


def test_utf8_recipients_are_read_in_every_form_rfc_6533_allows() -> None:
    results = {path.name: parse_dsn(path.read_bytes()) for path in sorted(DSN_DIR.glob("*.eml"))}
    assert {name: [(r.recipient, r.status, r.kind, r.original_message_id) for r in found or []]
            for name, found in results.items()} == {
        "01-hard-jose-global.eml": [("josé@exämple.com", "5.1.1", "hard", None)],  # raw UTF-8, case folded
        "02-soft-jose-xtext.eml": [("josé@exämple.com", "4.2.2", "soft", None)],  # \x{E9} → é, \x{E4} → ä
        "03-hard-zoe-a-label.eml": [("zoe@bücher.example", "5.1.1", "hard", None)],  # xn--bcher-kva → bücher
    }  # fmt: skip


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("José@Exämple.com", "josé@exämple.com"),
        ("zoe@xn--bcher-kva.example", "zoe@bücher.example"),
        ("ANA@Example.COM", "ana@example.com"),
        ("ana@xn--.com", "ana@xn--.com"),  # not a valid IDNA name: only lower-cased
        ("no-at-sign", "no-at-sign"),
    ],
)
def test_the_canonical_form_of_an_address(written: str, canonical: str) -> None:
    assert canonical_address(written) == canonical


def test_a_dsn_naming_a_utf8_recipient_is_matched_by_recipient(tmp_path: Path) -> None:
    db = tmp_path / "state.duckdb"
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    for path in sorted(DSN_DIR.glob("*.eml")):
        box.add(path.read_bytes())
    with duckdb.connect(str(db)) as con:
        ensure_delivery_ledger(con)
        for invoice, (account, address) in SENT.items():
            con.execute(
                "insert into delivery_ledger (invoice_number, channel, cycle, account_id, message_id, "
                "destination, status, delivered_at) values (?, 'email', '2026-10', ?, ?, ?, 'sent', ?)",
                [invoice, account, f"<{invoice}.2026-10@cdrbill.invalid>", address, datetime(2026, 11, 1)],
            )
        report = read_bounces(con, tmp_path / "bounces")
        rows = con.execute(
            "select invoice_number, account_id, recipient, matched_by, kind, status from bounces order by status, invoice_number"
        ).fetchall()
        again = read_bounces(con, tmp_path / "bounces")
        switched = accounts_to_switch(con, 3)["account_id"].to_list()
    # three reports, none returning the original headers: each matched by its recipient, none unmatched
    assert (report.files_read, report.hard, report.soft, report.unmatched) == (3, 2, 1, 0)
    assert rows == [
        ("INV-00000301", "ACC-J", "josé@exämple.com", "recipient", "soft", "4.2.2"),
        ("INV-00000301", "ACC-J", "josé@exämple.com", "recipient", "hard", "5.1.1"),
        ("INV-00000302", "ACC-Z", "zoe@bücher.example", "recipient", "hard", "5.1.1"),
    ]
    assert again.already_recorded == 3  # read twice: nothing new
    assert switched == ["ACC-J", "ACC-Z"]  # a hard bounce each: to paper
