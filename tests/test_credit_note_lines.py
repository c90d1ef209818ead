"""Credit notes of several lines (issue 6): a correction credits a usage line and its tax (per jurisdiction),
each line printed on the credit note, total = Σ lines, numbered gapless in the credit note series, and the
original invoice never changes. Golden PDFs read back with pypdfium2, in English and Spanish."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from billrun_fixtures import OCTOBER, account, bill, rated, table, tax

from pipeline.credit_note_documents import credit_note_documents, render_credit_note_pdf
from pipeline.credit_notes import (
    CreditLine,
    CreditNoteError,
    issue_credit_note,
    issue_credit_note_lines,
    parse_credit_line,
    parse_invoice_line_credit,
)
from pipeline.invoicing import finalize_cycle, register_inputs
from pipeline.settings import Settings
from pipeline.state import open_state

D = Decimal
TEMPLATES = Path(__file__).parents[1] / "templates"
ACCOUNTS = table("accounts", account("A", language="en"), account("B", language="es"))


def pdf_text(path: Path) -> str:
    """Every page's text, whitespace collapsed (pypdfium2 reads what the PDF draws)."""
    pdf = pdfium.PdfDocument(str(path))
    try:
        return " ".join(" ".join(page.get_textpage().get_text_range().split()) for page in pdf)
    finally:
        pdf.close()


@pytest.fixture
def state(tmp_path: Path):
    """A state ledger with October finalised: INV-00000001 for A (en), INV-00000002 for B (es)."""
    # A: plan 30.00 (line 1) + interstate calls 4.00 (line 2) + intrastate 1.00 (line 3) + IL-T 7% × 35.00 =
    # 2.45 (line 4) = 37.45; B: 30.00 + interstate 4.00 + 7% × 34.00 = 2.38 → 36.38
    lines = bill(
        {"accounts": ACCOUNTS, "taxes": table("taxes", tax("IL-T", "IL", "7.00"))},
        rated(("A", "+13125550100", "IL", 600, "4.00", "interstate"),
              ("A", "+13125550100", "IL", 60, "1.00", "intrastate"),
              ("B", "+13125550101", "IL", 600, "4.00", "interstate")),
    )  # fmt: skip
    charges = tmp_path / "charges.parquet"
    lines.write_parquet(charges)
    with open_state(tmp_path / "state.duckdb") as con:
        register_inputs(con, {"accounts": ACCOUNTS} | {n: table(n) for n in ("adjustments", "payments", "disputes")})
        finalize_cycle(con, charges, OCTOBER, Settings())
        yield con


def invoice_snapshot(state) -> list[tuple]:
    return state.execute(
        "select i.invoice_number, i.total_amount, l.line_no, l.description, l.amount "
        "from invoices i join invoice_lines l using (invoice_number) order by 1, 3"
    ).fetchall()


def test_a_credit_of_a_usage_line_and_its_tax_in_english_and_spanish(state, tmp_path: Path):
    before = invoice_snapshot(state)
    assert [row[1] for row in before if row[2] == 1] == [D("37.45"), D("36.38")]
    english = issue_credit_note_lines(
        state,
        "INV-00000001",
        [CreditLine(D("4.00"), invoice_line_no=2),  # the interstate calls, whole
         CreditLine(D("0.28"), invoice_line_no=4),  # their tax: 7% × 4.00 = 0.28
         parse_credit_line("Goodwill for the outage of Oct 8, ref 123-45-6789=1.00")],
        "Outage Oct 8",
        "j.rivera",
        Settings(),
    )  # fmt: skip
    spanish = issue_credit_note_lines(
        state,
        "INV-00000002",
        [CreditLine(D("2.00"), "Crédito por la caída del 8 de octubre", invoice_line_no=2),
         parse_invoice_line_credit("3=0.14")],  # 7% × 2.00 = 0.14
        "Caída del 8 de octubre",
        "j.rivera",
        Settings(),
    )  # fmt: skip
    # total = Σ lines: 4.00 + 0.28 + 1.00 = 5.28; 2.00 + 0.14 = 2.14; numbered in the CN series, no gap
    assert (english.credit_note_number, english.amount) == ("CN-00000001", D("5.28"))
    assert (spanish.credit_note_number, spanish.amount) == ("CN-00000002", D("2.14"))
    assert invoice_snapshot(state) == before  # the original invoices never change

    docs = {doc.credit_note_number: doc for doc in credit_note_documents(state, "2026-10", ACCOUNTS, TEMPLATES)}
    texts = {}
    for number, doc in docs.items():
        texts[number] = pdf_text(render_credit_note_pdf(doc, TEMPLATES, tmp_path / f"{number}.pdf"))
    en, es = texts["CN-00000001"], texts["CN-00000002"]
    # English: each line as printed, negative; the line against an invoice line shows that line's description
    assert (
        "Credit of invoice line 2: Calls (interstate) from +1 312-555-0100 (1 call, 10 min 0 s billed) -$4.00" in en
    )
    assert "Credit of invoice line 4: IL-T 7% -$0.28" in en
    assert "Goodwill for the outage of Oct 8, ref [redacted] -$1.00" in en and "123-45-6789" not in en
    # (the bold total row is drawn with a gap after the sign: pypdfium2 reads it as "- $")
    assert re.search(r"Total credit - ?\$5\.28", en) and "Amount credited $5.28" in en
    # new balance: 37.45 − 5.28 = 32.17
    assert "Invoice total $37.45" in en and "New balance $32.17" in en
    # Spanish: the operator's description with the invoice line it corrects, and the tax line's own description
    assert "Crédito por la caída del 8 de octubre (línea 2 de la factura) -$2.00" in es
    assert "Crédito de la línea 3 de la factura: IL-T 7% -$0.14" in es
    assert re.search(r"Total del crédito - ?\$2\.14", es)
    # new balance: 36.38 − 2.14 = 34.24
    assert "Total de la factura $36.38" in es and "Nuevo saldo $34.24" in es


