"""What every format parser returns, and the text handling they share."""

from __future__ import annotations

import codecs
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

# The columns every parser yields, all as text exactly as the source wrote them (normalisation comes later).
RAW_SCHEMA: dict[str, pl.DataType] = {
    "line_no": pl.UInt32(),
    "raw": pl.String(),
    "source_record_id": pl.String(),  # the source's own id of this record (Asterisk uniqueid, FreeSWITCH uuid…)
    "call_id": pl.String(),  # the id the legs of one call share (Asterisk linkedid, CUCM global call id…)
    "peer_record_id": pl.String(),  # the other leg's record id where the source names it (FreeSWITCH bleg_uuid)
    "record_sequence": pl.String(),  # partial-record sequence / indicator where the source marks one
    "charged_raw": pl.String(),  # the number whose account pays (Asterisk src, EMI billing number)
    "calling_raw": pl.String(),
    "called_raw": pl.String(),
    "start_local_raw": pl.String(),  # 'YYYY-MM-DD HH:MM:SS' in the file's time zone
    "answer_local_raw": pl.String(),
    "billsec_raw": pl.String(),
    "service_raw": pl.String(),  # the source's type of record where it names one (CGRateS ToR); null: voice
    "units_raw": pl.String(),  # messages or bytes of a non-voice record (CGRateS Usage); null: the billed seconds
    "disposition": pl.String(),  # ANSWERED | NO ANSWER | BUSY | FAILED | CONGESTION | INBOUND (see DISPOSITIONS)
    "parse_error": pl.String(),  # a suspense reason code when the record could not be read
}

# The dispositions parsers map their sources' answer flags and hangup causes to (normalise's rule table).
DISPOSITIONS = ("ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION", "INBOUND")
UNPARSEABLE = "UNPARSEABLE"


