"""The lake on object storage: a real S3 server on loopback (moto's), the lake moved there by a setting. A
partition's current version is named by its ``_current.json`` pointer; a crash before the pointer's PUT leaves
the previous version; of two writers that started from the same pointer, the second loses."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from assets.cli import main
from assets.definitions import defs
from assets.resources import CdrbillHome
from pipeline.invoicing import INVOICES
from pipeline.lake import (
    LakeConflict,
    StagedPartition,
    lake_partition,
    lake_table,
    lake_tables,
    object_store,
    partition_dir,
    partition_exists,
    replace_partition,
)
from pipeline.lake_cache import EVICTED, INTERRUPTED_AFTER_S
from pipeline.lake_upkeep import sweep_lake
from pipeline.rating import RATED
from tests.conftest import SAMPLE_CYCLE, stage_sample

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3 API (moto's server) on 127.0.0.1, with the AWS variables pointing at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {name: os.environ.get(name) for name in [*AWS, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS | {"AWS_ENDPOINT_URL": f"http://{host}:{port}"})
    try:
        yield os.environ["AWS_ENDPOINT_URL"]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def s3_url(s3_endpoint, monkeypatch):
    """A fresh bucket, named as the lake's URL by ``CDRBILL_LAKE_URL``."""
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}).mkdir(bucket)
    monkeypatch.setenv("CDRBILL_LAKE_URL", f"s3://{bucket}/cdrbill")
    return f"s3://{bucket}/cdrbill"


def test_versions_go_to_the_store_and_readers_follow_the_pointer(tmp_path, s3_url):
    _settings(tmp_path, lake_version_grace="0")  # today's rule before the grace: the old version goes at once
    lake = tmp_path / "lake"
    store = object_store(lake)
    assert store is not None
    target = partition_dir(lake, "rated", cycle="2026-10")
    assert not partition_exists(lake, "rated", cycle="2026-10")
    replace_partition(lake, target, {"rated": pl.DataFrame({"x": [1, 2]})})
    first = store.pointer("rated/cycle=2026-10")
    replace_partition(lake, target, {"rated": pl.DataFrame({"x": [3]})})
    second = store.pointer("rated/cycle=2026-10")
    assert first and second and first[0] != second[0]
    assert not target.exists()  # no link: the pointer is in the bucket
    assert pl.read_parquet(lake_table(lake, "rated", "rated", cycle="2026-10"))["x"].to_list() == [3]
    assert not store.fs.exists(f"{store.root}/.versions/{first[0]}")  # no grace here: the old version is gone
    # a second machine (an empty local cache) reads the same, and a glob across cycles sees every partition
    other = tmp_path / "other" / "lake"
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-11"), {"rated": pl.DataFrame({"x": [4]})})
    files = lake_tables(other, "rated", "rated")
    assert [path.parent.name for path in files] == ["cycle=2026-10", "cycle=2026-11"]
    assert pl.scan_parquet(files, hive_partitioning=True).collect().sort("x").rows() == [
        (3, "2026-10"),
        (4, "2026-11"),
    ]
    # DuckDB reads the store directly too, through the file system registered on a connection
    con = duckdb.connect()
    con.register_filesystem(store.fs)
    assert con.sql(f"select x from read_parquet('s3://{store.root}/.versions/{second[0]}/rated.parquet')").fetchall() == [
        (3,)
    ]


def test_a_writer_with_a_stale_pointer_loses(tmp_path, s3_url):
    _settings(tmp_path, lake_version_grace="0")
    lake = tmp_path / "lake"
    target = partition_dir(lake, "charges", cycle="2026-10")
    # the first version: both writers saw no pointer, If-None-Match lets one create it
    a, b = StagedPartition(lake, target), StagedPartition(lake, target)
    for staged, value in ((a, 1), (b, 2)):
        pl.DataFrame({"x": [value]}).write_parquet(staged.path("charge_lines"))
    a.commit()
    with pytest.raises(LakeConflict, match="another writer"):
        b.commit()
    # a later version: both started from a's pointer, If-Match on its ETag lets one move it
    c, d = StagedPartition(lake, target), StagedPartition(lake, target)
    for staged, value in ((c, 3), (d, 4)):
        pl.DataFrame({"x": [value]}).write_parquet(staged.path("charge_lines"))
    d.commit()
    with pytest.raises(LakeConflict):
        c.commit()
    assert pl.read_parquet(lake_table(lake, "charges", "charge_lines", cycle="2026-10"))["x"].to_list() == [4]
    store = object_store(lake)
    assert store is not None
    versions = store.fs.ls(f"{store.root}/.versions")
    assert [Path(v).name for v in versions] == [d.folder.name]  # the losers' files were removed


