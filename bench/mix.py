"""Format mixes of a bench month: part of the generated Asterisk traffic delivered in the other switch formats
the pipeline reads (FreeSWITCH ``mod_cdr_csv``, Cisco CUCM CDR, BroadWorks accounting CSV), each from a source
of its own, so that intake reads the realistic mix of parsers while the month rates to the same money.

Every Asterisk line becomes exactly one line of its target format, as that format's parser
(``pipeline/formats/``) reads it: the same calling and called numbers, the same instant (FreeSWITCH: the same
local wall-clock text; CUCM and BroadWorks: the UTC instant that ``normalise.local_to_utc`` makes of it), the same
billed seconds and disposition, the Asterisk ``uniqueid`` carried into the format's id fields. A line the
Asterisk parser or ``normalise`` refuses is written so that the target refuses it for the same reason
(UNPARSEABLE: too few fields; BAD_DURATION: an unreadable billed-seconds field; BAD_TIMESTAMP: no readable time).
A few answered calls are also delivered a second time by another switch (other ids, same call content), as
many as bring the month's duplicates to ~1 %: mediation's content-key rule must catch them as duplicates.

What the formats cannot carry (the month's money is the same; the outcome's reason may differ):

* CUCM and BroadWorks have no "failed" disposition: an Asterisk FAILED or CONGESTION call is discarded as
  NOT_ANSWERED there, not FAILED.
* BroadWorks bills release − answer of an answered call only: an unanswered line's billed seconds are 0 whatever
  the Asterisk field said (an unreadable one on an unanswered line is no longer BAD_DURATION).
* BroadWorks names a call by its user and start time: two records of one call in one BroadWorks source are merged
  as legs (LEG_MERGED), not flagged as duplicates, and two calls of one user starting in the same second would be
  merged too (none in a generated month's BroadWorks share so far; the tests check the money). So the second
  switch of a copied call is FreeSWITCH or CUCM, never BroadWorks (``COPY_FORMATS``).
* A time that CUCM or BroadWorks cannot express (unreadable, or inside a DST spring-forward gap) is written empty:
  still BAD_TIMESTAMP, but the raw text no longer shows the original value.
* The generator's re-delivered Asterisk lines (the same ``uniqueid`` in both switch-chi files) are routed so that
  at most one of the two copies leaves Asterisk (``Mix.slots``): two copies with the same id in one FreeSWITCH,
  CUCM or BroadWorks source would share a call id, and mediation would merge them as legs (LEG_MERGED) instead of
  flagging a duplicate (DUPLICATE_SOURCE_ID). Across two sources they are DUPLICATE_CONTENT.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

ASTERISK = "asterisk_csv"
FREESWITCH = "freeswitch_csv"
CUCM = "cucm_cdr"
BROADWORKS = "broadworks_csv"
# the short name of each target format: the new source is "<asterisk source>-<short name>"
SHORT_NAMES = {FREESWITCH: "freeswitch", CUCM: "cucm", BROADWORKS: "broadworks"}


@dataclass(frozen=True)
class Mix:
    """A format mix: each Asterisk line goes to ``slots[(sequence + file index) % len(slots)]`` (its uniqueid's
    sequence number; the file's position among its source's files). Asterisk must hold every other slot, so two
    lines with one uniqueid in neighbouring files never share a non-Asterisk source. Answered lines left in
    Asterisk are also delivered by a second switch, as many as bring the month's duplicates to
    ``duplicate_share`` of its records (none when it has that many already)."""

    name: str
    slots: tuple[str, ...]
    duplicate_share: float


MIXES: dict[str, Mix | None] = {
    "plain": None,
    # half the Asterisk lines stay, a sixth each to FreeSWITCH, CUCM and BroadWorks; duplicates ~1 % (issue 8)
    "realistic": Mix("realistic", (ASTERISK, FREESWITCH, ASTERISK, CUCM, ASTERISK, BROADWORKS), 0.01),
}
# the second switch of a copied call, by a hash of its sequence number. Not BroadWorks: it names a call by its user
# and start time, so a copy there would share its call id with the call's re-delivered twin when that twin was
# routed to BroadWorks, and mediation would merge the two as legs (LEG_MERGED) instead of flagging a duplicate
# (6 records at 1m when BroadWorks took copies)
COPY_FORMATS = (FREESWITCH, CUCM)

# Asterisk cdr_csv (pipeline/formats/asterisk.py): 16 fixed columns, up to 21 with the optional trailing ones
_AST = {name: i for i, name in enumerate((
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata", "start",
    "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid",
))}  # fmt: skip
_AST_MIN, _AST_MAX = 16, 21
# the pipeline's rule for a CSV line whose quoting covers the whole line (pipeline/formats/common.py)
_QUOTED_LINE = re.compile(r'^(?:"(?:[^"]|"")*"|[^,"]*)(?:,(?:"(?:[^"]|"")*"|[^,"]*))*$')
_WALL = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_UNIQUEID = re.compile(r"(\d+)\.(\d+)")
_INTEGER = re.compile(r"-?\d+")

# CUCM: the header this mix writes (the parser finds its columns by name), and the field types line
CUCM_COLUMNS = (
    ("cdrRecordType", "INTEGER"),
    ("globalCallID_callManagerId", "INTEGER"),
    ("globalCallID_callId", "INTEGER"),
    ("origLegCallIdentifier", "INTEGER"),
    ("dateTimeOrigination", "INTEGER"),
    ("origNodeId", "INTEGER"),
    ("callingPartyNumber", "VARCHAR(50)"),
    ("origCause_value", "INTEGER"),
    ("destLegIdentifier", "INTEGER"),
    ("originalCalledPartyNumber", "VARCHAR(50)"),
    ("finalCalledPartyNumber", "VARCHAR(50)"),
    ("destCause_value", "INTEGER"),
    ("dateTimeConnect", "INTEGER"),
    ("dateTimeDisconnect", "INTEGER"),
    ("pkid", "UNIQUEIDENTIFIER"),
    ("duration", "INTEGER"),
    ("origDeviceName", "VARCHAR(129)"),
    ("destDeviceName", "VARCHAR(129)"),
)
# Q.850 causes by Asterisk disposition (CUCM destCause_value; BroadWorks terminationCause, 3 digits)
_CAUSES = {"ANSWERED": 16, "NO ANSWER": 19, "BUSY": 17, "FAILED": 41, "CONGESTION": 34}
# FreeSWITCH hangup causes by Asterisk disposition (pipeline/formats/freeswitch.py maps them back)
_FS_CAUSES = {
    "ANSWERED": "NORMAL_CLEARING",
    "NO ANSWER": "NO_ANSWER",
    "BUSY": "USER_BUSY",
    "FAILED": "NORMAL_TEMPORARY_FAILURE",
    "CONGESTION": "NORMAL_CIRCUIT_CONGESTION",
}
_BW_CONTROL_TYPES = ("Start", "End", "Failover")
_BW_WIDTH = 15


@dataclass(frozen=True)
class Call:
    """One readable Asterisk line: the fields the formats carry, as text, and the source's time zone."""

    fields: list[str]
    zone: str
    line_index: int

    def field(self, name: str) -> str:
        """The Asterisk field ``name`` ('' when the line does not have it)."""
        i = _AST[name]
        return self.fields[i] if i < len(self.fields) else ""

    @property
    def disposition(self) -> str:
        """The disposition as the Asterisk parser reads it (stripped, upper-cased)."""
        return self.field("disposition").strip().upper()

    @property
    def answered(self) -> bool:
        """Whether the Asterisk parser calls it answered."""
        return self.disposition == "ANSWERED"

    @property
    def ids(self) -> tuple[int, int] | None:
        """The uniqueid's (epoch, sequence) when it is ``<digits>.<digits>``."""
        match = _UNIQUEID.fullmatch(self.field("uniqueid").strip())
        return (int(match[1]), int(match[2])) if match else None

    def instant(self, name: str) -> int | None:
        """The UTC epoch of the local time field ``name``, by ``normalise.local_to_utc``'s rule."""
        return utc_epoch(self.field(name), self.zone)


