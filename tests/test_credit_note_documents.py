"""Credit note documents through Dagster on a copy of the delivered sample cycle: two credit notes (an e-mail
account in Spanish, a paper account) rendered with the invoice's stylesheet, read back from the PDF, e-mailed
over a real SMTP server on loopback or put in the print batch — and a re-run delivers nothing twice."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import SAMPLE_CYCLE
from mailserver import MailServer, start
from pypdf import PdfReader

from assets.credit_notes import credit_note_deliveries
from assets.printing import print_batch
from assets.resources import CdrbillHome
from pipeline.credit_notes import issue_credit_note
from pipeline.home import Home
from pipeline.settings import Settings
from pipeline.state import open_state


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    yield from start(tmp_path)


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, object]:
    [materialization] = result.asset_materializations_for_node(node)
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def _text(pdf: bytes) -> str:
    return " ".join(
        " ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages
    )


def test_credit_notes_rendered_emailed_and_printed_once(
    tmp_path: Path, sample_cycle, server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample_home, _ = sample_cycle
    home = Home(tmp_path / "home")
    shutil.copytree(sample_home.root, home.root, ignore=shutil.ignore_patterns("dagster", "locks"))
    resources = {"cdrbill": CdrbillHome(root=str(home.root))}
    with open_state(home.state_db) as state:
        invoices = dict(
            state.execute(
                "select account_id, invoice_number from invoices where cycle = ? and account_id in (?, ?)",
                [SAMPLE_CYCLE, "ACC-0001", "ACC-0003"],
            ).fetchall()
        )
        totals = dict(state.execute("select invoice_number, total_amount from invoices").fetchall())
        # ACC-0001 (Spanish, e-mail): the reason hides an SSN-shaped reference, never printed
        emailed = issue_credit_note(
            state,
            invoices["ACC-0001"],
            Decimal("12.50"),
            "Outage Oct 8 ref 123-45-6789",
            "j.rivera",
            Settings(),
        )
        # ACC-0003 (paper): two credit notes on one invoice, the second shows the first as an earlier credit
        issue_credit_note(state, invoices["ACC-0003"], Decimal("1.00"), "Goodwill", "j.rivera", Settings())
        printed = issue_credit_note(
            state, invoices["ACC-0003"], Decimal("2.25"), "Late install", "a.ng", Settings()
        )
    assert (emailed.credit_note_number, printed.credit_note_number) == ("CN-00000001", "CN-00000003")
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)

    first = dg.materialize(
        [credit_note_deliveries, print_batch], partition_key=SAMPLE_CYCLE, resources=resources
    )
    meta = _metadata(first, "credit_note_deliveries")
    assert (meta["credit_notes"], meta["rendered"], meta["emailed"], meta["to_print"]) == (3, 3, 1, 2)
    batch = _metadata(first, "print_batch")
    assert batch["printed"] == 2  # the two paper credit notes, in the cycle's next batch
    manifest = (home.print_dir / SAMPLE_CYCLE / "batches" / f"{batch['batch']}-manifest.csv").read_text()
    assert manifest.count(",credit_note,") == 2 and "ACC-0003" not in manifest  # account masked: ****0003

    # the e-mail: one message, deterministic Message-ID, the credit note PDF attached
    [received] = server.received
    message = received.message()
    assert message["Message-ID"] == "<CN-00000001@cdrbill.invalid>"
    assert received.rcpt_tos == ["maria.lopez@example.com"]
    assert "CN-00000001" in message["Subject"] and invoices["ACC-0001"] in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "CN-00000001.pdf"
    text = _text(attachment.get_content())
    assert "Nota de crédito" in text and "CN-00000001" in text and invoices["ACC-0001"] in text
    assert "Importe acreditado $12.50" in text
    # golden: INV-00000001 totals 33.63, no payment applied before the credit note: 33.63 − 12.50 = 21.13
    assert invoices["ACC-0001"] == "INV-00000001" and totals["INV-00000001"] == Decimal("33.63")
    assert "Total de la factura $33.63" in text and "Nuevo saldo $21.13" in text
    assert "123-45-6789" not in text and "[redacted]" in text
    assert "900-00-0001" not in text  # the account's tax id is never printed

    # the paper credit note: the first credit (1.00) shown, new balance = total − 1.00 − 2.25
    paper = _text((home.documents / SAMPLE_CYCLE / "credit_notes" / "CN-00000003.pdf").read_bytes())
    assert "Credit note" in paper and "CN-00000003" in paper and invoices["ACC-0003"] in paper
    # golden: INV-00000003 totals 71.16; 71.16 − 1.00 (CN-00000002) = 70.16 before; 70.16 − 2.25 = 67.91
    assert invoices["ACC-0003"] == "INV-00000003" and totals["INV-00000003"] == Decimal("71.16")
    assert "Earlier credit notes -$1.00" in paper and "Balance before this credit note $70.16" in paper
    assert "This credit note CN-00000003 -$2.25" in paper and "New balance $67.91" in paper
    assert "900-00-0003" not in paper

    # a re-run renders nothing, sends nothing, prints nothing again
    second = dg.materialize(
        [credit_note_deliveries, print_batch], partition_key=SAMPLE_CYCLE, resources=resources
    )
    again = _metadata(second, "credit_note_deliveries")
    assert (again["rendered"], again["emailed"], again["to_print"], again["already_delivered"]) == (
        0,
        0,
        0,
        3,
    )
    assert _metadata(second, "print_batch")["printed"] == 0
    assert len(server.received) == 1
    with duckdb.connect(str(home.state_db), read_only=True) as con:
        assert con.execute(
            "select channel, count(*) from delivery_ledger where invoice_number like 'CN-%' group by all order by 1"
        ).fetchall() == [("credit_note", 1), ("credit_note_print", 2)]
