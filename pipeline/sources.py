"""Usage sources: one TOML file per source, ``reference/sources/<source_id>.toml``, saying which format its
files are in (and the format's template), the time zone of its clock, the region whose numbering plan its
local numbers follow, the landing subfolder it drops files into, and how a complete file is recognised.
Read into the ``sources`` reference frame; a bad file stops the run with an error naming the file and the fix.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

import phonenumbers
import polars as pl

from pipeline.formats import FORMATS, TEMPLATES

# key -> (required, description for errors); every other key is refused (a typo must not pass silently)
KEYS: dict[str, tuple[bool, str]] = {
    "format": (True, f"one of {', '.join(sorted(FORMATS))}"),
    "template": (False, "the format's layout (FreeSWITCH: default or example)"),
    "timezone": (True, "an IANA time zone like America/Chicago"),
    "default_region": (True, "an ISO 3166 region like US (numbering plan of numbers without country code)"),
    "landing": (False, "the landing subfolder (default: the source id)"),
    "marker_suffix": (False, "a file is complete when '<file name><suffix>' exists, e.g. '.done'"),
    "file_sequence": (False, "a regular expression with one group: the file's sequence number in its name"),
    "description": (False, "free text"),
}
COLUMNS = ("source_id", *KEYS)
SCHEMA = dict.fromkeys(COLUMNS, pl.String())


class SourceConfigError(ValueError):
    """A source file that cannot be used; the message names the file and the fix."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}. Fix: {fix}")


def load_sources(folder: Path) -> pl.DataFrame:
    """Read and validate every ``*.toml`` in ``folder`` (the file name is the source id) into one frame,
    one row per source, columns ``COLUMNS`` (absent optional settings are null; ``landing`` defaults to the
    source id). Two sources may not share a landing folder."""
    rows = [_read_source(path) for path in sorted(folder.glob("*.toml"))]
    if not rows:
        raise SourceConfigError(folder, "no source is configured", "add one <source_id>.toml per source")
    landing: dict[str, str] = {}
    for row in rows:
        other = landing.setdefault(row["landing"], row["source_id"])
        if other != row["source_id"]:
            raise SourceConfigError(
                folder / f"{row['source_id']}.toml",
                f"landing folder {row['landing']!r} is already used by source {other!r}",
                "give each source its own landing subfolder",
            )
    return pl.DataFrame(rows, schema=SCHEMA)


def _read_source(path: Path) -> dict[str, Any]:
    source_id = path.stem
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", source_id):
        raise SourceConfigError(path, f"source id {source_id!r} is not a plain name", "rename the file")
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SourceConfigError(path, f"not valid TOML ({error})", "correct the syntax") from None
    for key, value in settings.items():
        if key not in KEYS:
            raise SourceConfigError(path, f"unknown setting {key!r}", f"use only {', '.join(KEYS)}")
        if not isinstance(value, str) or not value.strip():
            raise SourceConfigError(path, f"{key} must be a non-empty text", f'write {key} = "…"')
    for key, (required, meaning) in KEYS.items():
        if required and key not in settings:
            raise SourceConfigError(path, f"{key} is missing", f"add {key} = … ({meaning})")
    _check(path, settings)
    return {"source_id": source_id, **{key: settings.get(key) for key in KEYS}} | {
        "landing": settings.get("landing", source_id)
    }


def _check(path: Path, settings: dict[str, str]) -> None:
    """Each setting's value against what it can be."""
    fmt = settings["format"]
    if fmt not in FORMATS:
        raise SourceConfigError(path, f"format {fmt!r} is unknown", f"use {KEYS['format'][1]}")
    template = settings.get("template")
    allowed = TEMPLATES.get(fmt, ())
    if template is not None and template not in allowed:
        fix = f"use one of {', '.join(allowed)}" if allowed else f"remove template: {fmt} has none"
        raise SourceConfigError(path, f"template {template!r} is not a layout of {fmt}", fix)
    if settings["timezone"] not in zoneinfo.available_timezones():
        raise SourceConfigError(path, f"timezone {settings['timezone']!r} is unknown", KEYS["timezone"][1])
    if settings["default_region"] not in phonenumbers.SUPPORTED_REGIONS:
        raise SourceConfigError(
            path, f"default_region {settings['default_region']!r} is unknown", KEYS["default_region"][1]
        )
    landing = settings.get("landing")
    if landing is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", landing):
        raise SourceConfigError(path, f"landing {landing!r} is not a plain folder name", "use a folder name")
    pattern = settings.get("file_sequence")
    if pattern is not None:
        try:
            groups = re.compile(pattern).groups
        except re.error as error:
            raise SourceConfigError(
                path, f"file_sequence is not a regular expression ({error})", "fix it"
            ) from None
        if groups != 1:
            raise SourceConfigError(
                path, "file_sequence needs exactly one (group)", "capture the number once"
            )
