"""Small landed files read together (pipeline/small_files.py) give what each file read alone gives: the same
ledger, the same usage records file by file, the same duplicate files and quarantine — whatever the files hold."""

import codecs
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.dataset import split_landed_files
from pipeline.accounting import record_accounting
from pipeline.engine import session
from pipeline.home import SAMPLE_DIR, Home
from pipeline.intake import IntakeReport, register_landed_files
from pipeline.lake import lake_table
from pipeline.mediation import mediate_cycle
from pipeline.rating import rate_cycle, rated_events
from pipeline.reference import load_reference
from pipeline.state import open_state

CYCLE = "2026-10"
# a call as the pipeline keeps it, apart from where it was read (file ids and line numbers differ once cut)
CALL_KEY = ("source_id", "source_record_id", "charged_number", "called_number", "start_utc", "billsec")
OUTCOME_COLUMNS = (*CALL_KEY, "status", "reason", "account_id", "units", "service")
LEDGER = (
    "file_id, source_id, file_name, sha256, size_bytes, registered_cycle, status, reason, reason_detail, "
    "duplicate_of, records, control_records, stored_path"
)


def cdr(src: str, dst: str, start: str, billsec: int, uniqueid: str, newline: str = "\n") -> bytes:
    return (
        f'"","{src}","{dst}","from-internal","""Test"" <{src}>","SIP/a","SIP/b","Dial","","{start}","{start}",'
        f'"{start}",{billsec + 5},{billsec},"ANSWERED","DOCUMENTATION","{uniqueid}",""{newline}'
    ).encode()


def a_call(n: int, newline: str = "\n") -> bytes:
    return cdr("3125550100", f"21255501{n % 100:02d}", f"2026-10-{1 + n % 28:02d} 09:{n % 60:02d}:00", 30 + n,
               f"17{n}.{n}", newline)  # fmt: skip


CUCM_NAMES = (
    "cdrRecordType,globalCallID_callManagerId,globalCallID_callId,origLegCallIdentifier,dateTimeOrigination,"
    "callingPartyNumber,finalCalledPartyNumber,dateTimeConnect,duration,destCause_value\n"
)
CUCM_HEADER = (CUCM_NAMES + "INTEGER," * 9 + "INTEGER\n").encode()


def cucm(n: int) -> bytes:
    """A CUCM record of call n (an answered minute in October 2026, UTC epoch seconds)."""
    start = 1791450000 + 3600 * n
    return f"1,2,{700 + n},{500 + n},{start},3125550100,21255501{n % 100:02d},{start + 5},{60 + n},16\n".encode()


def broadworks(n: int, kind: str = "Normal") -> bytes:
    """A BroadWorks record of call n (a control record for kind Start, End or Failover)."""
    if kind in ("Start", "End", "Failover"):
        return f"{n:04d},SP1,{kind},,,,,,,,,,,,\n".encode()
    return (f"{n:04d},SP1,{kind},+13125550100,+13125550000,Originating,+13125550100,Public,21255501{n % 100:02d},"
            f"202610{1 + n % 28:02d}141500.000,1-050000,Yes,202610{1 + n % 28:02d}141507.250,"
            f"202610{1 + n % 28:02d}141630.100,016\n").encode()  # fmt: skip


def empty_home(root: Path) -> Home:
    home = Home(root).ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    for name, format_name in (("switch-cucm", "cucm_cdr"), ("switch-bw", "broadworks_csv")):
        (home.reference / "sources" / f"{name}.toml").write_text(
            f'format = "{format_name}"\ntimezone = "UTC"\ndefault_region = "US"\n'
        )
    return home


def intake(home: Home) -> IntakeReport:
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        return register_landed_files(home, state, reference.sources, cycle=CYCLE, billing_timezone="America/Chicago")


def outcome(home: Home) -> tuple[list[tuple], dict[int, pl.DataFrame]]:
    """The ledger (stored paths relative to the home) and each loaded file's usage records."""
    with open_state(home.state_db) as state:
        ledger = state.sql(f"select {LEDGER} from usage_files order by file_id").pl()
    ledger = ledger.with_columns(pl.col("stored_path").str.replace(str(home.root), "", literal=True))
    records = {
        file_id: pl.read_parquet(lake_table(home.lake, "usage_records", "records", file_id=file_id))
        for file_id in ledger.filter(pl.col("status") == "loaded")["file_id"]
    }
    return ledger.rows(), records


