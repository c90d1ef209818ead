"""Mediation of calls that produce several records: forked and a/b legs, CUCM legs, partial records, and
duplicate calls across files, switches and cycles (earlier cycles' normalised calls, the window and the
tolerance)."""

import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from pipeline.accounting import MEDIATION_OUTCOMES, record_accounting
from pipeline.engine import session
from pipeline.home import SAMPLE_DIR, Home
from pipeline.intake import register_landed_files
from pipeline.mediation import mediate_cycle
from pipeline.reference import load_reference
from pipeline.state import open_state

A, B = "3125550100", "2125550199"  # A is ACC-0001's number since 2025-03-01


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    sources = home.reference / "sources"
    (sources / "switch-fs.toml").write_text('format = "freeswitch_csv"\ntimezone = "America/Chicago"\n'
                                            'default_region = "US"\n')  # fmt: skip
    (sources / "switch-cucm.toml").write_text(
        'format = "cucm_cdr"\ntimezone = "UTC"\ndefault_region = "US"\n'
    )
    (sources / "switch-bw.toml").write_text(
        'format = "broadworks_csv"\ntimezone = "UTC"\ndefault_region = "US"\n'
    )
    return home


def land(home: Home, folder: str, name: str, lines: list[str]) -> None:
    path = home.landing / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def ast(start: str, billsec: int, uniqueid: str, linkedid: str = "", disposition: str = "ANSWERED",
        src: str = A, answer: str = "") -> str:  # fmt: skip
    answer = answer or start
    return (f'"","{src}","{B}","ctx","x","SIP/a","SIP/b","Dial","","{start}","{answer}","{start}",{billsec + 5},'
            f'{billsec},"{disposition}","DOCUMENTATION","{uniqueid}","","","{linkedid}","1"')  # fmt: skip


def run(home: Home, cycle: str = "2026-10", **options: int) -> dict[str, pl.DataFrame]:
    with open_state(home.state_db) as state:
        register_landed_files(home, state, load_reference(home.reference).sources, cycle=cycle,
                              billing_timezone="America/Chicago")  # fmt: skip
    with session(load_reference(home.reference)) as con:
        mediate_cycle(con, home.lake, cycle, **options)
        accounting = record_accounting(con, home.lake, cycle, MEDIATION_OUTCOMES)
    assert accounting["balanced"].all()  # in = normalised + suspended + duplicate + discarded, per file
    folder = home.lake / "mediated" / f"cycle={cycle}"
    out = pl.concat([pl.read_parquet(folder / f"{s}.parquet") for s in MEDIATION_OUTCOMES], how="diagonal")
    return {"all": out.sort("file_id", "line_no"), "accounting": accounting}


def outcome(out: pl.DataFrame, *columns: str) -> list[tuple]:
    return out.select("file_id", "line_no", "status", "reason", *columns).rows()


def test_forked_and_a_b_legs_and_cucm_legs_give_one_event_per_call(home):
    land(home, "switch-chi", "Master.csv", [
        ast("2026-10-05 09:15:00", 0, "1.1", "1.0", "NO ANSWER"),  # a forked leg that rang
        ast("2026-10-05 09:15:00", 83, "1.2", "1.0"),  # the leg that answered: billed
        ast("2026-10-05 09:15:00", 30, "1.3", "1.0"),  # also answered (a transfer), shorter: merged
        ast("2026-10-06 09:15:00", 40, "2.1", "2.1"),  # a call with one leg
    ])  # fmt: skip
    fs = ('"Ann","{a}","{b}","default","2026-10-07 09:15:00","2026-10-07 09:15:05","2026-10-07 09:16:05",'
          '"65","60","NORMAL_CLEARING","{uuid}","{bleg}","acct"')  # fmt: skip
    land(home, "switch-fs", "Master.csv", [
        fs.format(a=A, b=B, uuid="a-uuid", bleg="b-uuid"),  # the a-leg, billed
        fs.format(a=A, b=B, uuid="b-uuid", bleg=""),  # its b-leg: merged into the a-leg
    ])  # fmt: skip
    names = (
        "cdrRecordType,globalCallID_callManagerId,globalCallID_callId,origLegCallIdentifier,"
        "dateTimeOrigination,callingPartyNumber,finalCalledPartyNumber,dateTimeConnect,duration,destCause_value"
    )
    land(home, "switch-cucm", "cdr.csv", [
        names, "INTEGER," * 9 + "INTEGER",
        f"1,2,77,501,1791450000,{A},{B},1791450005,60,16",  # 2026-10-08 09:00:00 UTC
        f"1,2,77,502,1791450000,{A},{B},1791450005,60,16",  # the other leg of global call 2:77
    ])  # fmt: skip
    out = run(home)["all"]
    assert outcome(out, "billsec", "merged_into_file_id", "merged_into_line_no") == [
        (1, 1, "discarded", "NOT_ANSWERED", 0, None, None),
        (1, 2, "normalised", None, 83, None, None),
        (1, 3, "discarded", "LEG_MERGED", 30, 1, 2),
        (1, 4, "normalised", None, 40, None, None),
        (2, 3, "normalised", None, 60, None, None),
        (2, 4, "discarded", "LEG_MERGED", 60, 2, 3),
        (3, 1, "normalised", None, 60, None, None),
        (3, 2, "discarded", "LEG_MERGED", 60, 3, 1),
    ]


