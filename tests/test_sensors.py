"""The landing sensor starts mediation only for files whose size stopped changing between two scans, or
whose marker exists, and asks for the same set of files once (one run key)."""

import json
import shutil
from pathlib import Path

import dagster as dg

from assets.definitions import defs
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from assets.sensors import landing_sensor
from pipeline.home import SAMPLE_DIR, Home


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
