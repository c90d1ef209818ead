"""The format registry's parsers on the real switch files (exact counts by outcome) and on generated edge
cases; one hypothesis property per parser: any bytes in, no exception escapes but a whole-file refusal, and
every physical line accounted for (one row each, or a control record)."""


import polars as pl
import pytest
from conftest import SHARED_SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.formats import FORMATS, FileRejected, parse_file
from pipeline.formats.common import decode
from pipeline.formats.emi import records_of
from pipeline.normalise import normalise

needs_samples = pytest.mark.skipif(not SHARED_SAMPLES.exists(), reason="shared samples not present")


def outcomes(
    format_name: str, data: bytes, cycle: str, template: str | None = None
) -> dict[tuple[str, str | None], int]:
    """Counts by (status, reason) after normalisation, registered in the month the file was written."""
    parsed = parse_file(format_name, data, template)
    out = normalise(parsed.records, file_id=1, source_id="s", timezone=parsed.timezone or "America/New_York",
                    billing_timezone="America/Chicago", registered_cycle=cycle)  # fmt: skip
    return {(status, reason): n for status, reason, n in out.group_by("status", "reason").len().iter_rows()}


@needs_samples
def test_real_asterisk_file_by_outcome():
    data = (SHARED_SAMPLES / "asterisk" / "telephonyswitching-Master.csv").read_bytes()
    # 105 lines: 94 ANSWERED (7 of them with billsec 0), 7 NO ANSWER, 2 BUSY, 2 FAILED; 28 answered calls to
    # the dialplan's 's'/'t' extensions or 1-digit numbers (called) or from an empty src (charged)
    assert outcomes("asterisk_csv", data, "2015-03") == {
        ("ok", None): 59,
        ("discarded", "NOT_ANSWERED"): 14,  # 7 NO ANSWER + 7 answered with billsec 0
        ("discarded", "BUSY"): 2,
        ("discarded", "FAILED"): 2,
        ("suspended", "BAD_CALLED_NUMBER"): 25,
        ("suspended", "BAD_CHARGED_NUMBER"): 3,
    }  # 59 + 14 + 2 + 2 + 25 + 3 = 105: no line lost
    # registered in 2026-10, every answered call of March 2015 is far older than the 180-day billing window
    assert outcomes("asterisk_csv", data, "2026-10")[("suspended", "OUTSIDE_BILLING_WINDOW")] == 59 + 25 + 3


@needs_samples
def test_real_freeswitch_example_template_by_outcome():
    data = (SHARED_SAMPLES / "freeswitch" / "freeswitch_samples-Master.csv").read_bytes()
    parsed = parse_file("freeswitch_csv", data, "example")
    assert parsed.records.height == 82 and parsed.records["parse_error"].null_count() == 82
    # 11 legs with an answer time (4 ended RECOVERY_ON_TIMER_EXPIRE), 71 with an empty answer_stamp:
    # 56 NORMAL_CLEARING (caller hung up), 12 USER_BUSY, 3 USER_NOT_REGISTERED (failed)
    assert outcomes("freeswitch_csv", data, "2016-02", "example") == {
        ("ok", None): 10,
        ("suspended", "BAD_CHARGED_NUMBER"): 1,  # caller id 'gonzalo@parzee.com' is not a number
        ("discarded", "NOT_ANSWERED"): 56,
        ("discarded", "BUSY"): 12,
        ("discarded", "FAILED"): 3,
    }  # 10 + 1 + 56 + 12 + 3 = 82
    # the default template has 13 columns: every 15-column line of this file is unreadable with it
    default = parse_file("freeswitch_csv", data, "default").records
    assert default["parse_error"].to_list() == ["UNPARSEABLE"] * 82


@needs_samples
def test_real_cucm_file_by_outcome():
    data = (SHARED_SAMPLES / "cucm" / "cdr_StandAloneCluster_04_201601141231_120716.csv").read_bytes()
    parsed = parse_file("cucm_cdr", data)
    assert (parsed.records.height, parsed.control_records, parsed.timezone) == (2, 2, "UTC")
    first = parsed.records.row(0, named=True)
    assert first["source_record_id"] == "4:872185:75390595" and first["call_id"] == "4:872185"
    assert first["start_local_raw"] == "2016-01-14 12:29:50"  # 1452774590 s after the epoch, UTC
    assert first["answer_local_raw"] == "2016-01-14 12:30:42" and first["billsec_raw"] == "15"
    assert outcomes("cucm_cdr", data, "2016-01") == {
        ("suspended", "DAMAGED_NUMBER"): 1,  # finalCalledPartyNumber 9.12678E+11 (a spreadsheet's doing)
        ("suspended", "BAD_CHARGED_NUMBER"): 1,  # voicemail leg without a calling number
    }