def test_partial_records_are_stitched_into_one_event(home):
    def bw(record_id: str, kind: str, answer: str, release: str, start: str = "20261005140000.000") -> str:
        return ",".join([record_id, "SP1", kind, f"+1{A}", "+13125550000", "Originating", f"+1{A}", "Public",
                         B, start, "1-050000", "Yes", answer, release, "016"])  # fmt: skip

    land(home, "switch-bw", "bw.csv", [
        bw("r1", "Long Duration", "20261005140000.000", "20261005150000.000"),  # 3600 s
        bw("r2", "Long Duration", "20261005150000.000", "20261005160000.000"),  # 3600 s
        bw("r3", "Normal", "20261005160000.000", "20261005160130.500"),  # 90.5 s → 91
    ])  # fmt: skip
    out = run(home)["all"]
    # one event: 3600 + 3600 + 91 = 7291 billed seconds, carried by the first partial
    assert outcome(out, "billsec", "units", "merged_into_line_no") == [
        (1, 1, "normalised", None, 7291, 7291, None),
        (1, 2, "discarded", "PARTIAL_MERGED", 3600, 3600, 1),
        (1, 3, "discarded", "PARTIAL_MERGED", 91, 91, 1),
    ]
    # the switch delivers the second partial again in its next file: a duplicate of it, not a third hour; a
    # whole call delivered twice is a duplicate too; a long call's first partial, its next not yet delivered,
    # is billed for what it holds
    land(home, "switch-bw", "bw-next.csv", [
        bw("r2", "Long Duration", "20261005150000.000", "20261005160000.000"),
        bw("r4", "Normal", "20261005170000.000", "20261005170100.000", start="20261005170000.000"),  # 60 s
        bw("r4", "Normal", "20261005170000.000", "20261005170100.000", start="20261005170000.000"),
        bw("r5", "Long Duration", "20261005180000.000", "20261005190000.000", start="20261005180000.000"),
    ])  # fmt: skip
    again = run(home)["all"]
    assert outcome(again, "billsec", "units", "merged_into_line_no", "duplicate_of_file_id",
                   "duplicate_of_line_no") == [
        (1, 1, "normalised", None, 7291, 7291, None, None, None),
        (1, 2, "discarded", "PARTIAL_MERGED", 3600, 3600, 1, None, None),
        (1, 3, "discarded", "PARTIAL_MERGED", 91, 91, 1, None, None),
        (2, 1, "duplicate", "DUPLICATE_SOURCE_ID", 3600, 3600, None, 1, 2),
        (2, 2, "normalised", None, 60, 60, None, None, None),
        (2, 3, "duplicate", "DUPLICATE_SOURCE_ID", 60, 60, None, 2, 2),
        (2, 4, "normalised", None, 3600, 3600, None, None, None),
    ]  # fmt: skip


def test_duplicates_across_cycles_are_found_among_earlier_cycles_calls_within_the_window(home):
    land(home, "switch-chi", "Oct.csv", [ast("2026-10-05 09:15:00", 83, "7.1")])
    run(home, "2026-10")
    # a corrected resend from November carries the same uniqueid: a duplicate of the October record
    land(home, "switch-chi", "Nov.csv", [ast("2026-11-03 09:15:00", 83, "7.1")])
    nov = run(home, "2026-11")["all"]
    assert outcome(nov, "duplicate_of_file_id", "duplicate_of_line_no") == [
        (2, 1, "duplicate", "DUPLICATE_SOURCE_ID", 1, 1)
    ]
    # with a 20-day window the October call (29 days earlier) is out of reach: billed
    again = run(home, "2026-11", duplicate_window_days=20)["all"]
    assert outcome(again) == [(2, 1, "normalised", None)]
    # re-running October does not see November's record as earlier: October keeps its call
    assert outcome(run(home, "2026-10")["all"]) == [(1, 1, "normalised", None)]


