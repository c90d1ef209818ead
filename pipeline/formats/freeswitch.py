"""FreeSWITCH ``mod_cdr_csv``: one quoted CSV line per leg, no header; the columns are the source's template
(a per-source setting). ``default`` is the module's default template, ``example`` the shipped example that
adds the codecs. Times are the switch's local time; a- and b-legs are linked by ``bleg_uuid``."""

from __future__ import annotations

import polars as pl

from pipeline.formats.common import (
    UNPARSEABLE,
    FileRejected,
    ParsedFile,
    as_utf8,
    conform,
    read_csv_lines,
    split_lines,
)

_DEFAULT = (
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "context",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    "accountcode",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "default": _DEFAULT,
    "example": (*_DEFAULT, "read_codec", "write_codec"),
}
# hangup causes of calls that were never answered, by the disposition they stand for (others: FAILED)
_BUSY_CAUSES = ("USER_BUSY",)
# NORMAL_CLEARING without an answer time: the caller hung up while it rang
_NO_ANSWER_CAUSES = (
    "NORMAL_CLEARING",
    "NO_ANSWER",
    "NO_USER_RESPONSE",
    "ORIGINATOR_CANCEL",
    "ALLOTTED_TIMEOUT",
    "CALL_REJECTED",
)


def disposition(answer_stamp: pl.Expr, hangup_cause: pl.Expr) -> pl.Expr:
    """A leg with an answer time was answered, whatever the hangup cause (RECOVERY_ON_TIMER_EXPIRE ends
    answered calls too); otherwise the hangup cause says busy, not answered, or failed."""
    cause = hangup_cause.str.strip_chars().str.to_uppercase()
    return (
        pl.when(answer_stamp.str.strip_chars().fill_null("") != "")
        .then(pl.lit("ANSWERED"))
        .when(cause.is_in(_BUSY_CAUSES))
        .then(pl.lit("BUSY"))
        .when(cause.is_in(_NO_ANSWER_CAUSES))
        .then(pl.lit("NO ANSWER"))
        .otherwise(pl.lit("FAILED"))
    )


def parse(data: bytes, template: str | None = None) -> ParsedFile:
    """Read every line with the source's template (``default`` when unset); a line whose column count is
    not the template's, or with broken quoting, is kept with reason UNPARSEABLE."""
    name = template or "default"
    if name not in TEMPLATES:
        raise FileRejected("UNKNOWN_TEMPLATE", f"FreeSWITCH template {name!r}; known: {', '.join(TEMPLATES)}")
    columns = TEMPLATES[name]
    utf8, text = as_utf8(data)
    lines = read_csv_lines(split_lines(text, utf8), len(columns), len(columns), len(columns), utf8)
    field = {name: pl.col(f"f{i}") for i, name in enumerate(columns)}
    records = lines.select(
        "line_no",
        "raw",
        source_record_id=field["uuid"],
        call_id=field["uuid"],
        peer_record_id=field["bleg_uuid"],
        charged_raw=field["caller_id_number"],
        calling_raw=field["caller_id_number"],
        called_raw=field["destination_number"],
        start_local_raw=field["start_stamp"],
        answer_local_raw=field["answer_stamp"],
        billsec_raw=field["billsec"],
        disposition=disposition(field["answer_stamp"], field["hangup_cause"]),
        parse_error=pl.when(~pl.col("well_formed") | (pl.col("n_fields") != len(columns)))
        .then(pl.lit(UNPARSEABLE))
        .otherwise(pl.lit(None)),
    )
    return ParsedFile(records=conform(records))