def utc_epoch(text: str, zone: str) -> int | None:
    """A switch's local wall-clock text as UTC epoch seconds, by the rule ``normalise.local_to_utc`` applies: an
    ambiguous (fall-back) time is its first occurrence, a time in the spring-forward gap or unreadable is None."""
    stripped = text.strip()
    if not _WALL.fullmatch(stripped) or int(stripped[17:19]) > 59:
        return None
    minute = _minute_epoch(stripped[:16], zone)
    return None if minute is None else minute + int(stripped[17:19])


@lru_cache(maxsize=1 << 17)
def _minute_epoch(minute: str, zone: str) -> int | None:
    try:
        local = datetime.strptime(minute, "%Y-%m-%d %H:%M")
    except ValueError:
        return None
    tz = ZoneInfo(zone)
    instant = local.replace(tzinfo=tz).astimezone(UTC)  # fold 0: the first of an ambiguous hour
    if instant.astimezone(tz).replace(tzinfo=None) != local:
        return None  # inside the spring-forward gap: the wall-clock time does not exist
    return int(instant.timestamp())


def read_asterisk_line(line: str) -> list[str] | None:
    """The fields of an Asterisk line the Asterisk parser reads (quoting covers the line, 16–21 fields), or
    None for a line it keeps as UNPARSEABLE."""
    fields = split_quoted(line)
    if fields is None or not _AST_MIN <= len(fields) <= _AST_MAX:
        return None
    return fields