def test_the_same_call_from_two_switches_within_the_tolerance(home):
    land(home, "switch-chi", "Master.csv", [ast("2026-10-05 09:15:00", 83, "1.1")])
    land(home, "switch-nyc", "Master.csv", [ast("2026-10-05 10:15:02", 83, "9.9")])  # 2 s later (New York)
    land(
        home, "switch-chi", "Master-2.csv", [ast("2026-10-05 09:15:01", 83, "1.7")]
    )  # same switch, 1 s later
    assert [r[2] for r in outcome(run(home)["all"])] == ["normalised"] * 3  # tolerance off: exact start
    out = run(home, duplicate_tolerance_seconds=2)["all"]
    assert outcome(out, "duplicate_of_file_id") == [
        (1, 1, "normalised", None, None),
        (2, 1, "normalised", None, None),  # the same switch: a start 1 s apart is another call
        (3, 1, "duplicate", "DUPLICATE_CONTENT", 1),
    ]


def test_the_same_call_from_two_switches_is_matched_by_its_answer_time(home):
    # the originating switch starts its leg when the caller dials, the terminating one seconds later: they
    # agree on the answer, the content key's time
    land(home, "switch-chi", "Master.csv", [
        ast("2026-10-05 09:15:00", 83, "1.1", answer="2026-10-05 09:15:07"),
        # the same second, another answer: a second call (a start-time key would have dropped it)
        ast("2026-10-05 09:15:00", 83, "1.2", answer="2026-10-05 09:15:20"),
    ])  # fmt: skip
    land(home, "switch-nyc", "Master.csv", [  # New York time: the leg started 4 s later, answered at 14:15:07 UTC
        ast("2026-10-05 10:15:04", 83, "9.9", answer="2026-10-05 10:15:07")
    ])  # fmt: skip
    out = run(home)["all"]
    assert outcome(out, "duplicate_of_file_id", "duplicate_of_line_no") == [
        (1, 1, "normalised", None, None, None),
        (1, 2, "normalised", None, None, None),
        (2, 1, "duplicate", "DUPLICATE_CONTENT", 1, 1),
    ]
    assert out["answer_utc"].dt.strftime("%H:%M:%S").to_list() == ["14:15:07", "14:15:20", "14:15:07"]


def test_a_lake_loaded_before_the_answer_time_was_kept_keys_by_the_start(home):
    land(home, "switch-chi", "Oct.csv", [ast("2026-10-05 09:15:00", 83, "1.1", answer="2026-10-05 09:15:07")])
    run(home, "2026-10")
    # October's files and streams as an earlier release wrote them: without answer_utc
    for table in [*(home.lake / "usage_records").glob("*/records.parquet"),
                  *(home.lake / "mediated").glob("*/normalised.parquet")]:  # fmt: skip
        table = table.resolve()  # a link to the partition's current version
        pl.read_parquet(table, hive_partitioning=False).drop("answer_utc").write_parquet(table)
    assert outcome(run(home, "2026-10")["all"], "answer_utc") == [(1, 1, "normalised", None, None)]  # old only
    # the same call again from New York in November's file, started at the same instant, answered 2 s later:
    # against the old keys only the start can match
    land(home, "switch-nyc", "Nov.csv", [ast("2026-10-05 10:15:00", 83, "9.9", answer="2026-10-05 10:15:09")])
    out = run(home, "2026-10")["all"]
    assert outcome(out, "duplicate_of_file_id", "answer_utc") == [
        (1, 1, "normalised", None, None, None),  # read from the old file: no answer time
        (2, 1, "duplicate", "DUPLICATE_CONTENT", 1, datetime(2026, 10, 5, 14, 15, 9)),
    ]


def test_earlier_calls_written_without_units_match_on_the_rest_of_the_key(home):
    # the last second of October in Chicago, and the same call seen by New York's switch 1 s later: November
    land(home, "switch-chi", "Oct.csv", [ast("2026-10-31 23:59:59", 83, "1.1")])
    run(home, "2026-10")
    # October's normalised calls as an earlier release might have written them: without units
    for table in (home.lake / "mediated").glob("*/normalised.parquet"):
        table = table.resolve()  # a link to the partition's current version
        pl.read_parquet(table, hive_partitioning=False).drop("units").write_parquet(table)
    land(home, "switch-nyc", "Nov.csv", [ast("2026-11-01 01:00:00", 83, "9.9")])
    out = run(home, "2026-11", duplicate_tolerance_seconds=2)["all"]
    assert outcome(out, "duplicate_of_file_id", "duplicate_of_line_no") == [
        (2, 1, "duplicate", "DUPLICATE_CONTENT", 1, 1)
    ]
    # another length is another call, against the old keys too
    land(home, "switch-nyc", "Nov-2.csv", [ast("2026-11-01 01:00:00", 84, "9.8")])
    out = run(home, "2026-11", duplicate_tolerance_seconds=2)["all"]
    assert outcome(out)[1:] == [(3, 1, "normalised", None)]
