"""Recycling end to end through Dagster: records suspended for a wrong source template and for a number no
account held are fixed in the reference data, the recycle_suspense job re-mediates them, and each is rated
exactly once, however often the job runs; the recycled_records ledger and the recycled-suspense report say
which records were recycled and for what reason."""

import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import materialize_cycle

from assets.definitions import defs
from assets.resources import CdrbillHome
from pipeline.adhoc import open_warehouse
from pipeline.home import SAMPLE_DIR, Home
from pipeline.rating import rated_events
from pipeline.reports import catalogue, run_report
from pipeline.state import open_state

CYCLE = "2026-10"
FS = ('"Ann","3125550100","2126550199","default","2026-10-0{day} 09:15:00","2026-10-0{day} 09:15:05",'
      '"2026-10-0{day} 09:16:05","65","60","NORMAL_CLEARING","{uuid}","","acct","PCMU","PCMU"')  # fmt: skip
UNKNOWN = ('"","3125550177","2125550199","ctx","x","SIP/a","SIP/b","Dial","","2026-10-08 10:00:00",'
           '"2026-10-08 10:00:00","2026-10-08 10:01:00",65,60,"ANSWERED","DOCUMENTATION","77.1",""')  # fmt: skip


def streams(home: Home) -> dict[str, pl.DataFrame]:
    return {
        "suspended": pl.read_parquet(home.lake / "mediated" / f"cycle={CYCLE}" / "suspended.parquet"),
        "rated": rated_events(home.lake, CYCLE).collect(),
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    (home.reference / "sources" / "switch-fs.toml").write_text(
        'format = "freeswitch_csv"\ntemplate = "default"\ntimezone = "America/Chicago"\ndefault_region = "US"\n'
    )  # the switch writes the 15-column example template: every line is UNPARSEABLE with this setting
    for folder, name, lines in [("switch-fs", "Master.csv", [FS.format(uuid="u1", day=7), FS.format(uuid="u2", day=8)]),
                                ("switch-chi", "Master.csv", [UNKNOWN])]:  # fmt: skip
        (home.landing / folder).mkdir(parents=True, exist_ok=True)
        (home.landing / folder / name).write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("CDRBILL_HOME", str(home.root))
    return home


def test_recycled_records_are_rated_once_and_leave_suspense(home):
    first = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=dg.AssetSelection.assets("usage_files", "mediated_usage", "rated_usage"),
        partition_key=CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    assert first.success
    before = streams(home)
    assert sorted(before["suspended"]["reason"].to_list()) == [
        "UNKNOWN_SUBSCRIBER",
        "UNPARSEABLE",
        "UNPARSEABLE",
    ]
    assert before["rated"].height == 0

    # the fixes: the source's real template, and the number's owner since before the call
    source = home.reference / "sources" / "switch-fs.toml"
    source.write_text(source.read_text().replace('"default"', '"example"'))
    with (home.reference / "service_numbers.csv").open("a") as numbers:
        numbers.write("+13125550177,ACC-0001,IL,2026-10-01,\n")

    job = defs.resolve_job_def("recycle_suspense")
    for _ in range(2):  # a second recycle run changes nothing: nothing is rated twice
        with dg.DagsterInstance.ephemeral() as instance:
            run = job.execute_in_process(partition_key=CYCLE, instance=instance)
        assert run.success
        after = streams(home)
        assert after["suspended"].height == 0
        rated = after["rated"].select("file_id", "line_no", "charged_number")
        assert sorted(rated.rows()) == [
            (1, 1, "+13125550177"),
            (2, 1, "+13125550100"),
            (2, 2, "+13125550100"),
        ]
    recycled = run.asset_materializations_for_node("recycled_suspense")[0].metadata
    assert recycled["examined"].value == 0  # the second run found nothing left to re-read
    checks = run.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)

    # the ledger: the 3 resubmitted records, once each however often recycled, with the reason they left
    with open_state(home.state_db) as state:
        ledger = state.sql(
            "select file_id, line_no, cycle, previous_stage, previous_reason, new_status, new_reason "
            "from recycled_records order by file_id, line_no"
        ).fetchall()
    assert ledger == [
        (1, 1, CYCLE, "mediation", "UNKNOWN_SUBSCRIBER", "resubmitted", None),  # decided by the rebuild
        (2, 1, CYCLE, "parse", "UNPARSEABLE", "ok", None),
        (2, 2, CYCLE, "parse", "UNPARSEABLE", "ok", None),
    ]
    # the mediation-quality report on the published warehouse, after the cycle's whole flow: every recycled
    # record was rated
    assert materialize_cycle(home).success
    con = open_warehouse(home.warehouse_db)
    try:
        recycled_report = run_report(con, catalogue()["recycled_suspense"], {"cycle": CYCLE})
    finally:
        con.close()
    assert recycled_report.select(
        "previous_reason", "records_recycled", "rated_after_recycling", "still_suspended", "other_outcome"
    ).rows() == [("UNPARSEABLE", 2, 2, 0, 0), ("UNKNOWN_SUBSCRIBER", 1, 1, 0, 0)]
    # each call: 60 billed seconds (6/6 increments) interstate on RC-STD at 0.02/min = 0.02; two unparseable → 0.04
    assert recycled_report["rated_charge"].to_list() == [Decimal("0.04"), Decimal("0.02")]