def test_a_line_is_never_credited_past_its_amount_and_a_refusal_takes_no_number(state):
    first = issue_credit_note_lines(
        state, "INV-00000001", [CreditLine(D("3.00"), invoice_line_no=2)], "Outage", "a.ng", Settings()
    )
    # 4.00 − 3.00 = 1.00 left on line 2 of INV-00000001
    with pytest.raises(CreditNoteError, match="1.00 left to credit on line 2 of INV-00000001"):
        issue_credit_note_lines(
            state, "INV-00000001", [CreditLine(D("0.60"), invoice_line_no=2),
                                    CreditLine(D("0.50"), invoice_line_no=2)], "Outage", "a.ng", Settings()
        )  # fmt: skip
    with pytest.raises(CreditNoteError, match="has no line 9"):
        issue_credit_note_lines(state, "INV-00000001", [CreditLine(D("1"), invoice_line_no=9)], "x", "a", Settings())
    with pytest.raises(CreditNoteError, match="needs a description or an invoice line"):
        issue_credit_note_lines(state, "INV-00000001", [CreditLine(D("1")), CreditLine(D("1"))], "x", "a", Settings())
    with pytest.raises(CreditNoteError, match="line 2: amount 0.001 must be in whole minor units of USD"):
        issue_credit_note_lines(
            state, "INV-00000001", [parse_credit_line("a=1"), parse_credit_line("b=0.001")], "x", "a", Settings()
        )
    # the refusals took no number: the next credit note follows the first (one line, as before: the amount)
    second = issue_credit_note(state, "INV-00000001", D("1.00"), "Rounding", "a.ng", Settings())
    assert (first.credit_note_number, second.credit_note_number) == ("CN-00000001", "CN-00000002")
    assert state.execute(
        "select credit_note_number, line_no, description, invoice_line_no, amount from credit_note_lines order by 1, 2"
    ).fetchall() == [("CN-00000001", 1, None, 2, D("3.00")), ("CN-00000002", 1, None, None, D("1.00"))]
    [doc] = [d for d in credit_note_documents(state, "2026-10", ACCOUNTS, TEMPLATES) if d.amount == D("1.00")]
    assert [(line.description, line.amount) for line in doc.lines] == [
        ("Credit on invoice INV-00000001: Rounding", D("-1.00"))
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("Outage", "write DESCRIPTION=AMOUNT"), ("=4", "write DESCRIPTION=AMOUNT"), ("x=abc", "not an amount")],
)
def test_badly_written_lines_are_refused(text, message):
    with pytest.raises(CreditNoteError, match=message):
        parse_credit_line(text)
    with pytest.raises(CreditNoteError):
        parse_invoice_line_credit(text)


def test_the_command_line_issues_a_credit_note_of_several_lines(state, tmp_path: Path):
    from test_cli import cdrbill

    state.close()  # the CLI opens the ledger itself
    home = tmp_path
    done = cdrbill(home, "credit-note", "--invoice", "INV-00000001", "--invoice-line", "2=4.00",
                   "--invoice-line", "4=0.28", "--line", "Goodwill=1.00", "--reason", "Outage Oct 8",
                   "--approved-by", "a.ng", "--no-deliver")  # fmt: skip
    assert done.returncode == 0, done.stderr
    # 4.00 + 0.28 + 1.00 = 5.28
    assert done.stdout.strip() == "credit note CN-00000001: 5.28 USD on INV-00000001 (A) in 3 lines"
    both = cdrbill(home, "credit-note", "--invoice", "INV-00000001", "--amount", "1.00", "--line", "x=1.00",
                   "--reason", "r", "--approved-by", "a.ng", "--no-deliver")  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr
    bad = cdrbill(home, "credit-note", "--invoice", "INV-00000001", "--line", "Goodwill",
                  "--reason", "r", "--approved-by", "a.ng", "--no-deliver")  # fmt: skip
    assert bad.returncode == 2 and "write DESCRIPTION=AMOUNT" in bad.stderr
    with open_state(home / "state.duckdb") as con:
        assert con.execute("select invoice_line_no, description, amount from credit_note_lines order by line_no").fetchall() == [
            (2, None, D("4.00")), (4, None, D("0.28")), (None, "Goodwill", D("1.00"))
        ]  # fmt: skip