def land_and_compare(tmp_path: Path, files: list[tuple[str, str, bytes]]) -> IntakeReport:
    """Land ``files`` (source folder, name, bytes) in one home and take them in one intake run, and in another
    home one file per run (each read alone); both give the same ledger and records. Returns the first run's
    report."""
    together, alone = empty_home(tmp_path / "together"), empty_home(tmp_path / "alone")
    for folder, name, data in files:
        (together.landing / folder).mkdir(parents=True, exist_ok=True)
        (together.landing / folder / name).write_bytes(data)
    report = intake(together)
    for folder, name, data in sorted(files):  # landing order: folder, then name
        (alone.landing / folder).mkdir(parents=True, exist_ok=True)
        (alone.landing / folder / name).write_bytes(data)
        assert intake(alone).read_together == 0  # one small file: read by itself
    ledger, records = outcome(together)
    expected_ledger, expected_records = outcome(alone)
    assert ledger == expected_ledger
    assert records.keys() == expected_records.keys()
    for file_id, frame in records.items():
        assert frame.equals(expected_records[file_id]), f"file {file_id}"
    return report


def test_small_files_read_together_give_what_each_gives_alone(tmp_path: Path) -> None:
    bom = codecs.BOM_UTF8
    files = [
        ("switch-chi", "a-01.csv", a_call(1) + a_call(2) + a_call(3)),
        ("switch-chi", "a-02.csv", a_call(4, "\r\n") + a_call(5, "\r\n")),  # CRLF
        ("switch-chi", "a-03.csv", bom + a_call(6)),  # its own byte-order mark: read alone
        ("switch-chi", "a-04.csv", a_call(7) + bom + a_call(8)),  # a line that begins with one keeps it
        ("switch-chi", "a-05.csv", a_call(9) + a_call(10).rstrip(b"\n")),  # no final newline: read alone
        ("switch-chi", "a-06.csv", a_call(1) + a_call(2) + a_call(3)),  # a-01 again, still waiting: a duplicate
        ("switch-chi", "a-07.csv", b"\n" + b"not,a,cdr\n" + a_call(12) + b'"unbalanced,quote\n\n'),
        ("switch-chi", "a-08.csv", a_call(13) + a_call(13)),  # the same call twice in one file
        ("switch-chi", "a-09.csv", a_call(11).replace(b"Test", b"T\xe9st")),  # Latin-1: read alone
        ("switch-chi", "a-10.csv", b""),  # empty: read alone
        ("switch-nyc", "b-01.csv", a_call(14) + a_call(15)),  # another source: another group
        ("switch-nyc", "b-02.csv", a_call(16)),
        # CUCM: files of one header are read as one file of that header
        ("switch-cucm", "c-01.csv", CUCM_HEADER.replace(b"duration,", b"") + cucm(1)),  # no duration column
        ("switch-cucm", "c-02.csv", CUCM_HEADER.replace(b"duration,", b"") + cucm(2)),  # both refused, each alone
        ("switch-cucm", "c-03.csv", CUCM_HEADER + cucm(3) + cucm(4)),
        ("switch-cucm", "c-04.csv", CUCM_HEADER + b"1,2,broken\n" + cucm(5)),
        ("switch-cucm", "c-05.csv", b"callingPartyNumber," + CUCM_HEADER.replace(b",callingPartyNumber", b"")
         + b"3125550100," + cucm(6).replace(b",3125550100", b"")),  # another release's column order: alone
        ("switch-cucm", "c-06.csv", CUCM_HEADER),  # the header alone: no records, two control lines
        # BroadWorks: the server's Start/End records are control lines, counted per file
        ("switch-bw", "d-01.csv", broadworks(0, "Start") + broadworks(1) + broadworks(2, "Long Duration")),
        ("switch-bw", "d-02.csv", broadworks(3) + b"0004,SP1,Normal,dangling\\\n" + broadworks(5, "End")),
    ]
    report = land_and_compare(tmp_path, files)
    # together: a-01, a-02 and a-04 (a-03 and a-05 read alone); a-07 and a-08; b-01 and b-02; c-03, c-04, c-06;
    # d-01 and d-02
    assert report.read_together == 12
    assert len(report.loaded) == 17 and len(report.duplicate_files) == 1 and len(report.quarantined) == 2


