"""The invoice HTML as WeasyPrint reads it, made cheaper to lay out: the same tree and the same styles as
``weasyprint.HTML(string=…)`` with less work per invoice (docs/SCALE_LOG.md, "Documents: rendering speed").

Billing rule applied here: an invoice looks exactly as stock WeasyPrint would draw it (tests compare the PDFs
byte for byte); only the work is cut:

* **parsing**: the invoice template is XHTML (well-formed XML whose tree is the one an HTML parser builds:
  void elements closed, ``<tbody>`` written out), so the C XML parser reads it in ~0.5 ms where WeasyPrint's
  pure-Python HTML5 parser takes ~13 ms for a 2-page invoice. HTML that is not well-formed XML (a restyled
  template, a stray ``&nbsp;``) goes through the HTML5 parser as before;
* **user-agent stylesheet**: WeasyPrint's own ``html5_ua.css`` less five footnote and note pseudo-element
  rules and with ``::marker`` kept to list items. Those rules match every element, so WeasyPrint computed
  six pseudo-element styles per element (~3,300 per invoice) that an invoice never draws.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from functools import lru_cache
from typing import Any

import cssselect2
import weasyprint
from weasyprint.html import UA, UA_COUNTER_STYLE

# The rules of WeasyPrint's user-agent stylesheet that an invoice never uses: footnotes and notes (no
# ``float: footnote`` in any template).
_NOTE_RULES = re.compile(
    r"^::(footnote-call|footnote-marker|note-call|note-marker|note-callback) \{[^}]*\}\n", re.M
)
# ``::marker`` matched every element; markers exist only for list items (``li``, ``summary``).
_MARKER_RULE = re.compile(r"^::marker \{", re.M)


@lru_cache(maxsize=1)
def invoice_ua_stylesheet_text() -> str:
    """WeasyPrint's user-agent stylesheet without the pseudo-element rules invoices never draw (rule: same
    look, fewer computed styles). If this WeasyPrint's stylesheet has not exactly those rules, it is used
    unchanged."""
    text, notes = _NOTE_RULES.subn("", UA)
    text, markers = _MARKER_RULE.subn("li::marker, summary::marker {", text)
    if notes != 5 or markers != 1:
        return UA
    return text


@lru_cache(maxsize=1)
def _invoice_ua_stylesheet() -> Any:
    return weasyprint.CSS(string=invoice_ua_stylesheet_text(), counter_style=UA_COUNTER_STYLE.copy())


def _xhtml_root(html: str) -> ElementTree.Element | None:
    """The element tree of ``html`` read as XML, or None when it is not the tree an HTML parser would build
    (not well-formed, namespaced, or a table row outside a row group)."""
    try:
        root = ElementTree.fromstring(html)
    except ElementTree.ParseError:
        return None
    if root.tag != "html" or root.find(".//table/tr") is not None:
        return None
    return root


class InvoiceHTML(weasyprint.HTML):
    """``weasyprint.HTML(string=html, base_url=…)`` for invoices: XHTML parsed as XML, and the user-agent
    stylesheet without the note and footnote rules (module docstring)."""

    def __init__(self, string: str, base_url: str) -> None:
        root = _xhtml_root(string)
        if root is None:
            super().__init__(string=string, base_url=base_url)
            return
        # what weasyprint.HTML.__init__ sets, from the tree read above
        self.base_url = weasyprint._find_base_url(root, base_url)
        self.url_fetcher = weasyprint.URLFetcher()
        self.media_type = "print"
        self.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
        self.etree_element = self.wrapper_element.etree_element

    def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
        if forms:
            return super()._ua_stylesheets(forms)
        return [_invoice_ua_stylesheet()]