CRASHING_WRITER = """
import sys
from pathlib import Path
import polars as pl
from pipeline.lake import partition_dir, replace_partition
lake = Path(sys.argv[1])
replace_partition(lake, partition_dir(lake, "rated", cycle="2026-10"), {"rated": pl.DataFrame({"x": [2]})})
"""


@pytest.mark.parametrize("point", ["lake.version_written", "lake.swapped"])
def test_a_crash_around_the_pointer_leaves_one_whole_version(tmp_path, s3_url, point):
    lake = tmp_path / "lake"
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-10"), {"rated": pl.DataFrame({"x": [1]})})
    env = os.environ | {"CDRBILL_CRASH_AT": point}
    status = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(lake)], env=env, check=False).returncode
    assert status == -9  # killed at the point, as a power cut would
    expected = [1] if point == "lake.version_written" else [2]
    assert pl.read_parquet(lake_table(tmp_path / "reader" / "lake", "rated", "rated", cycle="2026-10"))[
        "x"
    ].to_list() == expected


BILLED = ["usage_files", "mediated_usage", "rated_usage", "account_charges", "invoices"]


def _frame(path: Path) -> pl.DataFrame:
    """A lake table as written, less the wall-clock time a run stamps (``finalized_at``)."""
    frame = pl.read_parquet(path, hive_partitioning=False)
    return frame.drop("finalized_at") if "finalized_at" in frame.columns else frame


def _same_rows(left: pl.DataFrame, right: pl.DataFrame) -> bool:
    con = duckdb.connect()
    con.register("l", left)
    con.register("r", right)
    return not (
        con.sql("select * from l except all select * from r").fetchall()
        or con.sql("select * from r except all select * from l").fetchall()
    )


@pytest.mark.slow
def test_the_sample_cycle_on_s3_bills_as_on_the_local_lake(tmp_path, s3_url, monkeypatch, sample_cycle):
    local, result = sample_cycle
    assert result.success
    monkeypatch.delenv("CDRBILL_LAKE_URL")
    home = stage_sample(tmp_path / "home")
    (home.reference / "settings.toml").write_text(f'lake_url = "{s3_url}"\n', encoding="utf-8")
    assert object_store(home.lake) is not None  # the setting, not the variable, moves this home's lake
    billed = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=BILLED,
        partition_key=SAMPLE_CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    assert billed.success
    assert not (home.lake / RATED).exists() and not (home.lake / INVOICES).exists()  # only the read cache
    for dataset, table in [("mediated", "normalised"), ("mediated", "suspended"), (RATED, "rated"),
                           (RATED, "suspended"), ("charges", "charge_lines")]:  # fmt: skip
        ours = _frame(lake_table(home.lake, dataset, table, cycle=SAMPLE_CYCLE))
        theirs = _frame(lake_table(local.lake, dataset, table, cycle=SAMPLE_CYCLE))
        assert ours.height == theirs.height and _same_rows(ours, theirs), (dataset, table)
        assert ours.height > 0 or table == "suspended"
    ours_folder = lake_partition(home.lake, INVOICES, cycle=SAMPLE_CYCLE)
    theirs_folder = lake_partition(local.lake, INVOICES, cycle=SAMPLE_CYCLE)
    names = sorted(path.name for path in theirs_folder.glob("*.parquet"))
    assert names and sorted(path.name for path in ours_folder.glob("*.parquet")) == names
    for name in names:
        assert _same_rows(_frame(ours_folder / name), _frame(theirs_folder / name)), name
    totals = [_frame(folder / "invoices.parquet")["total_amount"].sum() for folder in (ours_folder, theirs_folder)]
    assert totals[0] == totals[1] and _frame(ours_folder / "invoices.parquet").height == 49