ANY_LINE = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b).map(lambda b: b + b"\n"),
    st.text(max_size=30).map(lambda t: t.replace("\n", "").encode() + b"\n"),
)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.integers(0, 500).map(a_call), st.integers(0, 500).map(lambda n: a_call(n, "\r\n")), ANY_LINE,
                st.tuples(st.integers(0, 500), st.sampled_from(["Normal", "Start", "End", "Long Duration"])).map(
                    lambda call: broadworks(*call)
                ),
            ),
            max_size=6,
        ).map(b"".join),
        min_size=2,
        max_size=6,
    )
)
def test_any_small_files_read_together_give_what_each_gives_alone(tmp_path_factory, contents) -> None:
    """An Asterisk and a BroadWorks source given the same lines (BroadWorks records among Asterisk lines are
    unparseable there, and the other way round); a BroadWorks file opens with a Start record, so that its
    content is its own (the same content in two sources is a duplicate file)."""
    files = [("switch-chi", f"f-{i:02d}.csv", data) for i, data in enumerate(contents)]
    files += [("switch-bw", f"f-{i:02d}.csv", broadworks(9999, "Start") + data) for i, data in enumerate(contents)]
    land_and_compare(tmp_path_factory.mktemp("files"), files)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([CUCM_HEADER, CUCM_HEADER.replace(b"INTEGER\n", b"INTEGER,\n"), b""]),
            st.lists(st.one_of(st.integers(0, 500).map(cucm), ANY_LINE), max_size=5).map(b"".join),
        ).map(b"".join),
        min_size=2,
        max_size=6,
    )
)
def test_any_small_cucm_files_read_together_give_what_each_gives_alone(tmp_path_factory, contents) -> None:
    """CUCM files of one header, another header, or none (refused whole) among any lines."""
    files = [("switch-cucm", f"cdr-{i:02d}.csv", data) for i, data in enumerate(contents)]
    land_and_compare(tmp_path_factory.mktemp("files"), files)


def test_the_sample_month_in_files_of_seven_lines_mediates_and_rates_as_in_its_own_files(tmp_path: Path) -> None:
    """The sample month's landed files cut into files of 7 lines (``bench.dataset.split_landed_files``: a
    switch that closes its file every few calls) are read together and mediated in chunks of several files:
    the same calls come out, with the same outcomes and the same charges, as from the month's own five files —
    duplicates across files and switches included."""
    results = {}
    for label in ("whole", "cut"):
        home = empty_home(tmp_path / label)
        if label == "whole":
            shutil.copytree(SAMPLE_DIR / "landing", home.landing, dirs_exist_ok=True)
        else:
            cut = split_landed_files(SAMPLE_DIR / "landing", home.landing, home.reference / "sources", 7)
            assert cut["files_before"] == 5 and cut["files_after"] > 100
        report = intake(home)
        with session(load_reference(home.reference)) as con:
            counts = mediate_cycle(con, home.lake, CYCLE)
            rate_cycle(con, home.lake, CYCLE)
            accounting = record_accounting(con, home.lake, CYCLE)
        assert accounting["balanced"].all()
        folder = home.lake / "mediated" / f"cycle={CYCLE}"
        outcomes = pl.concat(
            [pl.read_parquet(folder / f"{s}.parquet").select(OUTCOME_COLUMNS) for s in ("normalised", "suspended",
                                                                                       "duplicate", "discarded")]
        )  # fmt: skip
        charges = rated_events(home.lake, CYCLE).select(*CALL_KEY, "charge_amount").collect()
        results[label] = (report, counts, outcomes.sort(pl.all()), charges.sort(pl.all()))
    (whole_report, whole_counts, whole_outcomes, whole_charges) = results["whole"]
    (cut_report, cut_counts, cut_outcomes, cut_charges) = results["cut"]
    assert cut_report.read_together > 100 > whole_report.read_together  # the sample's own files are small too
    assert cut_report.records == whole_report.records
    assert cut_counts == whole_counts
    assert cut_outcomes.equals(whole_outcomes)
    assert cut_charges.equals(whole_charges) and cut_charges.height > 0