class FileRejected(Exception):
    """A whole file that must be quarantined (unreadable, wrong control totals); nothing of it is loaded."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ParsedFile:
    """The usage records of one file (every physical record, one row each) and its control facts."""

    records: pl.DataFrame
    control_records: int = 0  # headers/trailers: not usage, not counted as records in
    notes: dict[str, str] = field(default_factory=dict)
    timezone: str | None = None  # the zone of the file's times when the format fixes it (CUCM: UTC)


def decode(data: bytes) -> str:
    """Decode a switch file: UTF-8 (a BOM is dropped), else Latin-1 so that every byte is kept."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def is_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 throughout, by the rule of Python's strict decoder (no surrogate, no overlong
    form, nothing above U+10FFFF) — checked by Arrow's validator over the bytes in place, without building the
    text (several times cheaper than ``bytes.decode``)."""
    if data.isascii():
        return True
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


class Utf8Check:
    """``is_utf8`` of a stream of chunks (a file read in pieces): a character cut by a chunk's end is held and
    checked with the next chunk. ``valid`` after ``finish``."""

    def __init__(self) -> None:
        self.valid = True
        self._held = b""

    def add(self, chunk: bytes) -> None:
        """Check one more chunk (in order)."""
        if not self.valid:
            return
        data = self._held + chunk if self._held else chunk
        cut = _whole_characters(data)
        self._held = data[cut:]
        self.valid = is_utf8(data[:cut] if cut < len(data) else data)

    def finish(self) -> bool:
        """The verdict on the whole stream: a character still cut at its end is not UTF-8."""
        self.valid = self.valid and not self._held
        self._held = b""
        return self.valid


def _whole_characters(data: bytes) -> int:
    """Where the last character of ``data`` starts if its bytes run past the end (by its lead byte), else
    ``len(data)``: the bytes before are checked now, those after with the next chunk."""
    end = len(data)
    for start in range(end - 1, max(end - 4, -1), -1):
        byte = data[start]
        if byte < 0x80:
            return end
        if byte >= 0xC0:  # a lead byte: 110xxxxx → 2 bytes, 1110xxxx → 3, 11110xxx → 4
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return start if start + length > end else end
    return end  # only continuation bytes within reach: invalid (or whole), the validator decides


def as_utf8(data: bytes) -> tuple[bytes, str | None]:
    """A switch file's text as UTF-8 bytes (``decode``'s rule: UTF-8 with a BOM dropped, else Latin-1 so that
    every byte is kept) and the decoded text when it had to be made (Latin-1), else None: a UTF-8 file's bytes
    are the text's bytes, decoded only where a reader needs the text (``split_lines``' fallback)."""
    if is_utf8(data):
        return (data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data), None
    text = data.decode("latin-1")
    return text.encode(), text


_NOT_A_SEPARATOR = (
    "\x1f"  # the unit separator: when a file holds none, a line is one "field" of the CSV reader
)


def split_lines(text: str | None, data: bytes | None = None) -> pl.DataFrame:
    """One row per physical line (CRLF or LF), numbered from 1; the empty remainder after a final newline is
    not a line. polars' CSV reader splits the lines (no quoting, a separator the text does not hold, every CR
    part of a CRLF); otherwise, or when its row count is not the newline count, one C-level ``str.split``.
    ``data``: the text's UTF-8 bytes when at hand (``as_utf8``), else they are encoded here; ``text`` may
    then be None (decoded from ``data`` only if the fallback needs it)."""
    if data is None:
        assert text is not None, "split_lines needs the text or its UTF-8 bytes"
        data = text.encode()  # the counts below are byte scans (memchr), far cheaper than on a wide str
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") or data == b"" else 1)
    raw = None
    # the reader drops every CR before a newline: used only where each CR is one of a CRLF (or there is none)
    crlf_only = b"\r" not in data or data.count(b"\r") == data.count(b"\r\n")
    # ... and drops a byte-order mark that starts its input: a line beginning with one (a second BOM after the
    # file's own, which ``decode`` dropped) keeps it, as a whole-file read of the same bytes does
    if data and _NOT_A_SEPARATOR.encode() not in data and crlf_only and not data.startswith(codecs.BOM_UTF8):
        try:
            raw = pl.read_csv(
                io.BytesIO(data),
                has_header=False,
                separator=_NOT_A_SEPARATOR,
                quote_char=None,
                schema={"raw": pl.String()},
            )["raw"].fill_null("")  # an empty line reads as null
        except pl.exceptions.PolarsError:
            raw = None
    if raw is None or raw.len() != expected:
        text = data.decode() if text is None else text
        parts = text.split("\n")
        if text.endswith("\n") or text == "":
            parts.pop()
        raw = pl.Series("raw", parts, dtype=pl.String())
    lines = pl.DataFrame({"raw": raw}).with_row_index("line_no", offset=1)
    # the CR of a CRLF is not part of the line (no CR in the bytes: nothing to strip, no copy of the column)
    stripped = pl.col("raw").str.strip_suffix("\r") if b"\r" in data else pl.col("raw")
    return lines.with_columns(pl.col("line_no").cast(pl.UInt32), stripped)


# One CSV field, preceded by its comma: a quoted field with "" escapes, or a bare field without quotes.
_QUOTED_FIELD = r',("(?:[^"]|"")*"|[^,"]*)'
# One field where a backslash escapes the next character (BroadWorks: `\,` is a comma inside a field).
_BACKSLASH_FIELD = r",((?:\\.|[^,\\])*)"


def split_csv_fields(lines: pl.DataFrame) -> pl.DataFrame:
    """Split quoted CSV lines into a list of unquoted fields, vectorised; ``well_formed`` is false when the
    fields do not cover the whole line (a stray quote, a broken escape)."""
    matches = (pl.lit(",") + pl.col("raw")).str.extract_all(_QUOTED_FIELD)
    return lines.with_columns(
        fields=matches.list.eval(
            pl.element().str.slice(1).str.replace(r'^"(.*)"$', "$1").str.replace_all('""', '"')
        ),
        well_formed=_covers_line(matches),
    )


_QUOTED_LINE = r'^(?:"(?:[^"]|"")*"|[^,"]*)(?:,(?:"(?:[^"]|"")*"|[^,"]*))*$'
_QUOTED_SPAN = r'"[^"]*"'  # on a well-formed line, "a""b" is two such spans: same count


# Appended to every line as one more quoted field before the CSV reader runs: the column it lands in is the
# line's field count (no regex pass over the whole file to count fields outside quotes).
_END_OF_LINE = "\x02cdrbill:end-of-line\x03"


def read_csv_lines(
    lines: pl.DataFrame,
    width: int,
    min_fields: int,
    max_fields: int,
    text: str | bytes | None = None,
    wanted: Sequence[int] | None = None,
) -> pl.DataFrame:
    """The fields of quoted CSV lines (``""`` escapes a quote) as columns ``f0`` … ``f{width-1}`` (text; a
    field the line does not have is null), with ``well_formed`` (the quoting covers the whole line) and
    ``n_fields``. Lines with ``min_fields``–``max_fields`` fields keep their fields, other lines get none.
    Well-formed lines go through polars' CSV reader in one call, each with an end-of-line field appended whose
    column is the line's field count (one row per line: lines hold no newline); a line holding a bare CR goes
    through the regex. Same result as ``split_csv_fields``, several times faster on big files. ``text``: the
    text ``lines`` was split from (``split_lines``), when it is at hand: the reader's input is then made from
    it in one pass instead of joining the lines again. ``wanted``: the positions of the fields the caller uses
    (default all ``width``): only those columns are returned, and the reader makes text only of them and of the
    columns where a readable line can end (``min_fields`` … ``max_fields``); a line ending elsewhere (too
    short, too long) is counted by its quoted spans, as a broken line is — the same ``n_fields``."""
    wanted = range(width) if wanted is None else sorted(set(wanted))
    with_cr = pl.col("raw").str.contains("\r", literal=True)
    lines = lines.with_columns(well_formed=pl.col("raw").str.contains(_QUOTED_LINE))
    columns = [f"f{i}" for i in range(max(width, max_fields) + 2)]  # room for max_fields + the end field
    # the reader's columns: the wanted fields, and where the end field of a readable line (or a longer one) lands
    read = sorted({*wanted, *range(min_fields, len(columns))})
    usual = lines.select(pl.col("well_formed").all() & ~with_cr.any()).item()
    if usual:
        # every line goes to the reader (the usual file): its rows are the lines, in order — no filter, no join
        fields = _fields_by_reader(lines.select("line_no", "raw"), columns, text, read)
        lines = pl.concat([lines, fields.drop("line_no")], how="horizontal")
    else:
        well_formed = lines.filter(pl.col("well_formed")).select("line_no", "raw")
        fast = well_formed.filter(~with_cr)
        parts = [
            _fields_by_reader(fast, columns, None, read),
            _fields_by_regex(well_formed.filter(with_cr), columns, read),
        ]
        lines = lines.join(pl.concat(parts), on="line_no", how="left")
    # broken lines and lines too long to hold the end field: their field count by the quoted spans (few lines)
    uncounted = lines.filter(pl.col("n_fields").is_null())
    if uncounted.height:
        spans = pl.col("raw").str.replace_all(_QUOTED_SPAN, "").str.count_matches(",").cast(pl.Int64) + 1
        lines = lines.update(uncounted.select("line_no", n_fields=spans), on="line_no")
    readable = pl.col("well_formed") & pl.col("n_fields").is_between(min_fields, max_fields)
    # a field the line has is text ('' when empty); one it does not have is null
    return lines.select(
        pl.exclude(columns),
        *[
            pl.when(readable & (pl.lit(i) < pl.col("n_fields"))).then(pl.col(name).fill_null("")).alias(name)
            for i, name in enumerate(columns[:width])
            if i in wanted
        ],
    )


def _fields_by_reader(
    lines: pl.DataFrame, columns: list[str], text: str | bytes | None, read: list[int]
) -> pl.DataFrame:
    """polars' CSV reader over the lines joined by newlines, each ending with the end-of-line field; the
    column holding it gives ``n_fields`` (null for a line too long to hold it, or whose end field lands in a
    column not ``read``: the caller counts those lines). Only the columns at positions ``read`` are made.
    Falls back to the regex when rows disagree. ``text``: the text of exactly these lines (all of them, none
    holding a CR), or None."""
    schema = dict.fromkeys(columns, pl.String())
    if lines.height == 0:
        return pl.DataFrame(
            schema={"line_no": pl.UInt32(), **{columns[i]: pl.String() for i in read}, "n_fields": pl.Int64()}
        )
    end_field = f',"{_END_OF_LINE}"'
    if isinstance(text, bytes) and b"\r" not in text:
        # the lines are the text's lines: the end field goes before each newline, one C-level pass
        end = end_field.encode()
        body = text.replace(b"\n", end + b"\n")  # a final newline stays: the reader reads no row after it
        if not text.endswith(b"\n"):
            body += end
    elif isinstance(text, str) and "\r" not in text:
        body = (text.removesuffix("\n").replace("\n", end_field + "\n") + end_field).encode()
    else:
        body = lines.select((pl.col("raw") + pl.lit(end_field)).str.join("\n")).item().encode()
    try:
        fields = pl.read_csv(
            io.BytesIO(body),
            has_header=False,
            schema=schema,
            truncate_ragged_lines=True,
            missing_columns="insert",
            columns=read,
        )
    except pl.exceptions.PolarsError:
        return _fields_by_regex(lines, columns, read)
    if fields.height != lines.height:
        return _fields_by_regex(lines, columns, read)
    # the last column holding the end field (a field of the line itself cannot come after it)
    n_fields = pl.max_horizontal(
        [pl.when(pl.col(columns[i]) == _END_OF_LINE).then(pl.lit(i, pl.Int64)) for i in read]
    )
    return pl.concat([lines.select("line_no"), fields.with_columns(n_fields=n_fields)], how="horizontal")


def _fields_by_regex(lines: pl.DataFrame, columns: list[str], read: list[int]) -> pl.DataFrame:
    split = split_csv_fields(lines)
    return split.select(
        "line_no",
        *[pl.col("fields").list.get(i, null_on_oob=True).alias(columns[i]) for i in read],
        n_fields=pl.col("fields").list.len().cast(pl.Int64),
    )


def split_backslash_fields(lines: pl.DataFrame) -> pl.DataFrame:
    """Split comma-separated lines where ``\\`` escapes the next character (``\\,`` a comma in a field),
    vectorised; ``well_formed`` is false when a dangling backslash leaves part of the line unread. A line
    without a backslash (nearly every line) is split at its commas; only the others go through the escape
    regex (~4× the CPU a line)."""
    escaped = pl.col("raw").str.contains("\\", literal=True)
    at_commas = {"fields": pl.col("raw").str.split(","), "well_formed": pl.lit(value=True)}
    if not lines.select(escaped.any()).item():
        return lines.with_columns(**at_commas)
    matches = (pl.lit(",") + pl.col("raw")).str.extract_all(_BACKSLASH_FIELD)
    with_escapes = lines.filter(escaped).with_columns(
        fields=matches.list.eval(pl.element().str.slice(1).str.replace_all(r"\\(.)", "$1")),
        well_formed=_covers_line(matches),
    )
    return pl.concat([lines.filter(~escaped).with_columns(**at_commas), with_escapes]).sort("line_no")


def _covers_line(matches: pl.Expr) -> pl.Expr:
    # the matched fields, commas included, must add up to the whole line (plus the framing comma)
    return matches.list.eval(pl.element().str.len_chars()).list.sum() == pl.col("raw").str.len_chars() + 1


def fields_by_name(names: tuple[str, ...] | list[str]) -> dict[str, pl.Expr]:
    """Column name → the expression that takes that position from the split ``fields`` list (null if short)."""
    return {name: pl.col("fields").list.get(i, null_on_oob=True) for i, name in enumerate(names)}


def epoch_to_text(epoch: pl.Expr) -> pl.Expr:
    """Whole epoch seconds (text) → 'YYYY-MM-DD HH:MM:SS' in UTC; non-numeric text stays null."""
    seconds = epoch.str.strip_chars().cast(pl.Int64, strict=False)
    return pl.from_epoch(seconds, time_unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a parser's output exactly the shared raw schema (missing columns are null)."""
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in RAW_SCHEMA.items()
        ]
    )
