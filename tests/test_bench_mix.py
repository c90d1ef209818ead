"""The bench's format mix (bench/mix.py): each Asterisk line delivered in FreeSWITCH, CUCM or BroadWorks reads
back through that format's own parser and normalisation as the same call, and a mixed month goes through the
real intake, mediation and rating to the same rated events and the same money as the plain month."""

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from bench.dataset import (
    BAD_RECORD_EVERY,
    CYCLE,
    MIX_VERSION,
    composition,
    dataset_dir,
    inject_bad_records,
    parse_size,
)
from bench.mix import BROADWORKS, CUCM, FREESWITCH, MIXES, WRITERS, Call, Mix, apply_mix, unreadable_line
from data_samples.generate import generate_month
from pipeline.accounting import MEDIATION_OUTCOMES, OUTCOMES, record_accounting
from pipeline.engine import session
from pipeline.formats import parse_file
from pipeline.home import PROJECT_ROOT, Home
from pipeline.intake import register_landed_files
from pipeline.mediation import MEDIATED, mediate_cycle
from pipeline.normalise import normalise
from pipeline.rating import rate_cycle, rated_events_sql
from pipeline.reference import load_reference
from pipeline.settings import load_settings
from pipeline.state import open_state

ZONE = "America/Chicago"
TARGETS = (FREESWITCH, CUCM, BROADWORKS)


def asterisk(start="2026-10-05 09:15:00", answer="2026-10-05 09:15:07", billsec="83", disposition="ANSWERED",
             uniqueid="1791209700.1234", columns=18) -> str:  # fmt: skip
    fields = ['""', '"3125550100"', '"2125550199"', '"from-internal"', '"""Ann O\'Neil"" <3125550100>"',
              '"PJSIP/3125550100-000004d2"', '"PJSIP/trunk-out-000004d2"', '"Dial"', '"PJSIP/2125550199@trunk-out,60"',
              f'"{start}"', f'"{answer}"' if answer else "", '"2026-10-05 09:16:30"', "90", billsec,
              f'"{disposition}"', '"DOCUMENTATION"', f'"{uniqueid}"', '""']  # fmt: skip
    return ",".join(fields[:columns])


# an answered call, an ambiguous fall-back hour (its first occurrence), the three dispositions that are not
# billed, and the bad lines: billsec "abc" (inject_bad_records), an impossible time and a time in the spring-forward
# gap (BAD_TIMESTAMP), a line of 12 columns and one of broken quoting (UNPARSEABLE), a negative and an absurd billsec
LINES = [
    asterisk(),
    asterisk(start="2026-11-01 01:30:00", answer="2026-11-01 01:30:05", uniqueid="1793514600.7"),
    asterisk(answer="", billsec="0", disposition="NO ANSWER", uniqueid="1791209700.1235"),
    asterisk(answer="", billsec="0", disposition="BUSY", uniqueid="1791209700.1236"),
    asterisk(billsec="0", uniqueid="1791209700.1237"),  # answered, nothing billed: NOT_ANSWERED
    asterisk(billsec="abc", uniqueid="1791209700.1238"),
    asterisk(start="2026-10-32 25:61:00", answer="2026-10-32 25:61:00", uniqueid="1791209700.1239"),
    asterisk(start="2026-03-08 02:30:00", answer="2026-03-08 02:30:05", uniqueid="1772958600.1240"),
    asterisk(columns=12),
    asterisk(uniqueid='1791209700.1241"x'),
    asterisk(billsec="-5", uniqueid="1791209700.1242"),
    asterisk(billsec="90000", uniqueid="1791209700.1243"),
]
# the outcome columns a format carries exactly (the disposition's wording may differ: FAILED, see below)
SAME = ["status", "reason", "charged_number", "called_number", "start_utc", "billsec"]


def comparable(frame: pl.DataFrame) -> list[dict]:
    """The ``SAME`` columns of each record; an unreadable record's fields are what its parser happened to split
    (Asterisk none, BroadWorks some): only its status and reason count."""
    unreadable = pl.col("reason") == "UNPARSEABLE"
    return frame.select(
        "status", "reason", *[pl.when(unreadable).then(None).otherwise(pl.col(c)).alias(c) for c in SAME[2:]]
    ).to_dicts()


