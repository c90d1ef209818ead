"""The itemised usage as fixed-width lines (pipeline/call_detail.py): columns aligned, nothing cut, the last
column at the right margin; and in a real PDF, a long destination and a late-usage marker read back whole."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader
from test_documents import TEMPLATES, make_doc, pdf_text

from pipeline.call_detail import GAP, LINE_CHARS, MIN_FLEXIBLE, Column, detail_lines
from pipeline.documents import UsageItem
from pipeline.rendering import render_invoice_pdfs

# printable Latin-1 and plain spaces (a destination's words)
texts = st.text(st.characters(codec="latin-1", exclude_categories=("Cc", "Zs")) | st.just(" "), max_size=30)


def test_columns_line_up_as_wide_as_their_widest_entry():
    columns = [
        Column("When", ["10/1/26 08:00:00", "10/12/26 18:30:05"]),
        Column("Called", ["+13125559876", "+442079460000"]),
        Column("Destination", ["US Domestic", "United Kingdom - Mobile"]),
        Column("Charge", ["$0.012345", "$1.5"], right=True),
    ]
    heading, lines, offset = detail_lines(columns, flexible=2)
    width = (
        len("10/12/26 18:30:05")
        + len("+442079460000")
        + len("United Kingdom - Mobile")
        + len("$0.012345")
        + 6
    )
    assert [len(line) for line in (heading, *lines)] == [width] * 3
    assert lines[0].endswith("  $0.012345") and lines[1].endswith("       $1.5")
    assert offset == len("10/12/26 18:30:05") + len(GAP) + len("+442079460000") + len(GAP)
    assert heading[offset:].startswith("Destination") and lines[1][offset:].startswith(
        "United Kingdom - Mobile"
    )
    assert lines[0].startswith("10/1/26 08:00:00   +13125559876 ")


@given(st.lists(st.tuples(texts, texts, texts), min_size=1, max_size=8), st.integers(40, 90))
def test_nothing_is_cut_however_long_an_entry(rows, wide):
    destinations = [d * 6 for _, d, _ in rows]  # often longer than the flexible column: continued lines
    columns = [
        Column("Called", [a for a, _, _ in rows]),
        Column("Destination", destinations),
        Column("Units", [u for _, _, u in rows], right=True),
        Column("X" * wide, ["" for _ in rows]),
    ]
    heading, lines, offset = detail_lines(columns, flexible=1)
    fixed = [max([len(c.heading), *map(len, c.entries)]) for c in columns if c.heading != "Destination"]
    room = LINE_CHARS - sum(fixed) - len(GAP) * 3
    width = min(max(map(len, ["Destination", *destinations])), max(MIN_FLEXIBLE, room))
    assert offset == fixed[0] + len(GAP)
    if room >= MIN_FLEXIBLE:  # the fixed columns leave room: no line runs past the page's width
        assert all(len(part) <= LINE_CHARS for line in (heading, *lines) for part in line.split("\n"))
    for (called, _, units), destination, line in zip(rows, destinations, lines, strict=True):
        first, *rest = line.split("\n")
        assert first.ljust(len(called)).startswith(called) and units.strip() in first[offset + width :]
        # the destination, spaces aside, is all there: in its column, then continued under itself
        assert all(r[:offset] == " " * offset and len(r) <= offset + width for r in rest)
        shown = [first[offset : offset + width], *(r[offset:] for r in rest)]
        assert "".join("".join(s.split()) for s in shown) == "".join(destination.split())


def test_a_long_destination_and_a_late_call_read_back_whole_from_the_pdf(tmp_path: Path):
    long_name = "Satellite services — Inmarsat Global Xpress maritime broadband, all oceans, zone 3"
    doc = make_doc(n_usage=4)
    late = UsageItem(
        service_number="+13125550100",
        start_local=datetime(2026, 9, 30, 23, 59, 58),
        called_number="+870772001234",
        destination=long_name,
        billsec=61,
        billed_seconds=120,
        charge=Decimal("7.77"),
        late_from_cycle="2026-09",
    )
    extra = late.charge  # the usage line, the total and the amount due carry the late call too
    lines = tuple(
        replace(line, amount=line.amount + extra) if line.section == "usage" else line for line in doc.lines
    )
    assert doc.balance is not None
    doc = replace(
        doc,
        usage_items=(*doc.usage_items, late),
        lines=lines,
        total=doc.total + extra,
        balance=replace(
            doc.balance, current_charges=doc.total + extra, amount_due=doc.balance.amount_due + extra
        ),
    )
    (rendered,) = render_invoice_pdfs([doc], tmp_path, TEMPLATES, workers=1)
    text = " ".join(pdf_text(rendered.path))
    # the destination wraps under itself after the first line's columns; the late marker follows, then the next call
    assert (
        "9/30/26 23:59:58 +870772001234 Satellite services — Inmarsat Global Xpress maritime 1:01 (120) $7.77 "
        "broadband, all oceans, zone 3 usage of September 2026, billed late 10/1/26 19:01:00 +442079460000"
    ) in text
    assert len(PdfReader(rendered.path).pages) == rendered.pages