def split_quoted(line: str) -> list[str] | None:
    """A quoted CSV line's fields (``""`` escapes a quote), or None when its quoting is broken."""
    if not _QUOTED_LINE.match(line):
        return None
    return next(csv.reader([line]), [""])


def loose_fields(line: str) -> list[str]:
    """Whatever fields a line has, read leniently (the fields of a line no parser reads, to write it again)."""
    return next(csv.reader([line]), [])


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _csv_field(value: str) -> str:
    """A CSV field quoted only when it must be (CUCM writes plain fields)."""
    return _quote(value) if any(ch in value for ch in ',"\r\n') or value != value.strip() else value


def _bw_field(value: str) -> str:
    """A BroadWorks field: a backslash escapes a comma or a backslash."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _epoch_text(epoch: int | None) -> str:
    return "" if epoch is None else str(epoch)


def _bw_time(epoch_ms: int | None) -> str:
    """A UTC instant in BroadWorks' ``YYYYMMDDhhmmss.mmm`` ('' when there is none)."""
    if epoch_ms is None:
        return ""
    stamp = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{stamp:%Y%m%d%H%M%S}.{epoch_ms % 1000:03d}"


def _bw_zone(zone: str, epoch: int | None) -> str:
    """BroadWorks' ``userTimeZone`` (raw text only): ``1`` + the UTC offset as ``±hhmmss``."""
    offset = datetime.fromtimestamp(epoch or 0, UTC).astimezone(ZoneInfo(zone)).utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
    return f"1{sign}{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"


def freeswitch_id(call: Call, variant: int) -> str:
    """The FreeSWITCH ``uuid`` carrying the Asterisk uniqueid ``<epoch>.<sequence>`` (epoch and sequence in
    hex; ``variant`` 1 is a second switch's record of the call); a uniqueid of another shape is hashed."""
    ids = call.ids
    if ids is None:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{variant}:{call.field('uniqueid')}:{call.line_index}"))
    epoch, sequence = ids
    return f"{epoch & 0xFFFFFFFF:08x}-0000-4000-8{variant:03x}-{sequence & 0xFFFFFFFFFFFF:012x}"


def freeswitch_line(call: Call, variant: int = 0) -> str:
    """The FreeSWITCH ``default``-template line of an Asterisk call: the same local times (the source keeps the
    Asterisk source's time zone), duration and billsec as written; an answer time only on an answered call (the
    parser's answered rule; the start stands in for a missing one), the hangup cause of its disposition."""
    answered = call.answered
    answer = (call.field("answer").strip() or call.field("start")) if answered else ""
    clid = call.field("clid")
    name = clid.rsplit("<", 1)[0].strip().strip('"') if "<" in clid else clid
    values = (
        name,
        call.field("src"),
        call.field("dst"),
        call.field("dcontext"),
        call.field("start"),
        answer,
        call.field("end"),
        call.field("duration"),
        call.field("billsec"),
        _FS_CAUSES.get(call.disposition, "NO_ANSWER"),
        freeswitch_id(call, variant),
        "",
        call.field("accountcode"),
    )
    return ",".join(_quote(v) for v in values)