def normalised(format_name: str, data: bytes) -> pl.DataFrame:
    """One file's records as the pipeline parses and normalises them."""
    parsed = parse_file(format_name, data)
    return normalise(parsed.records, file_id=1, source_id="s", timezone=parsed.timezone or ZONE,
                     billing_timezone=ZONE, registered_cycle=CYCLE, received_on=date(2026, 11, 1))  # fmt: skip


def converted(target: str, lines: list[str], variant: int = 0) -> bytes:
    """The Asterisk lines written in ``target`` format as the mix writes them (with CUCM's header lines)."""
    from bench.mix import CUCM_COLUMNS, loose_fields, read_asterisk_line

    out = []
    if target == CUCM:
        out += [",".join(n for n, _ in CUCM_COLUMNS), ",".join(t for _, t in CUCM_COLUMNS)]
    for i, line in enumerate(lines):
        fields = read_asterisk_line(line)
        out.append(unreadable_line(target, loose_fields(line)) if fields is None
                   else WRITERS[target](Call(fields, ZONE, i), variant))  # fmt: skip
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("target", TARGETS)
def test_every_asterisk_line_reads_back_as_the_same_call_in_each_format(target: str) -> None:
    plain = normalised("asterisk_csv", ("\n".join(LINES) + "\n").encode())
    mixed = normalised(target, converted(target, LINES))
    assert mixed.height == plain.height == len(LINES)
    expected = plain
    if target == BROADWORKS:  # its billed seconds are release − answer: no readable time, no billed seconds
        no_time = pl.col("reason") == "BAD_TIMESTAMP"
        expected = plain.with_columns(billsec=pl.when(no_time).then(None).otherwise(pl.col("billsec")))
    assert comparable(mixed) == comparable(expected)
    assert plain["reason"].to_list() == [
        None, None, "NOT_ANSWERED", "BUSY", "NOT_ANSWERED", "BAD_DURATION", "BAD_TIMESTAMP", "BAD_TIMESTAMP",
        "UNPARSEABLE", "UNPARSEABLE", "NEGATIVE_DURATION", "ABSURD_DURATION",
    ]  # fmt: skip
    # the uniqueid is carried into the format's id fields; a second switch's record of the call has other ids
    ids = mixed.filter(pl.col("reason").fill_null("") != "UNPARSEABLE")["source_record_id"].to_list()
    assert len(set(ids)) == len(ids) == len(LINES) - 2 and all(ids)
    assert set(normalised(target, converted(target, LINES, variant=1))["source_record_id"]).isdisjoint(ids)


def test_a_failed_call_is_discarded_in_every_format_but_only_freeswitch_says_failed() -> None:
    line = [asterisk(answer="", billsec="0", disposition="FAILED")]
    assert normalised("asterisk_csv", (line[0] + "\n").encode())["reason"].to_list() == ["FAILED"]
    reasons = {target: normalised(target, converted(target, line))["reason"].to_list() for target in TARGETS}
    assert reasons == {FREESWITCH: ["FAILED"], CUCM: ["NOT_ANSWERED"], BROADWORKS: ["NOT_ANSWERED"]}


def test_the_mixed_month_has_its_own_cache_folder_and_the_plain_one_keeps_its_name(tmp_path: Path) -> None:
    size = parse_size("1m")
    plain = dataset_dir(tmp_path, size, 2026, 50_000)
    assert plain.name == "1m-a20000-c50-s2026-p50000-v3"  # the cached plain months stay valid
    assert dataset_dir(tmp_path, size, 2026, 50_000, "realistic").name.startswith(
        plain.name + "-mixrealistic"
    )


# ---- a small month, plain and mixed, through the real intake, mediation and rating -----------------------------


def run_pipeline(root: Path) -> dict[str, pl.DataFrame]:
    """Intake, mediation and rating of the month in ``root`` as the bench stages call them; the mediation
    outcomes (every record, its stream) and the rated events."""
    home = Home(root).ensure()
    settings = load_settings(home.reference)
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        register_landed_files(home, state, reference.sources, cycle=CYCLE, billing_timezone=settings.billing_timezone,
                              billing_window_days=settings.billing_window_days)  # fmt: skip
    with session(reference) as con:
        mediate_cycle(con, home.lake, CYCLE, duplicate_window_days=settings.duplicate_window_days,
                      duplicate_tolerance_seconds=settings.duplicate_tolerance_seconds)  # fmt: skip
        rate_cycle(con, home.lake, CYCLE)
        accounting = record_accounting(con, home.lake, CYCLE, OUTCOMES)
        rated = con.sql(rated_events_sql(home.lake, CYCLE)).pl()
    folder = home.lake / MEDIATED / f"cycle={CYCLE}"
    streams = [
        pl.read_parquet(folder / f"{s}.parquet").with_columns(stream=pl.lit(s)) for s in MEDIATION_OUTCOMES
    ]
    return {"outcomes": pl.concat(streams, how="diagonal_relaxed"), "rated": rated, "accounting": accounting,
            "sources": reference.sources}  # fmt: skip


