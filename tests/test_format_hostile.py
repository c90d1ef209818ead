"""Targeted hostile inputs for every usage-file parser (issue 9), next to the random-bytes properties of
``test_format_parsers.py``: a valid file of each format, broken one way at a time (truncated last line, a
1 MB field, NUL bytes, mixed UTF-8/Latin-1, CRLF/LF mixes, wrong column counts, …). No exception escapes but
a whole-file refusal, every physical line is accounted for (one record each, or a control record), and every
record comes out of normalisation in one stream with its raw text kept whole.

6 formats × 16 breakages = 96 cases, plus 6 formats × 2 whole-file extremes (a 1 MB line of NULs, 20 000
lines of mixed garbage)."""

from collections.abc import Callable

import pytest

from pipeline.formats import FORMATS, FileRejected, parse_file
from pipeline.formats.common import decode
from pipeline.formats.emi import records_of
from pipeline.normalise import normalise
from tests.test_format_parsers import broadworks_line, emi_pack, physical_lines
from tests.test_intake_and_mediation import asterisk_line

MB = 1_000_000
CUCM_NAMES = ("cdrRecordType,globalCallID_callManagerId,globalCallID_callId,origLegCallIdentifier,"
              "dateTimeOrigination,callingPartyNumber,finalCalledPartyNumber,dateTimeConnect,duration,"
              "destCause_value")  # fmt: skip


def freeswitch_line(uuid: str) -> str:
    return (f'"Ann","3125550100","2125550199","default","2026-10-05 09:15:00","2026-10-05 09:15:05",'
            f'"2026-10-05 09:16:05","65","60","NORMAL_CLEARING","{uuid}","b-{uuid}","acct"')  # fmt: skip


# a valid file of each format as its lines; the index of the first usage record (after any header)
VALID: dict[str, tuple[list[str], int]] = {
    "asterisk_csv": (
        [asterisk_line("3125550100", "2125550199", f"2026-10-05 09:1{i}:00", 60 + i, f"1.{i}").rstrip("\n")
         for i in range(4)],
        0,
    ),
    "freeswitch_csv": ([freeswitch_line(f"uuid-{i}") for i in range(4)], 0),
    "cucm_cdr": (
        [CUCM_NAMES, ",".join(["INTEGER"] * 10),
         *[f'1,2,{10 + i},50{i},1791209700,"3125550100","2125550199",1791209707,60,16' for i in range(4)]],
        2,
    ),
    "broadworks_csv": (
        ["0000,SP1,Start,,,,,,,,,,,,", *[broadworks_line(record_id=f"000{i}") for i in range(1, 5)],
         "0005,SP1,End,,,,,,,,,,,,"],
        1,
    ),
    "emi_duf": (emi_pack(1, 4), 1),
    "cgrates_cdr": (
        ["CGRID,RunID,ToR,OriginID,Account,Subject,Destination,SetupTime,AnswerTime,Usage,Cost",
         *[f'c{i},*default,{tor},o{i},"3125550100",3125550100,"2125550199",2026-10-05T14:15:00Z,'
           f'2026-10-05T14:15:07Z,{usage},0.1'
           for i, (tor, usage) in enumerate([("*voice", "60000000000"), ("*sms", "1"), ("*data", "2048"),
                                             ("*voice", "1m5s")])]],
        1,
    ),
}  # fmt: skip
assert set(VALID) == set(FORMATS)

Breakage = Callable[[list[bytes], int], bytes]


