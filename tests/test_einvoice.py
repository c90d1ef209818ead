"""E-invoices: the EN 16931 CII XML validates against the Factur-X schema, carries exactly the invoice's lines
and tax totals per rate, and is embedded in a PDF/A-3b that still shows the invoice."""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from facturx import get_facturx_xml_from_pdf, xml_check_xsd
from lxml import etree
from pypdf import PdfReader
from test_documents import TEMPLATES, make_doc, pdf_text

from pipeline.documents import InvoiceLine
from pipeline.einvoice import NS, cii_xml, tax_breakdown, write_einvoice
from pipeline.rendering import render_invoice_pdfs
from pipeline.settings import Settings


def _doc_with_discount():
    doc = make_doc("INV-00000061", name="Hudson & Pike 12-3456789 LLC")
    discount = InvoiceLine("discounts", None, "Loyalty discount 5%", None, None, Decimal("-2.45"),
                           category="discount")  # fmt: skip
    total = doc.total - Decimal("2.45")
    assert doc.balance is not None
    balance = replace(doc.balance, current_charges=total, amount_due=total + doc.balance.balance_forward)
    return replace(doc, lines=doc.lines + (discount,), total=total, balance=balance, einvoice=True)


def _amounts(root: etree._Element, path: str) -> list[Decimal]:
    return [Decimal(node.text) for node in root.xpath(path, namespaces=NS)]


def test_cii_xml_validates_and_equals_the_invoice_lines() -> None:
    doc = _doc_with_discount()
    xml = cii_xml(doc, Settings())
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931") is True
    root = etree.fromstring(xml)

    # net lines: 15.48 + 30.00 + 0.07 (usage) − 2.45 (discount) = 43.10; taxes 3.25 + 1,234.56 = 1,237.81;
    # grand total 43.10 + 1,237.81 = 1,280.91 = the invoice total (Σ of all its lines)
    line_totals = _amounts(root, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")
    assert line_totals == [Decimal("15.48"), Decimal("30.00"), Decimal("0.07"), Decimal("-2.45")]
    summation = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
    assert _amounts(root, summation + "LineTotalAmount") == [Decimal("43.10")] == [sum(line_totals)]
    assert _amounts(root, summation + "TaxTotalAmount") == [Decimal("1237.81")]
    assert _amounts(root, summation + "GrandTotalAmount") == [doc.total] == [Decimal("1280.91")]
    assert _amounts(root, summation + "DuePayableAmount") == [doc.total]
    assert sum(line_totals) + Decimal("1237.81") == sum(line.amount for line in doc.lines)

    # tax totals per rate: 7 % → 3.25 on 46.43; 36.6 % → 1,234.56 on 3,373.11
    header_tax = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:"
    assert _amounts(root, header_tax + "RateApplicablePercent") == [Decimal("7"), Decimal("36.6")]
    assert _amounts(root, header_tax + "CalculatedAmount") == [Decimal("3.25"), Decimal("1234.56")]
    assert _amounts(root, header_tax + "BasisAmount") == [Decimal("46.43"), Decimal("3373.11")]
    assert tax_breakdown(doc) == [
        (Decimal("7"), Decimal("3.25"), Decimal("46.43")),
        (Decimal("36.6"), Decimal("1234.56"), Decimal("3373.11")),
    ]
    # a negative line is −1 at a positive price; the buyer's tax id never reaches the XML
    quantities = root.xpath("//ram:BilledQuantity/text()", namespaces=NS)
    prices = _amounts(root, "//ram:NetPriceProductTradePrice/ram:ChargeAmount")
    assert quantities == ["1", "1", "1", "-1"] and prices[-1] == Decimal("2.45")
    assert b"12-3456789" not in xml and b"Hudson &amp; Pike [redacted] LLC" in xml
    assert root.xpath("string(//rsm:ExchangedDocument/ram:ID)", namespaces=NS) == "INV-00000061"


def test_an_invoice_without_taxes_is_not_subject_to_vat() -> None:
    doc = make_doc("INV-00000062")
    lines = tuple(line for line in doc.lines if line.section != "taxes")
    total = sum(line.amount for line in lines)
    doc = replace(doc, lines=lines, total=total, balance=None)
    root = etree.fromstring(cii_xml(doc, Settings()))
    assert root.xpath("//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode/text()",
                      namespaces=NS) == ["O"]  # fmt: skip
    assert xml_check_xsd(etree.tostring(root), flavor="factur-x", level="en16931") is True


def test_einvoice_is_a_pdfa3_with_the_xml_embedded(tmp_path: Path) -> None:
    doc = _doc_with_discount()
    [rendered] = render_invoice_pdfs([doc], tmp_path, TEMPLATES, workers=1)
    assert write_einvoice(doc, rendered.path, TEMPLATES, Settings()) is True

    pdf = rendered.path.read_bytes()
    filename, xml = get_facturx_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml" and xml == cii_xml(doc, Settings())
    xmp = PdfReader(rendered.path).trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b"pdfaid:part>3<" in xmp or b'pdfaid:part="3"' in xmp  # PDF/A-3 (XMP identification) …
    assert b"pdfaid:conformance>B<" in xmp or b'pdfaid:conformance="B"' in xmp  # … level B
    assert b"urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#" in xmp and b"EN 16931" in xmp
    assert b"/OutputIntents" in pdf  # WeasyPrint's PDF/A variant: the sRGB output intent
    assert "Total amount due by November 21, 2026 $1,310.91" in pdf_text(rendered.path)[0]

    before = rendered.path.stat().st_mtime_ns
    assert write_einvoice(doc, rendered.path, TEMPLATES, Settings()) is False  # already the current XML
    assert rendered.path.stat().st_mtime_ns == before


def test_an_einvoice_written_again_later_has_the_same_bytes(tmp_path: Path) -> None:
    doc = _doc_with_discount()
    pdfs = []
    for run in ("first", "second"):
        [rendered] = render_invoice_pdfs([doc], tmp_path / run, TEMPLATES, workers=1)
        assert write_einvoice(doc, rendered.path, TEMPLATES, Settings()) is True
        pdfs.append(rendered.path.read_bytes())
        time.sleep(1.1)  # the wall clock's seconds move on: a date stamped from it would differ
    assert pdfs[0] == pdfs[1]

    reader = PdfReader(tmp_path / "second" / rendered.path.name)
    stamp = doc.issue_date.strftime("%Y%m%d000000")
    assert reader.metadata is not None and reader.metadata["/CreationDate"] == f"D:{stamp}+00'00'"
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    assert f"<xmp:CreateDate>{doc.issue_date.isoformat()}T00:00:00+00:00</xmp:CreateDate>".encode() in xmp