# --- superseded versions kept for a grace, orphans swept, the read cache trimmed (pipeline/lake_upkeep.py)


def _settings(root: Path, **values: str) -> None:
    """The home's ``reference/settings.toml`` beside ``root / "lake"``."""
    (root / "reference").mkdir(parents=True, exist_ok=True)
    text = "".join(f'{name} = "{value}"\n' for name, value in values.items())
    (root / "reference" / "settings.toml").write_text(text, encoding="utf-8")


def _version_files(store, version: str) -> pl.DataFrame:
    """Every Parquet file of one version, read straight from the store (a reader that resolved it earlier)."""
    prefix = f"{store.root}/.versions/{version}"
    frames = [pl.read_parquet(store.fs.cat_file(key)) for key in sorted(store.fs.find(prefix))]
    return pl.concat(frames)


def test_a_reader_holding_the_old_pointer_reads_it_within_the_grace(tmp_path, s3_url):
    _settings(tmp_path, lake_version_grace="1h")
    lake = tmp_path / "lake"
    store = object_store(lake)
    assert store is not None
    target = partition_dir(lake, "rated", cycle="2026-10")
    old = pl.DataFrame({"x": list(range(1000))})
    replace_partition(lake, target, {"rated": old, "suspended": pl.DataFrame({"x": [-1]})})
    resolved = store.pointer("rated/cycle=2026-10")  # a reader on another machine resolves the pointer ...
    assert resolved is not None
    replace_partition(lake, target, {"rated": pl.DataFrame({"x": [7]})})  # ... the partition moves on ...
    # ... and the reader still reads the whole old version, both files
    assert _version_files(store, resolved[0]).sort("x")["x"].to_list() == [-1, *range(1000)]
    assert [version for version, _ in store.retired()] == [resolved[0]]
    assert store.expire(3600) == []  # within the grace: nothing goes
    # past the grace (1 s here), the next writer of the dataset deletes it, another partition's writer included
    _settings(tmp_path, lake_version_grace="1s")
    time.sleep(2.2)
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-11"), {"rated": pl.DataFrame({"x": [8]})})
    assert not store.fs.exists(f"{store.root}/.versions/{resolved[0]}")
    assert store.retired() == []
    assert pl.read_parquet(lake_table(tmp_path / "b" / "lake", "rated", "rated", cycle="2026-10"))["x"].to_list() == [7]


def test_the_sweep_deletes_retired_versions_past_the_grace_never_a_current_one(tmp_path, s3_url):
    _settings(tmp_path, lake_version_grace="1h")
    lake = tmp_path / "lake"
    store = object_store(lake)
    assert store is not None
    target = partition_dir(lake, "charges", cycle="2026-10")
    for value in (1, 2, 3):
        replace_partition(lake, target, {"charge_lines": pl.DataFrame({"x": [value]})})
    live = store.pointer("charges/cycle=2026-10")
    assert live is not None and len(store.retired()) == 2
    assert sweep_lake(lake) == []  # within the grace
    _settings(tmp_path, lake_version_grace="1s")
    time.sleep(2.2)
    listed = sweep_lake(lake, dry_run=True)
    assert sorted(r.kind for r in listed) == ["retired", "retired"] and len(store.fs.ls(f"{store.root}/.versions")) == 3
    assert {r.version for r in sweep_lake(lake)} == {r.version for r in listed}
    assert [Path(v).name for v in store.fs.ls(f"{store.root}/.versions")] == [live[0]]
    # a retirement marker naming the current version (never made by a writer): only the marker goes
    store.retire(live[0])
    time.sleep(2.2)
    assert sweep_lake(lake) == [] and store.retired() == []
    assert pl.read_parquet(lake_table(tmp_path / "b" / "lake", "charges", "charge_lines", cycle="2026-10"))[
        "x"
    ].to_list() == [3]


