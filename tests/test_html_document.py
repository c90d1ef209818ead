"""The invoice HTML as the renderer reads it (pipeline/html_document.py): the XML parser builds the tree the
HTML5 parser builds, the trimmed user-agent stylesheet drops only rules invoices never use, and the PDF is
the one stock WeasyPrint draws, byte for byte. Real WeasyPrint, real templates."""

from __future__ import annotations

from dataclasses import replace
from xml.etree.ElementTree import Element

import pytest
import tinyhtml5
import weasyprint
from test_documents import TEMPLATES, make_doc
from weasyprint.html import UA
from weasyprint.text.fonts import FontConfiguration

from pipeline.documents import INVOICE_CSS, InvoiceDocument, render_invoice_html
from pipeline.html_document import InvoiceHTML, _xhtml_root, invoice_ua_stylesheet_text

Tree = tuple[str, dict[str, str], str, str, list["Tree"]]


def tree(element: Element) -> Tree:
    """Tag, attributes, text, tail and children; whitespace-only text counts as none (it draws nothing
    between blocks and table parts, and the HTML5 parser drops some of it around <head>)."""

    def text(value: str | None) -> str:
        return value if value and value.strip() else ""

    return (
        element.tag,
        dict(element.attrib),
        text(element.text),
        text(element.tail),
        [tree(c) for c in element],
    )


def invoices() -> list[InvoiceDocument]:
    """Every shape of the template: both languages, itemised or not, with and without a balance block,
    customer data that needs escaping."""
    full = make_doc("INV-00000401", n_usage=60)
    return [
        full,
        make_doc("INV-00000402", "es", n_usage=60),
        replace(full, invoice_number="INV-00000403", itemisation="summary", balance=None),
        replace(full, invoice_number="INV-00000404", account_name='O\'Brien & <Sons> "Ltd"', usage_items=()),
    ]


@pytest.mark.parametrize("doc", invoices(), ids=lambda d: d.invoice_number)
def test_the_xml_parser_builds_the_html5_parsers_tree(doc: InvoiceDocument) -> None:
    html = render_invoice_html(doc, TEMPLATES)
    root = _xhtml_root(html)
    assert root is not None, "the invoice template is no longer XHTML: it is parsed the slow way"
    assert tree(root) == tree(tinyhtml5.parse(html, namespace_html_elements=False))


def test_html_that_is_not_xml_is_parsed_as_html5() -> None:
    """A restyled template with HTML-only syntax still renders, through WeasyPrint's own parser."""
    assert _xhtml_root("<!DOCTYPE html><html><body><p>Total&nbsp;due<br></body></html>") is None
    assert _xhtml_root("<html><body><table><tr><td>1</td></tr></table></body></html>") is None  # no <tbody>
    document = InvoiceHTML(
        "<html><body><p>Total&nbsp;due<br>12.00</p></body></html>", str(TEMPLATES)
    ).render()
    assert len(document.pages) == 1


def test_the_user_agent_stylesheet_drops_only_note_rules() -> None:
    """Five note and footnote pseudo-element rules out, ::marker kept to list items; nothing else changed."""
    ours, stock = invoice_ua_stylesheet_text().splitlines(), UA.splitlines()
    removed = [line for line in stock if line not in ours]
    added = [line for line in ours if line not in stock]
    assert sorted(line.split(" {")[0] for line in removed) == [
        "::footnote-call", "::footnote-marker", "::marker", "::note-call", "::note-callback", "::note-marker",
    ]  # fmt: skip
    assert added == [
        "li::marker, summary::marker { font-variant-numeric: tabular-nums; white-space: pre; text-transform: none }"
    ]


@pytest.mark.parametrize("doc", invoices()[:3], ids=lambda d: d.invoice_number)
def test_the_pdf_is_stock_weasyprints_byte_for_byte(doc: InvoiceDocument) -> None:
    """Same PDF as ``weasyprint.HTML(string=…)``; uncompressed and with whole fonts, because font subsets
    get a fresh name per render."""
    html = render_invoice_html(doc, TEMPLATES)
    options = {"uncompressed_pdf": True, "full_fonts": True}

    def pdf(html_class: type[weasyprint.HTML], html_kwargs: dict[str, str]) -> bytes:
        fonts = FontConfiguration()
        css = weasyprint.CSS(filename=str(TEMPLATES / INVOICE_CSS), font_config=fonts)
        result = html_class(**html_kwargs).write_pdf(stylesheets=[css], font_config=fonts, **options)
        assert result is not None
        return result

    ours = pdf(InvoiceHTML, {"string": html, "base_url": str(TEMPLATES)})
    stock = pdf(weasyprint.HTML, {"string": html, "base_url": str(TEMPLATES)})
    assert ours == stock