@pytest.fixture(scope="module")
def months(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("mix")
    summary = generate_month(root / "plain", CYCLE, accounts=150, calls_per_account=24, seed=8)
    summary["bad_records_injected"] = inject_bad_records(root / "plain" / "landing", BAD_RECORD_EVERY)
    shutil.copytree(root / "plain", root / "mixed")
    before = composition(summary)
    mix = apply_mix(root / "mixed", MIXES["realistic"], before["records"], before["duplicates"])
    return {"summary": summary, "mix": mix, "plain": run_pipeline(root / "plain"),
            "mixed": run_pipeline(root / "mixed")}  # fmt: skip


def _formats(run: dict) -> pl.DataFrame:
    return run["outcomes"].join(run["sources"].select("source_id", "format"), on="source_id")


def test_the_mixed_month_holds_every_format_and_accounts_for_every_line(months: dict) -> None:
    plain, mixed, mix = months["plain"], months["mixed"], months["mix"]
    copies = sum(mix["second_switch_copies"].values())
    assert copies > 0
    by_format = dict(_formats(mixed).group_by("format").len().iter_rows())
    expected = {
        name: n + mix["second_switch_copies"].get(name, 0) for name, n in mix["records_by_format"].items()
    }
    assert by_format == {**expected, "emi_duf": months["summary"]["emi_detail_records"]}
    assert all(by_format[name] > 0 for name in ("asterisk_csv", *TARGETS, "emi_duf"))
    # every record in has exactly one outcome, in both months; the mix added the copies and nothing else
    assert plain["accounting"]["balanced"].all() and mixed["accounting"]["balanced"].all()
    assert mixed["outcomes"].height == plain["outcomes"].height + copies
    assert mixed["accounting"]["records_in"].sum() == plain["accounting"]["records_in"].sum() + copies


def test_the_mixed_month_rates_to_the_same_events_and_the_same_money(months: dict) -> None:
    key = ["account_id", "charged_number", "called_number", "start_utc", "billsec", "charge_amount"]
    plain, mixed = months["plain"]["rated"], months["mixed"]["rated"]
    assert plain.height > 1000
    assert mixed.select(key).sort(key).equals(plain.select(key).sort(key))
    assert mixed["charge_amount"].sum() == plain["charge_amount"].sum()
    # and they were rated from every format
    assert mixed["source_id"].n_unique() > plain["source_id"].n_unique()


def test_duplicates_are_caught_and_bad_lines_suspended_in_every_format(months: dict) -> None:
    plain, mixed, mix = months["plain"]["outcomes"], _formats(months["mixed"]), months["mix"]
    copies = sum(mix["second_switch_copies"].values())
    counts = {
        name: dict(run.group_by("stream").len().iter_rows()) for name, run in (("p", plain), ("m", mixed))
    }
    assert counts["m"]["duplicate"] == counts["p"]["duplicate"] + copies
    assert counts["m"]["normalised"] == counts["p"]["normalised"]
    assert counts["m"]["discarded"] == counts["p"]["discarded"]
    # the copies are caught by content across switches (the second switch's record, or the first's if it came later)
    content = mixed.filter(pl.col("reason") == "DUPLICATE_CONTENT").height
    assert content >= copies

    def reasons(frame: pl.DataFrame) -> dict:
        return dict(frame.filter(pl.col("stream") == "suspended").group_by("reason").len().iter_rows())

    assert reasons(mixed) == reasons(plain)
    injected = months["summary"]["bad_records_injected"]
    assert reasons(mixed)["BAD_DURATION"] >= injected > 0
    bad_by_format = mixed.filter(pl.col("reason") == "BAD_DURATION").group_by("format").len()
    assert set(bad_by_format["format"]) >= {"asterisk_csv", *TARGETS}  # bad lines stayed bad in every format


def test_the_bench_runs_a_mixed_month_and_says_so_in_its_result(tmp_path: Path) -> None:
    results = tmp_path / "results"
    subprocess.run(
        [sys.executable, "-m", "bench", "--size", "1k", "--repeat", "1", "--until", "rating", "--no-sample-cycle",
         "--prefixes", "1000", "--mix", "realistic", "--cache", str(tmp_path / "cache"), "--results", str(results)],
        cwd=PROJECT_ROOT, check=True, capture_output=True,
    )  # fmt: skip
    [json_path] = results.glob("*-1k-realistic.json")
    result = json.loads(json_path.read_text(encoding="utf-8"))
    assert result["mix"] == "realistic"
    month = result["dataset"]["composition"]
    assert set(month["records_by_format"]) == {"asterisk_csv", *TARGETS, "emi_duf"}
    assert month["duplicates"] > 0 and month["bad_records"] > result["dataset"]["bad_records_injected"] > 0
    # the floor reads every raw line of the mixed month (CUCM's two header lines a file are lines too)
    cucm_files = sum(1 for p in (tmp_path / "cache" / "data").glob("*-mixrealistic*/landing/*-cucm/*"))
    landed = list((tmp_path / "cache" / "data").glob("*-mixrealistic*/landing/*/*"))
    assert result["dataset"]["raw_files"] == len(landed) == 14  # 5 plain + 2 × 3 switch-chi + 3 switch-nyc
    assert (
        result["floor"]["records"]
        == month["records"] + 2 * cucm_files + month["records_by_format"]["emi_duf"] + 4
    )
    stages = {s["stage"]: s for s in result["stages"]}
    assert stages["mediation"]["detail"]["duplicate"] == month["duplicates"]
    assert "format mix realistic" in json_path.with_suffix(".md").read_text(encoding="utf-8")
    # the plain month it was made from is cached beside it, under its own name
    assert sorted(p.name.split("-v3")[1] for p in (tmp_path / "cache" / "data").iterdir()) == [
        "",
        f"-mixrealistic{MIX_VERSION}",
    ]


def test_no_call_id_is_shared_in_a_new_source_by_a_twin_and_a_copy(tmp_path: Path) -> None:
    """The generator re-delivers a line (the same uniqueid) in the other file of its switch, and the mix delivers
    some calls again by a second switch: within one FreeSWITCH, CUCM or BroadWorks source no two records may share
    a call id, else mediation merges them as legs instead of flagging the duplicate. Every answered line left in
    Asterisk is copied here (a duplicate share of 100 %), each line is in both files."""
    (tmp_path / "reference" / "sources").mkdir(parents=True)
    (tmp_path / "reference" / "sources" / "switch-x.toml").write_text(
        'format = "asterisk_csv"\ntimezone = "America/Chicago"\ndefault_region = "US"\n'
    )
    lines = [asterisk(uniqueid=f"1791209700.{seq}", start=f"2026-10-05 09:{seq:02d}:00") for seq in range(60)]
    for name in ("Master-1.csv", "Master-2.csv"):
        (tmp_path / "landing" / "switch-x").mkdir(parents=True, exist_ok=True)
        (tmp_path / "landing" / "switch-x" / name).write_text("\n".join(lines) + "\n")
    mix = apply_mix(tmp_path, Mix("all-copied", MIXES["realistic"].slots, 0.99), records=1000, duplicates=0)
    assert mix["copy_share"] == 1.0 and set(mix["records_by_format"]) == {"asterisk_csv", *TARGETS}
    for folder in (tmp_path / "landing").iterdir():
        source_format = load_reference_sources(tmp_path)[folder.name]
        ids = pl.concat([parse_file(source_format, p.read_bytes()).records for p in sorted(folder.iterdir())])
        if source_format != "asterisk_csv":
            assert ids["call_id"].is_unique().all(), folder.name
    # the 60 calls are still 60 distinct calls, each twice (twins) plus its copy when it stayed in Asterisk
    assert sum(mix["records_by_format"].values()) == 120
    assert sum(mix["second_switch_copies"].values()) == 60


def load_reference_sources(root: Path) -> dict[str, str]:
    """Landing folder → format of a month's sources."""
    from pipeline.sources import load_sources

    sources = load_sources(root / "reference" / "sources")
    return dict(zip(sources["landing"], sources["format"], strict=True))