def cucm_ids(call: Call, variant: int) -> tuple[int, int, int]:
    """CUCM's (callManagerId, callId, origLegCallIdentifier) carrying the uniqueid: the sequence is the call id,
    the epoch the leg id; ``variant`` 1 (a second switch's record) is call manager 2."""
    ids = call.ids
    if ids is None:
        return (
            1 + variant,
            zlib.crc32(f"{call.field('uniqueid')}:{call.line_index}".encode()),
            call.line_index,
        )
    epoch, sequence = ids
    return 1 + variant, sequence, epoch


def cucm_line(call: Call, variant: int = 0) -> str:
    """The CUCM CDR line of an Asterisk call: UTC epoch seconds of the start (empty when it has none), a
    connect time only on an answered call (its answer, else its start), the billed seconds as ``duration``
    as written, the Q.850 cause of its disposition (busy 17: the parser's BUSY)."""
    manager, call_no, leg = cucm_ids(call, variant)
    start = call.instant("start")
    connect = (call.instant("answer") or start or 1) if call.answered else 0
    values = {
        "cdrRecordType": "1",
        "globalCallID_callManagerId": str(manager),
        "globalCallID_callId": str(call_no),
        "origLegCallIdentifier": str(leg),
        "dateTimeOrigination": _epoch_text(start),
        "origNodeId": str(manager),
        "callingPartyNumber": call.field("src"),
        "origCause_value": "0",
        "destLegIdentifier": str(leg + 1),
        "originalCalledPartyNumber": call.field("dst"),
        "finalCalledPartyNumber": call.field("dst"),
        "destCause_value": str(_CAUSES.get(call.disposition, _CAUSES["NO ANSWER"])),
        "dateTimeConnect": str(connect),
        "dateTimeDisconnect": _epoch_text(call.instant("end")) or "0",
        "pkid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"cucm:{manager}:{call_no}:{leg}")),
        "duration": call.field("billsec"),
        "origDeviceName": call.field("channel"),
        "destDeviceName": call.field("dstchannel"),
    }
    return ",".join(_csv_field(values[name]) for name, _ in CUCM_COLUMNS)


def broadworks_line(call: Call, variant: int = 0) -> str:
    """The BroadWorks originating record of an Asterisk call: the user (who pays) is the caller, times in GMT
    (the UTC instants of the local times), billed seconds as release − answer (the release is the answer plus the
    billed seconds; an unreadable billsec leaves the release empty: BAD_DURATION), the cause of its disposition
    (busy 017: the parser's BUSY); ``recordId`` is the uniqueid (``-2`` appended for a second switch's record)."""
    start = call.instant("start")
    billsec = call.field("billsec").strip()
    answer_ms = release_ms = None
    if call.answered and start is not None:
        answer_ms = (call.instant("answer") or start) * 1000
        release_ms = answer_ms + int(billsec) * 1000 if _INTEGER.fullmatch(billsec) else None
    elif not call.answered:
        release_ms = None if (end := call.instant("end")) is None else end * 1000
    record_id = call.field("uniqueid").strip() or f"line-{call.line_index}"
    values = (
        record_id + ("-2" if variant else ""),
        "cdrbill-bench",
        "Normal",
        call.field("src"),
        call.field("src"),
        "Originating",
        call.field("src"),
        "Public",
        call.field("dst"),
        _bw_time(None if start is None else start * 1000),
        _bw_zone(call.zone, start),
        "Yes" if call.answered else "No",
        _bw_time(answer_ms),
        _bw_time(release_ms),
        f"{_CAUSES.get(call.disposition, _CAUSES['NO ANSWER']):03d}",
    )
    return ",".join(_bw_field(v) for v in values)


def unreadable_line(target: str, fields: list[str]) -> str:
    """A line the target format keeps as UNPARSEABLE, holding the unreadable Asterisk line's fields: fewer fields
    than its layout has (FreeSWITCH 13, CUCM its header's, BroadWorks 15)."""
    if target == FREESWITCH:
        return ",".join(_quote(v) for v in fields[:12])
    if target == CUCM:
        return ",".join(_csv_field(v) for v in fields[: len(CUCM_COLUMNS) - 1])
    kept = fields[: _BW_WIDTH - 1]
    if len(kept) > 2 and kept[2].strip() in _BW_CONTROL_TYPES:
        kept[2] = "Normal"  # a control record type would make it a control record, not an unreadable one
    return ",".join(_bw_field(v) for v in kept)


