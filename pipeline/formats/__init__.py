"""Usage file formats: one module per switch or exchange format, and the registry that names them.

Every parser turns a whole file into one row per physical record (nothing is dropped) with the raw text, the
line number and the source's own fields still as text; `pipeline.normalise` turns those into billable events.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from pipeline.formats import asterisk, emi
from pipeline.formats.common import FileRejected, ParsedFile

Parser = Callable[[bytes], ParsedFile]

PARSERS: dict[str, Parser] = {
    "asterisk_csv": asterisk.parse,
    "emi_duf": emi.parse,
}


def parse_file(format_name: str, data: bytes) -> ParsedFile:
    """Parse a landed file's bytes with the parser its source names; unknown formats are refused."""
    try:
        parser = PARSERS[format_name]
    except KeyError:
        raise FileRejected("UNKNOWN_FORMAT", f"no parser for format {format_name!r}") from None
    return parser(data)


__all__ = ["PARSERS", "FileRejected", "ParsedFile", "parse_file", "pl"]