def test_asterisk_trailing_columns_vary():
    base = '"","3125550100","2125550199","c","x","SIP/1","SIP/2","Dial","","2026-10-05 09:15:00",'
    base += '"2026-10-05 09:15:07","2026-10-05 09:16:30",90,83,"ANSWERED","DOCUMENTATION"'
    data = "\n".join([
        base,  # 16 columns
        base + ',"1.1",""',  # + uniqueid, userfield
        base + ',"1.2","","peer","1.0","7"',  # + peeraccount, linkedid, sequence
        base + ',"1.2","","peer","1.0","7","extra"',  # 22 columns: not a cdr_csv layout
    ]).encode()  # fmt: skip
    records = parse_file("asterisk_csv", data).records
    assert records["source_record_id"].to_list() == [None, "1.1", "1.2", None]  # unreadable: raw text only
    assert records["call_id"].to_list() == [None, None, "1.0", None]
    assert records["record_sequence"].null_count() == 4  # Asterisk's sequence counts CDRs: not a partial
    assert records["parse_error"].to_list() == [None, None, None, "UNPARSEABLE"]


def test_freeswitch_default_template_and_unknown_template():
    line = ('"Ann","3125550100","2125550199","default","2026-10-05 09:15:00","2026-10-05 09:15:05",'
            '"2026-10-05 09:16:05","65","60","NORMAL_CLEARING","a-uuid","b-uuid","acct"')  # fmt: skip
    records = parse_file("freeswitch_csv", line.encode()).records
    assert records.select("source_record_id", "peer_record_id", "billsec_raw", "disposition").row(0) == (
        "a-uuid", "b-uuid", "60", "ANSWERED",
    )  # fmt: skip
    with pytest.raises(FileRejected) as rejected:
        parse_file("freeswitch_csv", line.encode(), "custom")
    assert rejected.value.reason == "UNKNOWN_TEMPLATE"


def test_cucm_columns_are_found_by_name_in_any_order():
    names = ["duration", "finalCalledPartyNumber", "callingPartyNumber", "dateTimeConnect", "dateTimeOrigination",
             "globalCallID_callId", "globalCallID_callManagerId", "origLegCallIdentifier", "cdrRecordType",
             "destCause_value"]  # fmt: skip
    data = "\r\n".join([
        ",".join(f'"{n}"' for n in names),
        ",".join(["INTEGER"] * len(names)),
        '60,"2125550199","3125550100",1791209707,1791209700,11,2,501,1,16',
        '0,"2125550199","3125550100",0,1791209800,12,2,502,1,17',  # never connected, cause 17: busy
        '0,"2125550199"',  # short: unreadable, kept
    ]).encode()  # fmt: skip
    records = parse_file("cucm_cdr", data).records
    assert records["line_no"].to_list() == [3, 4, 5]
    assert records["disposition"].to_list()[:2] == ["ANSWERED", "BUSY"]
    assert records["start_local_raw"][0] == "2026-10-05 14:15:00"  # 1791209700 = 2026-10-05 14:15:00 UTC
    assert records["answer_local_raw"][1] == ""
    assert records["parse_error"].to_list() == [None, None, "UNPARSEABLE"]
    with pytest.raises(FileRejected) as rejected:
        parse_file("cucm_cdr", b"1,2,3\n4,5,6\n")
    assert rejected.value.reason == "MISSING_HEADER"


def broadworks_line(*, record_id="0001", kind="Normal", direction="Originating", called="2125550199",
                    answer="Yes", answer_time="20261005141507.250", release="20261005141630.100") -> str:  # fmt: skip
    return ",".join([record_id, "SP1", kind, "+13125550100", "+13125550000", direction, "+13125550100", "Public",
                     called, "20261005141500.000", "1-050000", answer, answer_time, release, "016"])  # fmt: skip


def test_broadworks_escaped_commas_control_records_and_partials():
    data = "\n".join([
        "0000,SP1,Start,,,,,,,,,,,,",
        broadworks_line(),
        broadworks_line(record_id="0002", called="Smith\\, John"),  # an escaped comma inside a field
        broadworks_line(record_id="0003", kind="Long Duration"),
        broadworks_line(record_id="0004", direction="Terminating"),
        broadworks_line(record_id="0005", answer="No", answer_time="", release="20261005141530.000"),
        "0006,SP1,Normal,dangling\\",
        "0007,SP1,End,,,,,,,,,,,,",
    ]).encode()  # fmt: skip
    parsed = parse_file("broadworks_csv", data)
    records = parsed.records
    assert parsed.control_records == 2 and parsed.timezone == "UTC"
    assert records["line_no"].to_list() == [2, 3, 4, 5, 6, 7]  # 6 records + 2 control = 8 lines
    # answered 14:15:07.250, released 14:16:30.100: 82.85 s, a started second counts → 83
    assert records["billsec_raw"].to_list()[:2] == ["83", "83"]
    assert records["called_raw"][1] == "Smith, John"
    assert records["record_sequence"].to_list()[2] == "Long Duration"
    assert records["disposition"].to_list()[3:5] == ["INBOUND", "NO ANSWER"]
    assert records["parse_error"].to_list() == [None] * 5 + ["UNPARSEABLE"]


