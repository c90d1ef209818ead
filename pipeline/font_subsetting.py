"""Font subsetting for the invoice PDFs through HarfBuzz's subsetter, from the ``uharfbuzz`` wheel, on machines
whose system has no ``libharfbuzz-subset`` (this one, and any without the Debian package).

WeasyPrint embeds in each PDF only the glyphs it uses. It subsets with HarfBuzz when it finds the system's
``libharfbuzz-subset``; without it, it falls back to fontTools — ~9 ms of pure Python per font per invoice,
about a tenth of an invoice's CPU (docs/SCALE_LOG.md, "Documents"), with a deprecation warning logged each
time.
``install`` makes WeasyPrint's ``Font.subset`` do what its own HarfBuzz path does (the same two passes, flags
and dropped tables: ``weasyprint/pdf/fonts.py``, ``Font._harfbuzz_subset``) through ``uharfbuzz``, in this
process only, and only where WeasyPrint would otherwise use fontTools.

Billing rule applied here: an invoice looks the same whichever subsetter embedded its fonts — the same glyph
ids, the same text layer, pixel-identical pages (tests/test_font_subsetting.py); only the CPU differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# the tables WeasyPrint's HarfBuzz path drops besides HarfBuzz's own defaults
_DROP_TABLES = ("BASE", "DSIG", "EBDT", "EBLC", "EBSC", "GPOS", "GSUB", "JSTF", "LTSH", "PCLT", "SVG ")
_STOCK: dict[str, Any] = {}


def _tag(name: str) -> int:
    return int.from_bytes(name.encode("latin-1"), "big")


def _weasyprint_subsets_with_harfbuzz() -> bool:
    from weasyprint.pdf import fonts

    return fonts.harfbuzz_subset is not None and bool(fonts.harfbuzz.hb_version_atleast(4, 1, 0))


@lru_cache(maxsize=1)
def subsetter() -> str:
    """Which subsetter embeds the invoice fonts once ``install`` has run: ``harfbuzz`` (the system's, through
    WeasyPrint), ``uharfbuzz <version>``, or ``fonttools`` (part of the renderer's fingerprint)."""
    if _weasyprint_subsets_with_harfbuzz():
        return "harfbuzz"
    try:
        import uharfbuzz
        from weasyprint.pdf.fonts import Font
    except ImportError:
        return "fonttools"
    if not callable(getattr(Font, "subset", None)):
        return "fonttools"
    return f"uharfbuzz {uharfbuzz.__version__}"


def subset_font(content: bytes, index: int, glyph_ids: Iterable[int], hinting: bool, notdef: bool) -> bytes:
    """A font file cut down to ``glyph_ids`` as WeasyPrint's HarfBuzz path cuts it (rule: glyph ids kept, so
    the text drawn with them needs no change): first every other glyph emptied (ids retained), then the
    empty glyphs after the last one used dropped. Raises RuntimeError when HarfBuzz cannot subset it."""
    import uharfbuzz as hb

    kept = sorted(glyph_ids)
    flags = hb.SubsetFlags
    request = hb.SubsetInput()
    request.glyph_set.update(kept)
    request.drop_table_tag_set.update(_tag(name) for name in _DROP_TABLES)
    outline = flags.NOTDEF_OUTLINE if notdef else flags.DEFAULT
    request.flags = flags.RETAIN_GIDS | flags.PASSTHROUGH_UNRECOGNIZED | flags.DESUBROUTINIZE | outline
    face = hb.subset(hb.Face(hb.Blob(content), index), request)
    request.glyph_set.update(range(kept[-1] + 1))
    no_hinting = flags.DEFAULT if hinting else flags.NO_HINTING
    request.flags = flags.PASSTHROUGH_UNRECOGNIZED | flags.DESUBROUTINIZE | no_hinting | outline
    data: bytes = hb.subset(face, request).blob.data
    if not data:
        raise RuntimeError("HarfBuzz returned an empty font")
    return data


def _subset(self: Any, to_unicode: dict[int, str], hinting: bool) -> None:
    """``weasyprint.pdf.fonts.Font.subset`` through ``subset_font``; WeasyPrint's own way if HarfBuzz fails."""
    if not to_unicode:
        return
    try:
        self.file_content = subset_font(self.file_content, self.index, to_unicode, hinting, bool(self.missing))
    except RuntimeError:
        _STOCK["subset"](self, to_unicode, hinting)


def install() -> str:
    """Make WeasyPrint subset fonts with ``uharfbuzz`` in this process where it would use fontTools (rule: same
    PDF pages, less CPU); returns ``subsetter()``. Idempotent."""
    name = subsetter()
    if name.startswith("uharfbuzz "):
        from weasyprint.pdf.fonts import Font

        _STOCK.setdefault("subset", Font.subset)
        Font.subset = _subset
    return name
