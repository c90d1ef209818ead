"""The landing sensor starts mediation only for files whose size stopped changing between two scans, or
whose marker exists, and asks for the same set of files once (one run key); the run it starts takes those
files only. A run without the sensor takes a file once it has not changed for ``landing_settle_seconds``."""

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg

from assets.definitions import defs
from assets.mediation import usage_files
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from assets.sensors import landing_sensor
from pipeline.home import SAMPLE_DIR, Home
from pipeline.intake import register_landed_files
from pipeline.reference import load_reference
from pipeline.state import open_state


def tick(home: Home, cursor: str | None) -> dg.SensorResult:
    resources = {"cdrbill": CdrbillHome(root=str(home.root))}
    with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
        result = landing_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_files_are_picked_up_when_complete(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    growing = home.landing / "switch-chi" / "Master.csv"
    growing.parent.mkdir(parents=True)
    growing.write_text("first line\n")

    first = tick(home, None)  # first sight: no size to compare with yet
    assert first.run_requests == [] and list(json.loads(first.cursor or "{}")) == [str(growing)]
    with growing.open("a") as still_written:
        still_written.write("second line\n")
    second = tick(home, first.cursor)  # the size changed: still being written
    assert second.run_requests == []
    third = tick(home, second.cursor)  # unchanged since the last scan: complete
    [request] = third.run_requests or []
    assert request.partition_key == bill_cycles.get_last_partition_key()
    assert request.run_config == {"ops": {"usage_files": {"config": {"files": ["switch-chi/Master.csv"]}}}}
    assert request.job_name in (None, "mediate_landed_files")
    again = tick(home, third.cursor)  # the run has not taken them yet: the same request, deduplicated
    assert [r.run_key for r in again.run_requests or []] == [request.run_key]

    # a source with a marker: its file is complete as soon as the marker is there
    source = home.reference / "sources" / "ilec-duf.toml"
    source.write_text(source.read_text() + 'marker_suffix = ".ok"\n')
    duf = home.landing / "ilec-duf" / "DUF.emi"
    duf.parent.mkdir()
    duf.write_text("x")
    assert str(duf) not in json.loads(tick(home, third.cursor).cursor or "{}")  # no marker: not even seen
    (duf.parent / "DUF.emi.ok").write_text("")
    [with_marker] = tick(home, None).run_requests or []  # first scan, but the marker says complete
    assert with_marker.tags["cdrbill/files"] == "1"


def test_the_sensor_is_in_the_code_location():
    assert defs.resolve_sensor_def("landing_sensor").job_name == "mediate_landed_files"


def test_the_sensors_run_takes_only_the_files_it_found_complete(tmp_path: Path):
    """A file that started landing after the sensor's scan is left in landing by the run the scan started."""
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    complete = home.landing / "switch-nyc" / "Master-20261031.csv"
    complete.parent.mkdir(parents=True)
    shutil.copy2(SAMPLE_DIR / "landing" / "switch-nyc" / "Master-20261031.csv", complete)
    [request] = tick(home, tick(home, None).cursor).run_requests or []
    late = home.landing / "switch-chi" / "Master-20261031.csv"  # lands after the scan, half written
    late.parent.mkdir()
    late.write_bytes((SAMPLE_DIR / "landing" / "switch-chi" / "Master-20261031.csv").read_bytes()[:300])
    result = dg.materialize(
        [usage_files],
        partition_key=request.partition_key,
        run_config=request.run_config,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    [materialization] = result.asset_materializations_for_node("usage_files")
    assert materialization.metadata["files_loaded"].value == 1
    assert not complete.exists() and late.exists()  # the loaded file went to the archive; the other waits
    with open_state(home.state_db) as state:
        assert state.sql("select file_name from usage_files").fetchall() == [("Master-20261031.csv",)]


def test_a_run_takes_a_file_once_it_has_not_changed_for_the_settle_time(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    landed = home.landing / "switch-nyc" / "Master-20261031.csv"
    landed.parent.mkdir(parents=True)
    landed.write_bytes((SAMPLE_DIR / "landing" / "switch-nyc" / "Master-20261031.csv").read_bytes())
    sources = load_reference(home.reference).sources

    def run():
        with open_state(home.state_db) as state:
            return register_landed_files(
                home, state, sources, cycle="2026-10", billing_timezone="America/Chicago", settle_seconds=60
            )

    waiting = run()  # written just now: it may still be growing
    assert waiting.loaded == [] and landed.exists()
    assert [f["path"] for f in waiting.still_landing] == ["switch-nyc/Master-20261031.csv"]
    assert waiting.still_landing[0]["changed_seconds_ago"] < 60
    an_hour_ago = time.time() - 3600
    os.utime(landed, (an_hour_ago, an_hour_ago))
    taken = run()
    assert [f["file_name"] for f in taken.loaded] == ["Master-20261031.csv"] and taken.still_landing == []