def emi(record_id: str, body: dict[int, str], length: int = 175) -> str:
    chars = [" "] * length
    chars[0:6] = record_id
    for start, value in body.items():
        chars[start - 1 : start - 1 + len(value)] = value
    return "".join(chars)


def emi_pack(sequence: int, details: int, length: int = 175) -> list[str]:
    detail = emi("010101", {7: "261010", 13: "2125550202", 28: "7135550100", 55: "163000", 61: "0012345",
                            113: "2125550202"}, length)  # fmt: skip
    head = emi("202001", {7: "261031", 13: "0101", 17: f"{sequence:04d}"}, length)
    trail = emi("202002", {7: "261031", 13: "0101", 17: f"{sequence:04d}", 21: f"{details:07d}"}, length)
    return [head, *[detail] * details, trail]


@pytest.mark.parametrize("length", [175, 210])
@pytest.mark.parametrize("separator", ["\n", ""])
def test_emi_record_lengths_blocked_files_and_pack_gaps(length, separator):
    lines = emi_pack(1, 2, length) + emi_pack(2, 1, length) + emi_pack(5, 3, length)
    parsed = parse_file("emi_duf", separator.join(lines).encode())
    assert parsed.records.height == 6 and parsed.control_records == 6
    assert parsed.records["parse_error"].null_count() == 6
    assert parsed.records["billsec_raw"].unique().to_list() == ["755"]
    assert parsed.notes == {"packs": "261031/0001,261031/0002,261031/0005", "pack_sequences": "1,2,5",
                            "pack_sequence_gaps": "3,4"}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("".join(emi_pack(1, 2))[:-10], "UNKNOWN_BLOCKING"),  # a blocked file cut short
        ("\n".join(emi_pack(1, 2) + emi_pack(2, 2)[:-1]), "MISSING_PACK_TRAILER"),  # the last pack truncated
        ("\n".join(emi_pack(1, 2) + emi_pack(2, 2)[1:]), "MISSING_PACK_TRAILER"),  # two trailers in a pack
    ],
)
def test_broken_emi_files_are_refused_whole(data, reason):
    with pytest.raises(FileRejected) as rejected:
        parse_file("emi_duf", data.encode())
    assert rejected.value.reason == reason


def physical_lines(data: bytes) -> int:
    text = data.replace(b"\r\n", b"\n")
    return len(text.split(b"\n")) - (1 if text.endswith(b"\n") or not text else 0)


CGRATES_HEADER = b"CGRID,RunID,ToR,OriginID,Account,Subject,Destination,SetupTime,AnswerTime,Usage,Cost\n"
CUCM_HEADER = (b'cdrRecordType,globalCallID_callManagerId,globalCallID_callId,origLegCallIdentifier,'
               b'dateTimeOrigination,callingPartyNumber,finalCalledPartyNumber,dateTimeConnect,duration,'
               b'destCause_value\nINTEGER\n')  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(sorted(FORMATS)),
    st.one_of(
        st.binary(max_size=1500), st.text(alphabet=',"\\\r\n 0123456789aE+.-:é', max_size=800).map(str.encode)
    ),
)
def test_any_bytes_every_line_accounted_for(format_name, data):
    if format_name == "cucm_cdr":
        data = CUCM_HEADER + data
    if format_name == "cgrates_cdr":
        data = CGRATES_HEADER + data
    try:
        parsed = parse_file(format_name, data, "example" if format_name == "freeswitch_csv" else None)
    except FileRejected:
        assert format_name in ("cucm_cdr", "emi_duf", "cgrates_cdr")  # only formats with control records refuse
        return
    records = parsed.records
    lines = records_of(decode(data)).height if format_name == "emi_duf" else physical_lines(data)
    assert records.height + parsed.control_records == lines
    assert records["line_no"].is_unique().all() and records["raw"].null_count() == 0
    normalise(records, file_id=1, source_id="s", timezone="America/Chicago", billing_timezone="America/Chicago",
              registered_cycle="2026-10")  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9999), st.integers(0, 4)), min_size=1, max_size=4), st.booleans())
def test_emi_generated_pack_sequences_count_every_record(packs, blocked):
    lines = [line for sequence, n in packs for line in emi_pack(sequence, n)]
    parsed = parse_file("emi_duf", ("" if blocked else "\n").join(lines).encode())
    assert parsed.records.height == sum(n for _, n in packs)
    assert parsed.records.height + parsed.control_records == len(lines)
    assert isinstance(parsed.records, pl.DataFrame)
