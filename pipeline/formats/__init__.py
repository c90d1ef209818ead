"""Usage file formats: one module per switch or exchange format, and the registry that names them.

Every parser turns a whole file into one row per physical record (nothing is dropped) with the raw text, the
line number and the source's own fields still as text; `pipeline.normalise` turns those into billable events.
A parser is a module with ``parse(data: bytes, template: str | None) -> ParsedFile``; ``template`` is the
source's per-source layout setting for formats that have one (FreeSWITCH).
"""

from __future__ import annotations

from types import ModuleType

from pipeline.formats import asterisk, broadworks, cgrates_cdr, cucm, emi, freeswitch
from pipeline.formats.common import FileRejected, ParsedFile

FORMATS: dict[str, ModuleType] = {
    "asterisk_csv": asterisk,
    "freeswitch_csv": freeswitch,
    "cucm_cdr": cucm,
    "broadworks_csv": broadworks,
    "emi_duf": emi,
    "cgrates_cdr": cgrates_cdr,
}
TEMPLATES: dict[str, tuple[str, ...]] = {"freeswitch_csv": tuple(freeswitch.TEMPLATES)}


def parse_file(format_name: str, data: bytes, template: str | None = None) -> ParsedFile:
    """Parse a landed file's bytes with the parser its source names; unknown formats are refused."""
    try:
        module = FORMATS[format_name]
    except KeyError:
        raise FileRejected("UNKNOWN_FORMAT", f"no parser for format {format_name!r}") from None
    parsed: ParsedFile = module.parse(data, template)
    return parsed


__all__ = ["FORMATS", "TEMPLATES", "FileRejected", "ParsedFile", "parse_file"]
