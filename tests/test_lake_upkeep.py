"""The local lake's superseded versions kept for a grace (``lake_version_grace``), then deleted by the next
writer of the dataset or the sweep (never by mediation's clean-up of a killed run); a killed writer's orphan versions
swept; never a version a link names."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.definitions import defs
from assets.resources import CdrbillHome
from pipeline.engine import session
from pipeline.intake import register_landed_files
from pipeline.lake import (
    RETIRED,
    StagedPartition,
    lake_settings,
    lake_table,
    partition_dir,
    replace_partition,
)
from pipeline.lake_upkeep import sweep_lake
from pipeline.mediation import mediate_cycle
from pipeline.reference import load_reference
from pipeline.settings import duration_seconds, load_settings, size_bytes
from pipeline.state import open_state
from tests.conftest import stage_sample
from tests.test_lake_s3 import CRASHING_WRITER, _settings


def _versions(lake: Path) -> list[str]:
    return sorted(folder.name for folder in (lake / ".versions").iterdir())


def test_a_superseded_version_stays_readable_for_the_grace(tmp_path):
    _settings(tmp_path, lake_version_grace="1h")
    lake = tmp_path / "lake"
    target = partition_dir(lake, "rated", cycle="2026-10")
    replace_partition(lake, target, {"rated": pl.DataFrame({"x": [1, 2]}), "suspended": pl.DataFrame({"x": [0]})})
    resolved = lake_table(lake, "rated", "rated", cycle="2026-10").resolve()  # a reader resolved the link ...
    replace_partition(lake, target, {"rated": pl.DataFrame({"x": [3]})})  # ... the partition moved on ...
    assert pl.read_parquet(resolved)["x"].to_list() == [1, 2]  # ... it still reads the old version, whole
    assert pl.read_parquet(resolved.parent / "suspended.parquet")["x"].to_list() == [0]
    assert [m.name for m in (lake / RETIRED).iterdir()] == [resolved.parent.name]
    assert pl.read_parquet(lake_table(lake, "rated", "rated", cycle="2026-10"))["x"].to_list() == [3]
    # past the grace the next writer of the dataset deletes it (another dataset's writer does not)
    _settings(tmp_path, lake_version_grace="1s")
    time.sleep(1.5)
    replace_partition(lake, partition_dir(lake, "charges", cycle="2026-10"), {"c": pl.DataFrame({"x": [1]})})
    assert resolved.parent.exists()
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-11"), {"rated": pl.DataFrame({"x": [4]})})
    assert not resolved.parent.exists() and not list((lake / RETIRED).iterdir())
    assert len(_versions(lake)) == 3  # the three current versions


def test_no_grace_deletes_at_once_and_scratch_partitions_never_wait(tmp_path):
    _settings(tmp_path, lake_version_grace="0")
    lake = tmp_path / "lake"
    target = partition_dir(lake, "rated", cycle="2026-10")
    for value in (1, 2):
        replace_partition(lake, target, {"rated": pl.DataFrame({"x": [value]})})
    assert _versions(lake) == [target.resolve().name]
    _settings(tmp_path, lake_version_grace="1h")
    shard = partition_dir(lake, ".shards/rated", cycle="2026-10", shard=0)  # a shard's part: scratch
    for value in (1, 2):
        replace_partition(lake, shard, {"rated": pl.DataFrame({"x": [value]})})
    assert sorted(_versions(lake)) == sorted([target.resolve().name, shard.resolve().name])


@pytest.mark.parametrize("point", ["lake.version_written", "lake.swapped"])
def test_a_killed_writers_version_is_swept_the_linked_one_never(tmp_path, point, monkeypatch):
    monkeypatch.delenv("CDRBILL_LAKE_URL", raising=False)
    _settings(tmp_path, lake_version_grace="1h")
    lake = tmp_path / "lake"
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-10"), {"rated": pl.DataFrame({"x": [1]})})
    env = os.environ | {"CDRBILL_CRASH_AT": point}
    assert subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(lake)], env=env, check=False).returncode == -9
    live = partition_dir(lake, "rated", cycle="2026-10").resolve()
    assert len(_versions(lake)) == 2
    assert sweep_lake(lake) == []  # younger than the grace: it could be a writer still at work
    _settings(tmp_path, lake_version_grace="1s")
    time.sleep(1.5)
    listed = sweep_lake(lake, dry_run=True)
    assert [r.kind for r in listed] == ["orphan"] and len(_versions(lake)) == 2
    assert [r.version for r in sweep_lake(lake)] == [r.version for r in listed]
    assert _versions(lake) == [live.name]
    expected = [1] if point == "lake.version_written" else [2]
    assert pl.read_parquet(lake_table(lake, "rated", "rated", cycle="2026-10"))["x"].to_list() == expected


def test_the_upkeep_settings_are_checked(tmp_path):
    assert duration_seconds("0") == 0 and duration_seconds("90s") == 90 and duration_seconds("2d") == 172_800
    assert size_bytes("512MB") == 512 * 10**6 and size_bytes("4GiB") == 4 * 2**30 and size_bytes("100") == 100
    assert lake_settings(tmp_path / "lake") == (3600, 20 * 10**9)  # the defaults
    assert lake_settings(tmp_path / "shard-0")[0] == 0  # a lake that is not the home's keeps nothing
    for name, value in (("lake_version_grace", "1 hour"), ("lake_cache_bytes", "lots")):
        _settings(tmp_path, **{name: value})
        with pytest.raises(ValueError, match=name):
            load_settings(tmp_path / "reference")


def test_the_lake_sweep_job_removes_an_orphan_as_the_homes_writer(tmp_path):
    home = tmp_path / "home"
    _settings(home, lake_version_grace="0")
    lake = home / "lake"
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-10"), {"rated": pl.DataFrame({"x": [1]})})
    orphan = StagedPartition(lake, partition_dir(lake, "rated", cycle="2026-10"))  # a writer killed mid-way
    pl.DataFrame({"x": [2]}).write_parquet(orphan.path("rated"))
    result = defs.resolve_job_def("lake_sweep").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"cdrbill": CdrbillHome(root=str(home))}
    )
    assert result.success and result.output_for_node("sweep_lake_versions") == 1
    assert not orphan.folder.exists()
    assert pl.read_parquet(lake_table(lake, "rated", "rated", cycle="2026-10"))["x"].to_list() == [1]


def test_mediation_leaves_a_superseded_mediated_version_to_its_grace(tmp_path):
    home = stage_sample(tmp_path / "home")
    (home.reference / "settings.toml").write_text('lake_version_grace = "1h"\n', encoding="utf-8")
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        register_landed_files(home, state, reference.sources, cycle="2026-10", billing_timezone="America/Chicago")
    resolved = []
    for _ in range(3):  # a reader resolves the mediated partition, then the cycle is mediated again
        with session(reference) as con:
            mediate_cycle(con, home.lake, "2026-10")
        resolved.append(lake_table(home.lake, "mediated", "normalised", cycle="2026-10").resolve())
    # the first version, superseded twice within the grace, is still whole for the reader that resolved it
    assert len(set(resolved)) == 3 and all(path.exists() for path in resolved)
    assert pl.read_parquet(resolved[0]).equals(pl.read_parquet(resolved[2]))
    assert len([m for m in (home.lake / RETIRED).iterdir() if m.name.startswith("mediated~")]) == 2
