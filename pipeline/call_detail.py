"""The itemised usage of an invoice as fixed-width lines, one text line per call in the invoice's monospaced font.

Why lines and not a table of cells: WeasyPrint lays out and draws every cell as its own boxes (~7 per call, ~3.6 ms
of CPU per call on the bench host), one line per call costs ~1.3 ms, and the itemised calls are the bulk of every
bill's pages (docs/SCALE_LOG.md, "Documents: the itemised usage as lines"). Rule applied: nothing is cut — every
column is as wide as its widest entry in its table (heading included), except the one flexible column (the
destination): when the line would be longer than the page's width it takes what is left, and a longer entry
continues on the next line, under itself. Columns are not padded out to the margin: every space is a glyph that
WeasyPrint draws one by one (~15 % of a page's CPU when the lines were padded to the full width)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

# Characters of DejaVu Sans Mono at the itemised usage's 7 pt (advance 0.602 em = 4.21 pt) in the 532.6 pt text
# width of a Letter page with invoice.css's margins, less the cell's 3 mm of padding: 524.1 pt.
LINE_CHARS = 124
GAP = "  "  # between two columns
MIN_FLEXIBLE = 12  # the flexible column is never narrower than this, even if the line then runs long


@dataclass(frozen=True)
class Column:
    """One column of the detail: its heading, its entries (one per call), right-aligned or not."""

    heading: str
    entries: list[str]
    right: bool = False


def detail_lines(columns: list[Column], flexible: int) -> tuple[str, list[str], int]:
    """(heading line, one line per call, offset of the flexible column) for the columns in order. A line that
    continues (a long flexible entry) holds a newline and continues at the flexible column's offset."""
    widths = [max([len(c.heading), *map(len, c.entries)]) for c in columns]
    fixed = sum(w for i, w in enumerate(widths) if i != flexible) + len(GAP) * (len(columns) - 1)
    widths[flexible] = min(widths[flexible], max(MIN_FLEXIBLE, LINE_CHARS - fixed))
    offset = sum(widths[:flexible]) + len(GAP) * flexible

    def line(cells: list[str]) -> str:
        pieces = textwrap.wrap(cells[flexible], widths[flexible], break_on_hyphens=False) or [""]
        shown = [pieces[0] if i == flexible else cell for i, cell in enumerate(cells)]
        first = GAP.join(
            text.rjust(width) if column.right else text.ljust(width)
            for text, width, column in zip(shown, widths, columns, strict=True)
        ).rstrip()
        return "\n".join([first, *(" " * offset + piece for piece in pieces[1:])])

    heading = line([c.heading for c in columns])
    rows = [line(list(cells)) for cells in zip(*(c.entries for c in columns), strict=True)]
    return heading, rows, offset