def joined(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def at(lines: list[bytes], index: int, line: bytes) -> list[bytes]:
    return [*lines[:index], line, *lines[index + 1 :]]


def truncated_last_line(lines: list[bytes], first: int) -> bytes:
    data = b"\n".join(lines)
    return data[: len(data) - len(lines[-1]) // 2]  # cut mid-record, no final newline


BREAKAGES: dict[str, Breakage] = {
    "truncated last line": truncated_last_line,
    "cut after the first record": lambda lines, first: b"\n".join(lines[: first + 1])[:-3],
    "1 MB field": lambda lines, first: joined(at(lines, first, lines[first][:20] + b"7" * MB + lines[first][20:])),
    "1 MB quoted field": lambda lines, first: joined(at(lines, first, lines[first] + b',"' + b"q" * MB + b'"')),
    "NUL bytes in a record": lambda lines, first: joined(at(lines, first, lines[first].replace(b"5", b"\x00", 3))),
    "a line of NULs": lambda lines, first: joined([*lines[: first + 1], b"\x00" * 175, *lines[first + 1 :]]),
    "mixed UTF-8 and Latin-1": lambda lines, first: joined(
        at(at(lines, first, lines[first] + b",caf\xc3\xa9"), first + 1, lines[first + 1] + b",caf\xe9")
    ),
    "CRLF and LF mixed": lambda lines, first: b"".join(
        line + (b"\r\n" if number % 2 else b"\n") for number, line in enumerate(lines)
    ),
    "a lone CR inside a record": lambda lines, first: joined(at(lines, first, lines[first].replace(b",", b"\r,", 1))),
    "too few columns": lambda lines, first: joined(at(lines, first, b",".join(lines[first].split(b",")[:3]))),
    "too many columns": lambda lines, first: joined(at(lines, first, lines[first] + b',"x","y","z",,,')),
    "blank lines": lambda lines, first: b"\n\n".join(lines) + b"\n\n",
    "an unbalanced quote": lambda lines, first: joined(at(lines, first, lines[first].replace(b",", b',"', 1))),
    "every byte value in one line": lambda lines, first: joined([*lines[: first + 1], bytes(range(256)), *lines[first + 1 :]]),
    "a byte-order mark": lambda lines, first: b"\xef\xbb\xbf" + joined(lines),
    "empty file": lambda lines, first: b"",
}  # fmt: skip


def lines_of(format_name: str, data: bytes) -> int:
    """Physical lines as the format counts them (EMI: records of a newline-separated or blocked file)."""
    return records_of(decode(data)).height if format_name == "emi_duf" else physical_lines(data)


def check_accounted_for(format_name: str, data: bytes) -> str:
    """Parse and normalise; a refusal must be a whole-file FileRejected with a reason (formats with control
    records only), otherwise every line is a record or a control record and every record comes out of
    normalisation once with its raw text whole. Returns the outcome."""
    try:
        parsed = parse_file(format_name, data, None)
    except FileRejected as rejected:
        assert format_name in ("cucm_cdr", "emi_duf", "cgrates_cdr"), rejected  # formats with control records
        assert rejected.reason.isupper() and rejected.detail
        return "refused"
    records = parsed.records
    assert records.height + parsed.control_records == lines_of(format_name, data)
    assert records["line_no"].is_unique().all() and records["raw"].null_count() == 0
    assert records["raw"].str.len_chars().sum() <= len(decode(data))  # nothing invented
    out = normalise(records, file_id=1, source_id="s", timezone=parsed.timezone or "America/Chicago",
                    billing_timezone="America/Chicago", registered_cycle="2026-10")  # fmt: skip
    assert out.height == records.height
    assert set(out["status"].unique()) <= {"ok", "suspended", "discarded"}
    return "parsed"


@pytest.mark.parametrize("format_name", sorted(FORMATS))
@pytest.mark.parametrize("breakage", list(BREAKAGES), ids=list(BREAKAGES))
def test_a_broken_file_never_raises_and_every_line_is_accounted_for(format_name, breakage):
    lines, first = VALID[format_name]
    encoded = [line.encode() for line in lines]
    assert check_accounted_for(format_name, joined(encoded)) == "parsed"  # the unbroken file is valid
    data = BREAKAGES[breakage](encoded, first)
    check_accounted_for(format_name, data)


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_a_1_mb_field_is_kept_whole_in_the_raw_text(format_name):
    lines, first = VALID[format_name]
    data = BREAKAGES["1 MB field"]([line.encode() for line in lines], first)
    if check_accounted_for(format_name, data) == "parsed":
        raw = parse_file(format_name, data).records["raw"]
        assert raw.str.len_bytes().max() >= MB  # the long record is in suspense with all its bytes
    else:
        assert format_name == "emi_duf"  # a 1 MB EMI record breaks its fixed length: the file is refused


@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_whole_files_of_garbage(format_name):
    """A 1 MB line of NULs, and 20 000 lines cycling through every breakage's shape of line."""
    check_accounted_for(format_name, b"\x00" * MB)
    garbage = [b"\x00\x01\xff", b"caf\xe9,,,", b'"unclosed,', b"\r", b"", "é,ü,😀".encode(), b"9" * 300]
    check_accounted_for(format_name, b"\n".join(garbage[i % len(garbage)] for i in range(20_000)))
