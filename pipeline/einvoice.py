"""E-invoices: an EN 16931 (Factur-X / ZUGFeRD, UN/CEFACT CII) XML of the invoice, embedded in a PDF/A-3b.

Billing rules applied here:

* the XML carries the invoice's own rounded lines, nothing recomputed: every carrier charge (recurring,
  one-time, usage, discount, carrier fee, adjustment, late fee) is one CII line item with its amount; the
  tax and government fee lines are the header tax breakdown, one ``ApplicableTradeTax`` per rate, whose
  calculated amount is the sum of the invoice's tax lines at that rate and whose basis is the sum of their
  taxable bases;
* line total + tax total = grand total = the invoice total (= the sum of its lines); the amount payable is
  the grand total of this invoice (EN 16931 has no balance forward: the PDF shows it, the XML does not);
* a negative line (discount, credit) is a quantity of −1 at a positive price (EN 16931: prices are never
  negative);
* US taxes are not VAT, but EN 16931 knows only VAT categories: they are coded ``VAT``/``S`` with their rate
  (the PDF names each tax), and an invoice without tax lines is coded ``O`` (not subject to VAT);
* no tax id or SSN of the customer is written (the buyer is identified by name, address and account number);
* the PDF is laid out again by WeasyPrint as PDF/A-3b and the XML embedded by the ``factur-x`` library, which
  validates it against the EN 16931 schema first; an e-invoice whose embedded XML is already the current one
  is not rewritten;
* an e-invoice is reproducible: its PDF dates (Info, XMP, the embedded XML's) are the invoice's issue date at
  00:00 UTC, not the time it was written, and its fonts are subset by HarfBuzz (no timestamp), so writing it
  again gives the same bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from lxml import etree

from pipeline import font_subsetting
from pipeline.documents import INVOICE_CSS, InvoiceDocument, render_invoice_html
from pipeline.durable import write_atomically
from pipeline.masking import redact_tax_ids
from pipeline.rendering import RenderedDocument
from pipeline.settings import Settings

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
EN16931_GUIDELINE = "urn:cen.eu:en16931:2017"
COMMERCIAL_INVOICE = "380"  # UNTDID 1001
UNIT_ONE = "C62"  # UN/ECE Rec 20: one (piece)
_CENT = Decimal("0.01")
_CLOCK = threading.Lock()


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    prefix, name = tag.split(":")
    node = etree.SubElement(parent, f"{{{NS[prefix]}}}{name}", attrs)
    if text is not None:
        node.text = text
    return node


def _amount(value: Decimal) -> str:
    return f"{value.quantize(_CENT):f}"


def _date(parent: etree._Element, tag: str, value: object) -> None:
    holder = _el(parent, tag)
    _el(holder, "udt:DateTimeString", f"{value:%Y%m%d}", format="102")


def _address(party: etree._Element, line1: str, city: str, postcode: str, state: str) -> None:
    address = _el(party, "ram:PostalTradeAddress")
    _el(address, "ram:PostcodeCode", postcode)
    _el(address, "ram:LineOne", line1)
    _el(address, "ram:CityName", city)
    _el(address, "ram:CountryID", "US")
    _el(address, "ram:CountrySubDivisionName", state)


def tax_breakdown(doc: InvoiceDocument) -> list[tuple[Decimal | None, Decimal, Decimal | None]]:
    """The invoice's tax lines per rate: (rate in percent or None, sum of amounts, sum of taxable bases or
    None when a line has none), ordered by rate (rule: tax totals per rate = the tax lines' sums)."""
    groups: dict[Decimal | None, list[tuple[Decimal, Decimal | None]]] = {}
    for line in doc.lines:
        if line.section == "taxes":
            groups.setdefault(line.rate, []).append((line.amount, line.taxable_base))
    result = []
    for rate in sorted(groups, key=lambda r: (r is None, r or Decimal(0))):
        amounts = groups[rate]
        bases = [b for _, b in amounts]
        basis = (
            None if any(b is None for b in bases) else sum((b for b in bases if b is not None), Decimal(0))
        )
        result.append((rate, sum((a for a, _ in amounts), Decimal(0)), basis))
    return result


def cii_xml(doc: InvoiceDocument, settings: Settings) -> bytes:
    """The EN 16931 CII XML of one invoice (rule: lines and totals are the invoice's own, see module doc)."""
    net_lines = [line for line in doc.lines if line.section != "taxes"]
    line_total = sum((line.amount for line in net_lines), Decimal(0))
    taxes = tax_breakdown(doc)
    tax_total = sum((amount for _, amount, _ in taxes), Decimal(0))
    if line_total + tax_total != doc.total:
        raise ValueError(
            f"{doc.invoice_number}: lines {line_total} + taxes {tax_total} differ from {doc.total}"
        )
    category = "S" if taxes else "O"

    root = etree.Element(f"{{{NS['rsm']}}}CrossIndustryInvoice", nsmap=NS)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931_GUIDELINE)
    header = _el(root, "rsm:ExchangedDocument")
    _el(header, "ram:ID", doc.invoice_number)
    _el(header, "ram:TypeCode", COMMERCIAL_INVOICE)
    _date(header, "ram:IssueDateTime", doc.issue_date)

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    for n, line in enumerate(net_lines, start=1):
        item = _el(transaction, "ram:IncludedSupplyChainTradeLineItem")
        _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(n))
        product = _el(item, "ram:SpecifiedTradeProduct")
        name = redact_tax_ids(line.description)
        _el(product, "ram:Name", f"{line.service_number} {name}" if line.service_number else name)
        agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
        _el(_el(agreement, "ram:NetPriceProductTradePrice"), "ram:ChargeAmount", _amount(abs(line.amount)))
        delivery = _el(item, "ram:SpecifiedLineTradeDelivery")
        _el(delivery, "ram:BilledQuantity", "-1" if line.amount < 0 else "1", unitCode=UNIT_ONE)
        settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
        line_tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(line_tax, "ram:TypeCode", "VAT")
        _el(line_tax, "ram:CategoryCode", category)
        summation = _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        _el(summation, "ram:LineTotalAmount", _amount(line.amount))

    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    _el(agreement, "ram:BuyerReference", doc.account_id)
    seller = _el(agreement, "ram:SellerTradeParty")
    _el(seller, "ram:Name", settings.carrier_name)
    _address(seller, settings.carrier_address_line1, settings.carrier_city, settings.carrier_postcode,
             settings.carrier_state)  # fmt: skip
    buyer = _el(agreement, "ram:BuyerTradeParty")
    _el(buyer, "ram:Name", redact_tax_ids(doc.account_name))
    city_line = doc.address_lines[-1] if len(doc.address_lines) > 1 else ""
    city, _, rest = city_line.partition(", ")
    state, _, postcode = rest.partition(" ")
    _address(buyer, redact_tax_ids(doc.address_lines[0]), city, postcode, state)
    _el(transaction, "ram:ApplicableHeaderTradeDelivery")

    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    _el(settlement, "ram:PaymentReference", doc.invoice_number)
    _el(settlement, "ram:InvoiceCurrencyCode", doc.currency)
    if taxes:
        for rate, amount, basis in taxes:
            tax = _el(settlement, "ram:ApplicableTradeTax")
            _el(tax, "ram:CalculatedAmount", _amount(amount))
            _el(tax, "ram:TypeCode", "VAT")
            if basis is not None:
                _el(tax, "ram:BasisAmount", _amount(basis))
            _el(tax, "ram:CategoryCode", "S")
            if rate is not None:
                _el(tax, "ram:RateApplicablePercent", f"{rate.normalize():f}")
    else:
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:CalculatedAmount", _amount(Decimal(0)))
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:ExemptionReason", "Not subject to VAT")
        _el(tax, "ram:BasisAmount", _amount(line_total))
        _el(tax, "ram:CategoryCode", "O")
    period = _el(settlement, "ram:BillingSpecifiedPeriod")
    _date(period, "ram:StartDateTime", doc.period_start)
    _date(period, "ram:EndDateTime", doc.period_end)
    terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
    _date(terms, "ram:DueDateDateTime", doc.due_date)
    totals = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(totals, "ram:LineTotalAmount", _amount(line_total))
    _el(totals, "ram:TaxBasisTotalAmount", _amount(line_total))
    _el(totals, "ram:TaxTotalAmount", _amount(tax_total), currencyID=doc.currency)
    _el(totals, "ram:GrandTotalAmount", _amount(doc.total))
    _el(totals, "ram:DuePayableAmount", _amount(doc.total))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _pdfa_bytes(doc: InvoiceDocument, templates_dir: Path) -> bytes:
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    font_subsetting.install()  # HarfBuzz, as the invoice PDFs: fontTools would stamp the time into each font
    html = render_invoice_html(doc, templates_dir)
    fonts = FontConfiguration()  # the stylesheet's @font-face (the shipped invoice font), as in rendering.py
    css = weasyprint.CSS(filename=str(Path(templates_dir) / INVOICE_CSS), font_config=fonts)
    pdf = weasyprint.HTML(string=html, base_url=str(templates_dir)).write_pdf(
        stylesheets=[css], font_config=fonts, pdf_variant="pdf/a-3b"
    )
    assert pdf is not None
    return pdf