@pytest.mark.parametrize("point", ["lake.version_written", "lake.swapped"])
def test_a_killed_writers_version_is_swept_the_current_one_never(tmp_path, s3_url, point, monkeypatch, capsys):
    home = tmp_path / "home"
    _settings(home, lake_version_grace="1s")
    lake = home / "lake"
    store = object_store(lake)
    assert store is not None
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-10"), {"rated": pl.DataFrame({"x": [1]})})
    env = os.environ | {"CDRBILL_CRASH_AT": point}
    assert subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(lake)], env=env, check=False).returncode == -9
    live = store.pointer("rated/cycle=2026-10")
    assert live is not None
    # killed before the pointer's PUT: the new version is the orphan; after it: the old one (never retired)
    assert len(store.fs.ls(f"{store.root}/.versions")) == 2
    time.sleep(2.2)
    monkeypatch.setenv("CDRBILL_HOME", str(home))
    assert main(["lake", "sweep", "--dry-run"]) == 0
    assert "would remove orphan" in capsys.readouterr().out
    assert len(store.fs.ls(f"{store.root}/.versions")) == 2
    assert main(["lake", "sweep"]) == 0
    assert "lake sweep: 1 version(s) removed" in capsys.readouterr().out
    assert [Path(v).name for v in store.fs.ls(f"{store.root}/.versions")] == [live[0]]
    expected = [1] if point == "lake.version_written" else [2]
    assert pl.read_parquet(lake_table(tmp_path / "b" / "lake", "rated", "rated", cycle="2026-10"))["x"].to_list() == expected


def test_an_orphan_within_the_grace_stays(tmp_path, s3_url):
    _settings(tmp_path, lake_version_grace="1h")
    lake = tmp_path / "lake"
    store = object_store(lake)
    assert store is not None
    staged = StagedPartition(lake, partition_dir(lake, "rated", cycle="2026-10"))
    pl.DataFrame({"x": [1]}).write_parquet(staged.path("rated"))
    store.fs.put_file(str(staged.path("rated")), f"{store.root}/.versions/{staged.folder.name}/rated.parquet")
    assert sweep_lake(lake) == []  # a writer that may still be at work: younger than the grace
    assert store.fs.exists(f"{store.root}/.versions/{staged.folder.name}/rated.parquet")


READER = """
import sys
from pathlib import Path
import polars as pl
from pipeline.lake import lake_table
lake = Path(sys.argv[1])
for _ in range(int(sys.argv[2])):
    for cycle in ("2026-10", "2026-11"):
        frame = pl.read_parquet(lake_table(lake, "rated", "rated", cycle=cycle))
        assert frame["x"].to_list() == list(range(frame.height)) and frame.height >= 1000, cycle
"""


def _cached(lake: Path) -> set[str]:
    return {p.name for p in (lake / ".cache").iterdir() if not p.name.startswith(".")}


def test_the_read_cache_keeps_its_bound_and_never_evicts_a_current_or_held_version(tmp_path, s3_url):
    _settings(tmp_path, lake_version_grace="1h")
    lake = tmp_path / "lake"
    for cycle, rows in (("2026-10", 20_000), ("2026-11", 30_000)):
        frame = pl.DataFrame({"x": list(range(rows))})
        replace_partition(lake, partition_dir(lake, "rated", cycle=cycle), {"rated": frame})
    reader = tmp_path / "reader" / "lake"  # another machine: its own cache, bound set below
    _settings(tmp_path / "reader", lake_cache_bytes="1GB")
    read = [sys.executable, "-c", READER, str(reader), "1"]
    assert subprocess.run(read, check=False).returncode == 0  # caches both current versions, then exits
    first = _cached(reader)
    assert len(first) == 2
    # this process resolves the October version, then the partition moves on
    held = lake_table(reader, "rated", "rated", cycle="2026-10")
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-10"),
                      {"rated": pl.DataFrame({"x": list(range(25_000))})})  # fmt: skip
    _settings(tmp_path / "reader", lake_cache_bytes="1B")  # far below what the current versions need
    assert subprocess.run(read, check=False).returncode == 0
    # the October version this process holds stays (another process trimmed), and so do the two current ones
    assert first <= _cached(reader) and len(_cached(reader)) == 3 and held.exists()
    # once nothing holds it, the superseded version is the one evicted; the current ones stay whatever the bound
    store = object_store(reader)
    assert store is not None
    key = held.parent.parent.parent.name
    os.close(store.reads.held.pop(key))
    entries = store.reads.entries()
    current = sum(entry.size for entry in entries if entry.key != key)
    assert store.trim_cache(bound=sum(entry.size for entry in entries)) == []  # a bound that holds them all
    evicted = store.trim_cache(bound=current)  # a bound that holds the current versions only
    assert [r.version for r in evicted] == [f"rated/cycle=2026-10 {key}"] and key not in _cached(reader)
    assert sum(entry.size for entry in store.reads.entries()) <= current and len(_cached(reader)) == 2


