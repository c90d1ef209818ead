"""Invoice fonts subset by HarfBuzz (pipeline/font_subsetting.py) where WeasyPrint would use fontTools: the
same glyph ids and outlines, and pages pixel-identical to WeasyPrint's own fontTools subsetting. Real
WeasyPrint, real fonts, pages rasterised by PDFium."""

from __future__ import annotations

import io
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from fontTools.ttLib import TTFont
from test_documents import TEMPLATES, make_doc, pdf_text
from weasyprint.pdf.fonts import Font

from pipeline import rendering
from pipeline.documents import render_invoice_html
from pipeline.font_subsetting import install, subset_font, subsetter
from pipeline.fonts import INVOICE_FONTS
from pipeline.html_document import InvoiceHTML

pytestmark = pytest.mark.skipif(
    not install().startswith("uharfbuzz"), reason=f"WeasyPrint subsets with {subsetter()} here"
)


def _glyph_ids(font: TTFont, text: str) -> set[int]:
    cmap = font.getBestCmap()
    return {font.getGlyphID(cmap[ord(c)]) for c in text if ord(c) in cmap}


@pytest.mark.parametrize("name", sorted(INVOICE_FONTS.values()))
def test_a_subset_keeps_the_glyph_ids_and_outlines_of_the_glyphs_used(name: str) -> None:
    original = (TEMPLATES / "fonts" / name).read_bytes()
    full = TTFont(io.BytesIO(original))
    used = _glyph_ids(full, "Total due $1,234.56 — Ana García Núñez, 10/12/26 12:20:00 (84)")
    cut = TTFont(io.BytesIO(subset_font(original, 0, used, hinting=False, notdef=False)))

    full_glyf, cut_glyf = full["glyf"], cut["glyf"]
    full_order, cut_order = full.getGlyphOrder(), cut.getGlyphOrder()
    # the glyphs drawn, and those their accented forms are composed of (á = a + ´)
    needed = set(used)
    for gid in used:
        glyph = full_glyf[full_order[gid]]
        if glyph.isComposite():
            needed |= {full.getGlyphID(name) for name in glyph.getComponentNames(full_glyf)}
    # ids up to the last glyph used are kept (the text is drawn with them), the empty ones after it dropped
    assert max(used) + 1 <= cut["maxp"].numGlyphs < full["maxp"].numGlyphs
    for gid in range(max(used) + 1):
        glyph = cut_glyf[cut_order[gid]]
        if gid in used:
            reference = full_glyf[full_order[gid]]
            assert glyph.getCoordinates(cut_glyf)[0] == reference.getCoordinates(full_glyf)[0], gid
            assert cut["hmtx"][cut_order[gid]][0] == full["hmtx"][full_order[gid]][0], gid
        elif gid and gid not in needed:
            assert glyph.numberOfContours == 0, f"glyph {gid} not used but kept"
    assert "GSUB" not in cut and "GPOS" not in cut
    assert len(subset_font(original, 0, used, hinting=False, notdef=False)) < len(original) / 2


def _pages(pdf: bytes) -> list[bytes]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [page.render(scale=1.5).to_pil().tobytes() for page in document]
    finally:
        document.close()


def test_pages_are_pixel_identical_to_weasyprints_fonttools_subsetting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a name outside the shipped fonts' Latin subset brings in the system's sans-serif too
    for name in ("Ana García Núñez", "Ελένη Παπαδοπούλου"):
        html = render_invoice_html(make_doc(n_usage=60, name=name), TEMPLATES)
        css, font_config = rendering._prepared(str(TEMPLATES))
        ours = InvoiceHTML(html, base_url=str(TEMPLATES)).render(stylesheets=[css], font_config=font_config)
        with monkeypatch.context() as patch:
            # WeasyPrint's own fallback when it has no libharfbuzz-subset
            patch.setattr(Font, "subset", Font._fonttools_subset)
            stock = InvoiceHTML(html, base_url=str(TEMPLATES)).render(stylesheets=[css], font_config=font_config)
            stock_pdf = stock.write_pdf()
        ours_pdf = ours.write_pdf()
        assert ours_pdf != stock_pdf  # really two subsetters
        assert len(_pages(ours_pdf)) == 2
        assert _pages(ours_pdf) == _pages(stock_pdf), name
        (tmp_path / "ours.pdf").write_bytes(ours_pdf)
        (tmp_path / "stock.pdf").write_bytes(stock_pdf)
        assert pdf_text(tmp_path / "ours.pdf") == pdf_text(tmp_path / "stock.pdf")
        assert abs(len(ours_pdf) - len(stock_pdf)) < 0.1 * len(stock_pdf)
