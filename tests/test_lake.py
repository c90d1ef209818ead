"""Lake partitions are swapped in whole: readers see the old version or the new one, never half."""

import os

import polars as pl
import pytest

from pipeline.lake import lake_tables, partition_dir, replace_partition


def test_replace_partition_swaps_versions_and_removes_the_old(tmp_path):
    # no grace: the old version goes with the swap (a grace keeps it a while: tests/test_lake_upkeep.py)
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "settings.toml").write_text('lake_version_grace = "0"\n', encoding="utf-8")
    lake = tmp_path / "lake"
    target = partition_dir(lake, "rated", cycle="2026-10")
    assert not target.exists()
    assert replace_partition(lake, target, {"rated": pl.DataFrame({"x": [1, 2]})}) == {"rated": 2}
    first_version = os.path.realpath(target)
    replace_partition(lake, target, {"rated": pl.DataFrame({"x": [3]})})
    assert pl.read_parquet(target / "rated.parquet")["x"].to_list() == [3]
    assert not os.path.exists(first_version)
    assert pl.scan_parquet(lake / "rated" / "*" / "rated.parquet", hive_partitioning=True).collect()[
        "cycle"
    ].to_list() == ["2026-10"]


def test_a_failed_write_leaves_the_previous_partition(tmp_path):
    lake = tmp_path / "lake"
    target = partition_dir(lake, "rated", cycle="2026-10")
    replace_partition(lake, target, {"rated": pl.DataFrame({"x": [1]})})

    class Exploding(pl.DataFrame):
        def write_parquet(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_partition(lake, target, {"rated": pl.DataFrame({"x": [2]}), "other": Exploding({"y": [1]})})
    assert pl.read_parquet(target / "rated.parquet")["x"].to_list() == [1]


def test_a_glob_across_partitions_skips_a_link_a_killed_swap_left(tmp_path):
    lake = tmp_path / "lake"
    target = partition_dir(lake, "mediated", cycle="2026-10")
    replace_partition(lake, target, {"normalised": pl.DataFrame({"x": [1]})})
    # a kill between the new link and its rename leaves ``.cycle=2026-10.<uuid>.link`` beside the partition
    os.symlink(os.path.realpath(target), target.parent / ".cycle=2026-10.0123.link")
    assert lake_tables(lake, "mediated", "normalised") == [target / "normalised.parquet"]
