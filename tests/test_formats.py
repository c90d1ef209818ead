"""Format parsers: every physical record comes out once, with its raw text; broken files are refused whole."""

from pathlib import Path

import pytest
from conftest import SHARED_SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.formats import FileRejected, parse_file

SAMPLE_LANDING = Path(__file__).resolve().parents[1] / "data_samples" / "sample" / "landing"


def emi_record(record_id: str, body: dict[int, str]) -> str:
    """A 175-character EMI record with fields placed at their 1-based start positions."""
    chars = [" "] * 175
    chars[0:6] = record_id
    for start, value in body.items():
        chars[start - 1 : start - 1 + len(value)] = value
    return "".join(chars)


def emi_file(details: list[str], declared: int | None = None) -> bytes:
    header = emi_record("202001", {7: "261031", 13: "0101", 17: "0001"})
    count = len(details) if declared is None else declared
    trailer = emi_record("202002", {7: "261031", 13: "0101", 17: "0001", 21: f"{count:07d}"})
    return ("\n".join([header, *details, trailer]) + "\n").encode("ascii")


def emi_detail(elapsed: str = "0012345") -> str:
    return emi_record("010101", {7: "261010", 13: "2125550202", 28: "7135550100", 55: "163000", 61: elapsed,
                                 113: "2125550202"})  # fmt: skip


@pytest.mark.skipif(not SHARED_SAMPLES.exists(), reason="shared samples not present")
def test_real_asterisk_master_csv_keeps_every_line():
    data = (SHARED_SAMPLES / "asterisk" / "telephonyswitching-Master.csv").read_bytes()
    records = parse_file("asterisk_csv", data).records
    assert records.height == 105
    assert records["parse_error"].null_count() == 105
    first = records.row(0, named=True)
    assert (first["calling_raw"], first["called_raw"], first["billsec_raw"]) == ("100", "700", "3")
    assert first["source_record_id"] == "1427211880.0"


def test_asterisk_quotes_short_lines_crlf_and_latin1():
    data = (
        b'"","3125550100","2125550199","ctx","""Lopez, Maria"" <3125550100>","SIP/1","SIP/2","Dial","x",'
        b'"2026-10-05 09:15:00","2026-10-05 09:15:07","2026-10-05 09:16:30",90,83,"ANSWERED","DOCUMENTATION",'
        b'"1791209700.101",""\r\n'
        b'"","3125550100","2125550199","ctx"\r\n'
        b'"","3125550100","2125550199","ctx","Jos\xe9 <1>","SIP/1","","Dial","","2026-10-05 10:00:00",,'
        b'"2026-10-05 10:00:20",20,0,"NO ANSWER","DOCUMENTATION","1791209700.102",""\r\n'
    )
    records = parse_file("asterisk_csv", data).records
    assert records["line_no"].to_list() == [1, 2, 3]
    assert records["parse_error"].to_list() == [None, "UNPARSEABLE", None]
    assert records["billsec_raw"].to_list()[0] == "83"
    assert records["answer_local_raw"].to_list()[2] == ""
    assert "José" in records["raw"][2]  # not UTF-8: read as Latin-1, every byte kept


def test_emi_detail_fields_and_elapsed_time_rounding():
    parsed = parse_file("emi_duf", emi_file([emi_detail("0012345"), emi_detail("00A1234")]))
    assert parsed.control_records == 2
    first = parsed.records.row(0, named=True)
    assert first["start_local_raw"] == "2026-10-10 16:30:00"
    assert (first["charged_raw"], first["called_raw"]) == ("2125550202", "7135550100")
    assert first["billsec_raw"] == "755"  # 12 min 34.5 s: a started second counts
    assert parsed.records["billsec_raw"][1] == "00A1234"  # left for normalisation to suspend


def test_emi_wrong_record_length_is_kept_for_suspense():
    parsed = parse_file("emi_duf", emi_file([emi_detail(), emi_detail()[:170]]))
    assert parsed.records["parse_error"].to_list() == [None, "BAD_RECORD_LENGTH"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (emi_file([emi_detail()], declared=2), "CONTROL_TOTAL_MISMATCH"),
        (emi_file([emi_detail()]).rsplit(b"\n", 2)[0] + b"\n", "MISSING_PACK_TRAILER"),  # truncated
        (emi_detail().encode() + b"\n", "MISSING_PACK_HEADER"),
        (b"", "EMPTY_FILE"),
    ],
)
def test_broken_emi_files_are_rejected_whole(data, reason):
    with pytest.raises(FileRejected) as rejected:
        parse_file("emi_duf", data)
    assert rejected.value.reason == reason


def test_committed_sample_duf_parses():
    data = (SAMPLE_LANDING / "ilec-duf" / "DUF-20261031.emi").read_bytes()
    parsed = parse_file("emi_duf", data)
    assert parsed.records.height == 140 and parsed.control_records == 2


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_one_row_per_line_and_never_raise(data):
    records = parse_file("asterisk_csv", data).records
    text_lines = data.replace(b"\r\n", b"\n").split(b"\n")
    expected = len(text_lines) - (1 if data.endswith(b"\n") or not data else 0)
    assert records.height == expected
    assert records["line_no"].to_list() == list(range(1, expected + 1))