@contextmanager
def _facturx_clock(day: date) -> Iterator[None]:
    """Within the block, the ``factur-x`` library's clock reads ``day`` at 00:00 UTC (rule: an e-invoice is dated
    by its issue date; the library has no parameter for the dates it stamps from ``datetime.now``)."""
    import facturx.facturx as library

    moment = datetime.combine(day, time(), tzinfo=UTC)

    class IssueDateClock(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return moment if tz is None else moment.astimezone(tz)

    with _CLOCK:
        wall_clock = library.datetime
        library.datetime = IssueDateClock  # type: ignore[misc]
        try:
            yield
        finally:
            library.datetime = wall_clock  # type: ignore[misc]


def embedded_xml(pdf_path: Path) -> bytes | None:
    """The Factur-X XML embedded in a PDF, or None when it carries none."""
    from facturx import get_facturx_xml_from_pdf

    try:
        _, xml = get_facturx_xml_from_pdf(Path(pdf_path).read_bytes(), check_xsd=False)
    except Exception:  # not a PDF facturx can read: no e-invoice in it
        return None
    return xml or None


def write_einvoice(doc: InvoiceDocument, pdf_path: Path, templates_dir: Path, settings: Settings) -> bool:
    """Make ``pdf_path`` the invoice's e-invoice: PDF/A-3b with its EN 16931 XML embedded (validated against
    the schema by ``factur-x``). Returns False when the PDF already carries this XML (nothing written)."""
    from facturx import generate_from_binary

    xml = cii_xml(doc, settings)
    if embedded_xml(pdf_path) == xml:
        return False
    pdfa = _pdfa_bytes(doc, templates_dir)
    with _facturx_clock(doc.issue_date):
        pdf = generate_from_binary(
            pdfa,
            xml,
            flavor="factur-x",
            level="en16931",
            check_xsd=True,
            pdf_metadata={
                "author": settings.carrier_name,
                "keywords": "Factur-X, invoice",
                "title": f"{settings.carrier_name} invoice {doc.invoice_number}",
                "subject": f"Invoice {doc.invoice_number} for the period {doc.period_start} to {doc.period_end}",
            },
            lang=doc.language,
        )
    write_atomically(Path(pdf_path), pdf)
    return True


def write_einvoices(
    docs: Sequence[InvoiceDocument],
    rendered: Sequence[RenderedDocument],
    templates_dir: Path,
    settings: Settings,
) -> int:
    """Turn the PDFs of the bills whose account asks for an e-invoice into Factur-X e-invoices; returns how
    many were written (an unchanged one is not rewritten)."""
    by_number = {item.invoice_number: item for item in rendered}
    return sum(
        write_einvoice(doc, by_number[doc.invoice_number].path, templates_dir, settings)
        for doc in docs
        if doc.einvoice
    )
