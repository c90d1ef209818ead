"""Invoice HTML/PDF rendering, checked on real PDFs read back with pypdf."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from pipeline.documents import (
    BalanceBlock,
    InvoiceDocument,
    InvoiceLine,
    UsageItem,
    format_duration,
    render_invoice_html,
)
from pipeline.rendering import POOL_MIN_DOCUMENTS, render_invoice_pdfs

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
FAKE_TAX_ID = "98-7654321"


def make_doc(
    number: str = "INV-00000001", language: str = "en", n_usage: int = 3, name: str = "Ana García"
) -> InvoiceDocument:
    """A two-service invoice with ``n_usage`` calls; usage charges add up to the usage line; a balance block
    with 80.00 previous balance and 50.00 paid, so 30.00 is brought forward."""
    base = datetime(2026, 10, 1, 8, 0)
    items = tuple(
        UsageItem(
            service_number="+13125550100" if i % 3 else "+13125550101",
            start_local=base + timedelta(hours=11 * i, minutes=i),
            called_number="+442079460000" if i % 2 else "+13125559876",
            destination="United Kingdom - Mobile" if i % 2 else "US Domestic",
            billsec=30 + 7 * i,
            billed_seconds=60 * ((30 + 7 * i) // 60 + 1),
            charge=Decimal("0.012345") * (i + 1),
        )
        for i in range(n_usage)
    )
    usage = sum((item.charge for item in items), Decimal("0")).quantize(Decimal("0.01"))
    lines = (
        InvoiceLine(
            "recurring",
            "+13125550100",
            "Residential Basic — monthly charge (16 of 31 days)",
            Decimal("1"),
            "month",
            Decimal("15.48"),
        ),
        InvoiceLine(
            "recurring",
            "+13125550101",
            "Residential Basic — monthly charge",
            Decimal("1"),
            "month",
            Decimal("30.00"),
        ),
        InvoiceLine("usage", "+13125550100", "International calls", Decimal(n_usage), "call", usage),
        InvoiceLine(
            "taxes", None, "Illinois Telecommunications Excise Tax 7.00%", None, None, Decimal("3.25"),
            category="government_tax", taxable_base=Decimal("46.43"), rate=Decimal("7"),
        ),  # fmt: skip
        InvoiceLine(
            "taxes", None, "Federal Universal Service Fund 36.60%", None, None, Decimal("1234.56"),
            category="regulatory_fee", taxable_base=Decimal("3373.11"), rate=Decimal("36.6"),
        ),  # fmt: skip
    )
    total = sum((line.amount for line in lines), Decimal("0"))
    return InvoiceDocument(
        invoice_number=number,
        cycle="2026-10",
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 11, 21),
        period_start=date(2026, 10, 1),
        period_end=date(2026, 10, 31),
        account_id="ACC-1001",
        account_name=name,
        address_lines=("123 Main St", "Chicago, IL 60601"),
        language=language,
        currency="USD",
        lines=lines,
        total=total,
        usage_items=items,
        # 80.00 − 50.00 = 30.00 forward; + current charges = amount due
        balance=BalanceBlock(
            previous_balance=Decimal("80.00"),
            payments=Decimal("50.00"),
            credit_notes=Decimal("0.00"),
            balance_forward=Decimal("30.00"),
            current_charges=total,
            amount_due=total + Decimal("30.00"),
        ),
    )


@dataclass(frozen=True)
class DocWithTaxId(InvoiceDocument):
    """What a careless model might carry: the template must never print it."""

    tax_id: str = FAKE_TAX_ID


def pdf_text(path: Path) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(path).pages]


def test_english_and_spanish_pdfs(tmp_path: Path) -> None:
    en = DocWithTaxId(**make_doc("INV-00000001", "en").__dict__)
    es = make_doc("INV-00000002", "es")
    big = make_doc("INV-00000003", "en", n_usage=60)
    rendered = render_invoice_pdfs([en, es, big], tmp_path, TEMPLATES, workers=1)

    assert [r.invoice_number for r in rendered] == ["INV-00000001", "INV-00000002", "INV-00000003"]
    assert [r.path.name for r in rendered] == ["INV-00000001.pdf", "INV-00000002.pdf", "INV-00000003.pdf"]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))

    en_pages = pdf_text(rendered[0].path)
    assert rendered[0].pages == len(en_pages) == 2  # summary and charges in detail, then itemised calls
    first = en_pages[0]
    # current charges: 15.48 + 30.00 + usage (0.012345 × (1 + 2 + 3) = 0.07407 → 0.07) + taxes 3.25 + 1,234.56
    #   = 1,283.36; amount due = 1,283.36 + balance forward (80.00 − 50.00 = 30.00) = 1,313.36
    for expected in (
        "cdrbill Telecom",
        "INV-00000001",
        "ACC-1001",
        "Oct 1 – 31, 2026",
        "November 1, 2026",
        "November 21, 2026",
        "Amount due $1,313.36",
        "Previous balance $80.00",
        "Payments received — thank you -$50.00",
        "Balance forward $30.00",
        "Monthly recurring charges $45.48",
        "Usage charges $0.07",
        "Subtotal of cdrbill Telecom charges $45.55",
        "Government taxes $3.25",
        "Government-mandated regulatory fees $1,234.56",
        "Current charges $1,283.36",
        "Total amount due by November 21, 2026 $1,313.36",
        "A late payment charge of 1.5% of the undisputed past-due amount applies when it is still unpaid "
        "5 days after the due date.",
        "toll-free at 1-800-555-0100",
        "How to pay",
        "Disputing a charge",
        "Page 1 of 2",
    ):
        assert expected in first, expected
    assert "Taxes, fees and surcharges" in first  # the tax lines in detail
    detail = " ".join(en_pages)  # the itemised usage flows on from the charges in detail
    assert "Itemized usage for +13125550100 — Calls (2 calls)" in detail and "(1 call)" in detail
    assert "+442079460000 United Kingdom - Mobile 0:37 (60) $0.02469" in detail
    assert "Page 2 of 2" in en_pages[1]
    assert all(FAKE_TAX_ID not in text for text in en_pages)
    assert FAKE_TAX_ID not in render_invoice_html(en, TEMPLATES)

    es_text = " ".join(pdf_text(rendered[1].path))
    for expected in (
        "Factura",
        "INV-00000002",
        "Resumen de cargos",
        "Saldo anterior $80.00",
        "Impuestos gubernamentales $3.25",
        "Cargos regulatorios exigidos por el gobierno $1,234.56",
        "Importe total a pagar antes del 21 de noviembre de 2026 $1,313.36",
        "21 de noviembre de 2026",
        "recargo por pago tardío del 1.5 %",
        "1 mes",
        "Detalle de uso de +13125550100 — Llamadas (2 llamadas)",
        "Página 1 de 2",
        "Página 2 de 2",
    ):
        assert expected in es_text, expected
    assert "Total amount due" not in es_text

    big_pages = pdf_text(rendered[2].path)
    assert rendered[2].pages == len(big_pages) == 2  # 60 calls still fit one detail page
    assert "(40 calls)" in big_pages[1] and "(20 calls)" in big_pages[1]
    assert "7:23 (480) $0.7407" in big_pages[1]
    assert "$1,305.88" in big_pages[0]


def test_rerender_is_a_no_op_and_a_change_rerenders(tmp_path: Path) -> None:
    docs = [make_doc("INV-00000010"), make_doc("INV-00000011", "es")]
    first = render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=1)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()}

    again = render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=1)
    assert again == first
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.iterdir()} == before
    # the sidecar: content hash, then page count
    assert (tmp_path / "INV-00000010.html.sha256").read_text().split() == [first[0].sha256_of_html, "2"]

    changed = replace(docs[0], account_name="Ana García López")
    third = render_invoice_pdfs([changed, docs[1]], tmp_path, TEMPLATES, workers=1)
    assert third[0].sha256_of_html != first[0].sha256_of_html
    assert (tmp_path / "INV-00000010.pdf").stat().st_mtime_ns != before["INV-00000010.pdf"][0]
    assert (tmp_path / "INV-00000011.pdf").stat().st_mtime_ns == before["INV-00000011.pdf"][0]
    assert "Ana García López" in pdf_text(tmp_path / "INV-00000010.pdf")[0]


def test_process_pool_matches_sequential(tmp_path: Path) -> None:
    docs = [make_doc(f"INV-0000002{i}", "es" if i % 2 else "en") for i in range(POOL_MIN_DOCUMENTS + 1)]
    pooled = render_invoice_pdfs(docs, tmp_path / "pool", TEMPLATES, workers=2)
    sequential = render_invoice_pdfs(docs, tmp_path / "seq", TEMPLATES, workers=1)
    assert [r.invoice_number for r in pooled] == [d.invoice_number for d in docs]
    assert [(r.pages, r.sha256_of_html) for r in pooled] == [(r.pages, r.sha256_of_html) for r in sequential]
    assert all(r.path.parent == tmp_path / "pool" and r.path.is_file() for r in pooled)


def test_html_escapes_customer_data_and_checks_the_total() -> None:
    html = render_invoice_html(make_doc(name="<script>x</script> & Co"), TEMPLATES)
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt; &amp; Co" in html
    assert "<style" not in html  # the stylesheet is loaded by WeasyPrint, never inlined

    doc = make_doc()
    with pytest.raises(ValueError, match="differs"):
        render_invoice_html(replace(doc, total=doc.total + Decimal("0.01")), TEMPLATES)
    with pytest.raises(ValueError, match="language"):
        render_invoice_html(replace(doc, language="fr"), TEMPLATES)


def test_duplicate_invoice_numbers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="twice"):
        render_invoice_pdfs([make_doc(), make_doc()], tmp_path, TEMPLATES, workers=1)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (7, "0:07"), (60, "1:00"), (125, "2:05"), (3725, "62:05")]
)
def test_duration_is_minutes_and_seconds(seconds: int, shown: str) -> None:
    assert format_duration(seconds) == shown
