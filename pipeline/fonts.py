"""The invoice fonts: Latin subsets of DejaVu Sans (regular and bold) and DejaVu Sans Mono (the itemised usage's
fixed-width columns, pipeline/call_detail.py), cut once and shipped in
``templates/fonts/`` so that every machine lays invoices out with the same metrics and WeasyPrint subsets a
40 KB font per invoice instead of a 750 KB one (rule: one font, identical on every machine).

Regenerate after changing the character set: ``python -m pipeline.fonts /usr/share/fonts/truetype/dejavu``
(Debian package ``fonts-dejavu-core``). Characters outside the subset still print: the stylesheet falls back
to the system's ``sans-serif`` for them."""

from __future__ import annotations

import argparse
from pathlib import Path

# Basic Latin, Latin-1, Latin Extended-A (Spanish and the other Western languages), general punctuation
# (dashes, quotes, bullet, ellipsis), euro, trademark, minus sign, replacement character.
INVOICE_UNICODES = "U+0020-007E,U+00A0-017F,U+2010-2027,U+2030-203A,U+20AC,U+2122,U+2212,U+FFFD"
# Source file in the DejaVu distribution → subset shipped in templates/fonts/.
INVOICE_FONTS = {
    "DejaVuSans.ttf": "DejaVuSans-Latin.ttf",
    "DejaVuSans-Bold.ttf": "DejaVuSans-Bold-Latin.ttf",
    "DejaVuSansMono.ttf": "DejaVuSansMono-Latin.ttf",
}


def cut_latin_subset(source: Path, target: Path) -> int:
    """Write the Latin subset of ``source`` to ``target`` (no hinting, no OpenType layout tables: the invoice
    needs neither ligatures nor kerning), returning its size in bytes."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.hinting = False
    options.desubroutinize = True
    options.notdef_outline = True
    options.name_IDs = ["*"]
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "FFTM"]
    font = TTFont(str(source))
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=subset.parse_unicodes(INVOICE_UNICODES))
    subsetter.subset(font)
    target.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(target))
    return target.stat().st_size


def main(argv: list[str] | None = None) -> int:
    """Cut the shipped invoice fonts from a DejaVu font folder."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.fonts", description=__doc__.splitlines()[0])
    parser.add_argument("dejavu_dir", type=Path, help="folder with the DejaVu fonts named in INVOICE_FONTS")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "templates" / "fonts"
    )
    args = parser.parse_args(argv)
    for source, target in INVOICE_FONTS.items():
        size = cut_latin_subset(args.dejavu_dir / source, args.out / target)
        print(f"{args.out / target}: {size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