WRITERS: dict[str, Callable[[Call, int], str]] = {
    FREESWITCH: freeswitch_line,
    CUCM: cucm_line,
    BROADWORKS: broadworks_line,
}


def target_name(source_id: str, target: str) -> str:
    """The id (and landing folder) of the source delivering ``source_id``'s calls in ``target`` format."""
    return f"{source_id}-{SHORT_NAMES[target]}"


def target_file_name(target: str, name: str) -> str:
    """The landed file name of the ``target`` share of the Asterisk file ``name``."""
    stem = name.rsplit(".", 1)[0]
    return {FREESWITCH: name, CUCM: f"cdr_{stem}.csv", BROADWORKS: f"BW-CDR-{stem}.csv"}[target]


def route(mix: Mix, call: Call | None, line_index: int, file_index: int) -> str:
    """The format a line goes to: ``mix.slots`` by its uniqueid's sequence (the line's position when it has
    none), shifted by the file's position among its source's files."""
    ids = None if call is None else call.ids
    key = line_index if ids is None else ids[1]
    return mix.slots[(key + file_index) % len(mix.slots)]


def copy_target(call: Call, copy_share: float) -> str | None:
    """The second switch's format for an answered, readable, billed call left in Asterisk that is delivered twice
    (a ``copy_share`` of them, by a hash of its sequence: spread over the month, the same every run), else None."""
    ids = call.ids
    billsec = call.field("billsec").strip()
    if ids is None or not call.answered or call.instant("start") is None:
        return None
    if not _INTEGER.fullmatch(billsec) or int(billsec) <= 0:
        return None
    spread = (ids[1] * 2654435761) & 0xFFFFFFFF  # Knuth's multiplicative hash of the sequence
    if spread >= copy_share * (1 << 32):
        return None
    return COPY_FORMATS[spread % len(COPY_FORMATS)]


def copy_share(mix: Mix, records: int, duplicates: int, answered: int) -> float:
    """The share of the answered lines left in Asterisk to deliver twice so that duplicates are
    ``mix.duplicate_share`` of the records afterwards (each copy is one more record and one more duplicate)."""
    needed = max(0.0, (mix.duplicate_share * records - duplicates) / (1 - mix.duplicate_share))
    eligible = answered * mix.slots.count(ASTERISK) / len(mix.slots)
    return min(1.0, needed / eligible) if eligible else 0.0


def count_answered(paths: list[Path]) -> int:
    """The lines of Asterisk files that say ANSWERED, counted in bounded byte reads (no line is parsed)."""
    needle = b'"ANSWERED"'
    total = 0
    for path in paths:
        with path.open("rb") as fh:
            tail = b""
            while chunk := fh.read(1 << 24):
                data = tail + chunk
                total += data.count(needle)
                tail = data[-(len(needle) - 1) :]
                total -= tail.count(needle)  # counted again with the next chunk
    return total


class _Outputs:
    """The target files of one Asterisk file, opened on first use (CUCM's with its two header lines)."""

    def __init__(self, stack: ExitStack, landing: Path, source_id: str, name: str) -> None:
        self._stack, self._landing, self._source, self._name = stack, landing, source_id, name
        self._files: dict[str, IO[str]] = {}
        self.lines: dict[str, int] = {}

    def write(self, target: str, line: str) -> None:
        """Write one line to the target's file."""
        fh = self._files.get(target)
        if fh is None:
            folder = self._landing / target_name(self._source, target)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / target_file_name(target, self._name)
            fh = self._stack.enter_context(path.open("w", encoding="utf-8", newline=""))
            if target == CUCM:
                fh.write(",".join(name for name, _ in CUCM_COLUMNS) + "\n")
                fh.write(",".join(kind for _, kind in CUCM_COLUMNS) + "\n")
            self._files[target] = fh
        fh.write(line + "\n")
        self.lines[target] = self.lines.get(target, 0) + 1


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as src:
        for line in src:
            yield line.removesuffix("\n").removesuffix("\r")