def test_two_processes_sharing_a_cache_under_a_tiny_bound_read_whole_versions(tmp_path, s3_url):
    lake = tmp_path / "lake"
    for cycle, rows in (("2026-10", 5_000), ("2026-11", 6_000)):
        frame = pl.DataFrame({"x": list(range(rows))})
        replace_partition(lake, partition_dir(lake, "rated", cycle=cycle), {"rated": frame})
    reader = tmp_path / "reader" / "lake"
    _settings(tmp_path / "reader", lake_cache_bytes="1B", lake_version_grace="0")
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(reader), "5"]) for _ in range(2)]
    for cycle, rows in (("2026-10", 7_000), ("2026-11", 8_000), ("2026-10", 9_000)):  # versions move meanwhile
        frame = pl.DataFrame({"x": list(range(rows))})
        replace_partition(lake, partition_dir(lake, "rated", cycle=cycle), {"rated": frame})
    assert [process.wait(timeout=120) for process in readers] == [0, 0]
    assert not [p for p in (reader / ".cache").iterdir() if p.name.startswith(".")]  # no copy or eviction left


def test_what_a_reader_killed_mid_copy_leaves_in_the_cache_is_swept_a_live_copy_never(tmp_path, s3_url):
    lake = tmp_path / "lake"
    frames = {"rated": pl.DataFrame({"x": [1]}), "suspended": pl.DataFrame({"x": [0]})}
    replace_partition(lake, partition_dir(lake, "rated", cycle="2026-10"), frames)
    reader = tmp_path / "reader" / "lake"
    env = os.environ | {"CDRBILL_CRASH_AT": "lake.cache_copied_file"}  # killed after the version's first file
    assert subprocess.run([sys.executable, "-c", READER, str(reader), "1"], env=env, check=False).returncode == -9
    cache = reader / ".cache"
    (killed,) = [folder for folder in cache.iterdir() if folder.name.startswith(".")]
    assert len(list(killed.rglob("*.parquet"))) == 1 and not _cached(reader)
    store = object_store(reader)
    assert store is not None
    live, copying = store.reads.copying()  # a copy at work in this process
    evicted = cache / f"{EVICTED}{uuid.uuid4().hex}"  # an eviction killed between its rename and its removal
    (evicted / "rated" / "cycle=2026-09").mkdir(parents=True)
    # the interrupted eviction goes at once; the killed copy only once it is old enough to be no copy at work
    os.utime(killed)  # (its last file written just now, whatever the machine's load)
    assert [r.version for r in sweep_lake(reader)] == [f"{evicted.name} (left by a killed reader)"]
    time.sleep(INTERRUPTED_AFTER_S + 0.5)
    assert [r.version for r in sweep_lake(reader)] == [f"{killed.name} (left by a killed reader)"]
    assert live.is_dir() and not killed.exists() and not evicted.exists()  # the live copy is locked: kept
    os.close(copying)
    assert pl.read_parquet(lake_table(reader, "rated", "suspended", cycle="2026-10"))["x"].to_list() == [0]