def test_a_record_still_suspended_keeps_one_ledger_row(home):
    """No fix made: every recycle run re-reads the same suspended records. A record read again exactly as
    before was not recycled (no ledger row); one suspended at mediation is resubmitted to the rebuild each run
    and keeps one row."""
    first = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=dg.AssetSelection.assets("usage_files", "mediated_usage", "rated_usage"),
        partition_key=CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    assert first.success
    job = defs.resolve_job_def("recycle_suspense")
    for _ in range(2):
        with dg.DagsterInstance.ephemeral() as instance:
            assert job.execute_in_process(partition_key=CYCLE, instance=instance).success
    assert streams(home)["suspended"].height == 3
    with open_state(home.state_db) as state:
        ledger = state.sql(
            "select file_id, line_no, previous_reason, new_status, new_reason from recycled_records order by all"
        ).fetchall()
    assert ledger == [(1, 1, "UNKNOWN_SUBSCRIBER", "resubmitted", None)]


def test_a_recycle_killed_between_ledger_and_swap_completes_once_when_run_again(home):
    """A power cut after the ledger rows and before the partition swap: the records are still suspended, so
    the next recycle run re-reads them, swaps them in and writes the same ledger rows again (one each)."""
    first = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=dg.AssetSelection.assets("usage_files", "mediated_usage", "rated_usage"),
        partition_key=CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    assert first.success
    source = home.reference / "sources" / "switch-fs.toml"
    source.write_text(source.read_text().replace('"default"', '"example"'))
    command = [sys.executable, "-m", "assets.cli", "--home", str(home.root), "recycle", "--cycle", CYCLE]
    env = {k: v for k, v in os.environ.items() if k != "CDRBILL_CRASH_AT"}
    killed = subprocess.run(command, env=env | {"CDRBILL_CRASH_AT": "recycling.ledger_written"}, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]

    def ledger() -> list[tuple]:
        with open_state(home.state_db) as state:
            return state.sql(
                "select file_id, line_no, previous_reason, new_status from recycled_records order by all"
            ).fetchall()

    records = home.lake / "usage_records" / "file_id=2" / "records.parquet"
    assert pl.read_parquet(records)["status"].to_list() == ["suspended", "suspended"]  # not swapped
    written = [(1, 1, "UNKNOWN_SUBSCRIBER", "resubmitted"), (2, 1, "UNPARSEABLE", "ok"), (2, 2, "UNPARSEABLE", "ok")]
    assert ledger() == written
    again = subprocess.run(command, env=env, capture_output=True)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert pl.read_parquet(records)["status"].to_list() == ["ok", "ok"]
    assert ledger() == written
    assert streams(home)["rated"].height == 2  # the unknown number is still unknown: 2 rated, 1 suspended