def mix_file(
    path: Path, zone: str, file_index: int, mix: Mix, share: float, landing: Path
) -> dict[str, dict[str, int]]:
    """Deliver one Asterisk file's lines in the mix's formats, line by line (a 10M month's files never held in
    memory): the lines routed to Asterisk stay (the file is rewritten), the others go to the target sources'
    files, a ``share`` of the answered Asterisk ones also to a second switch's. Returns the lines per format and the copies per format."""
    kept = path.with_name(path.name + ".mix")
    copies: dict[str, int] = {}
    with ExitStack() as stack:
        out = _Outputs(stack, landing, path.parent.name, path.name)
        asterisk = stack.enter_context(kept.open("w", encoding="utf-8", newline=""))
        for i, line in enumerate(_lines(path)):
            fields = read_asterisk_line(line)
            call = None if fields is None else Call(fields, zone, i)
            target = route(mix, call, i, file_index)
            if target == ASTERISK:
                asterisk.write(line + "\n")
                out.lines[ASTERISK] = out.lines.get(ASTERISK, 0) + 1
                second = None if call is None else copy_target(call, share)
                if call is not None and second is not None:
                    out.write(second, WRITERS[second](call, 1))
                    copies[second] = copies.get(second, 0) + 1
            elif call is None:
                out.write(target, unreadable_line(target, loose_fields(line)))
            else:
                out.write(target, WRITERS[target](call, 0))
    kept.replace(path)
    for name, n in copies.items():
        out.lines[name] -= n  # the copies are counted apart
    return {"lines": out.lines, "copies": copies}


def source_settings(path: Path) -> dict[str, str]:
    """A generated source's settings (``key = "value"`` lines, as ``data_samples/generate.py`` writes them)."""
    return {k: str(v) for k, v in tomllib.loads(path.read_text(encoding="utf-8")).items()}


def write_source(folder: Path, source_id: str, settings: dict[str, str]) -> None:
    """Write ``reference/sources/<source_id>.toml``."""
    text = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    (folder / f"{source_id}.toml").write_text(text, encoding="utf-8")


def asterisk_sources(root: Path) -> list[tuple[str, dict[str, str], list[Path]]]:
    """The month's Asterisk sources: id, settings and landed files (in name order)."""
    found = []
    for toml in sorted((root / "reference" / "sources").glob("*.toml")):
        settings = source_settings(toml)
        if settings["format"] == ASTERISK:
            folder = root / "landing" / settings.get("landing", toml.stem)
            found.append((toml.stem, settings, sorted(folder.glob("*.csv"))))
    return found


def apply_mix(root: Path, mix: Mix, records: int, duplicates: int) -> dict[str, object]:
    """Deliver the month's Asterisk traffic (``root/landing``, sources in ``root/reference/sources``) in the
    mix's formats: every Asterisk source gets one new source per target format, with its time zone and region.
    ``records`` and ``duplicates``: the month's before the mix (how many second-switch copies it needs).
    Returns the records per format, the copies delivered by a second switch, and the sources added."""
    sources = asterisk_sources(root)
    answered = count_answered([path for _, _, paths in sources for path in paths])
    share = copy_share(mix, records, duplicates, answered)
    lines: dict[str, int] = {}
    copies: dict[str, int] = {}
    added: list[str] = []
    for source_id, settings, paths in sources:
        for index, path in enumerate(paths):
            counts = mix_file(path, settings["timezone"], index, mix, share, root / "landing")
            for name, n in counts["lines"].items():
                lines[name] = lines.get(name, 0) + n
            for name, n in counts["copies"].items():
                copies[name] = copies.get(name, 0) + n
        for target in sorted(SHORT_NAMES):
            new_id = target_name(source_id, target)
            if (root / "landing" / new_id).is_dir():
                description = f"{SHORT_NAMES[target]} share of {source_id}'s calls (bench format mix)"
                write_source(root / "reference" / "sources", new_id, {"format": target,
                             "timezone": settings["timezone"], "default_region": settings["default_region"],
                             "description": description})  # fmt: skip
                added.append(new_id)
    return {
        "name": mix.name,
        "records_by_format": dict(sorted(lines.items())),
        "second_switch_copies": dict(sorted(copies.items())),
        "copy_share": round(share, 6),
        "sources_added": added,
    }
