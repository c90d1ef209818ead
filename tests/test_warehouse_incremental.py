"""Publishing the warehouse again reads from the lake only what changed: the parts of the large tables (a loaded
file's usage records, a cycle's rated usage or rerate events) whose lake versions did not change are kept from
the published warehouse, and the result equals a full build's, row for row (pipeline/warehouse_parts.py)."""

import duckdb
import pytest
from delivery_fixtures import copy_home
from warehouse_fixtures import warehouse_rows

from assets.cli import main
from pipeline.reference import load_reference
from pipeline.warehouse import publish_warehouse

pytestmark = pytest.mark.slow


def test_an_unchanged_lake_is_kept_and_a_rerated_cycle_is_read_again(sample_cycle, tmp_path):
    home = copy_home(sample_cycle[0], tmp_path / "home")
    reference = load_reference(home.reference)
    # the copy's partitions are new versions (their links re-pointed): every part is read again
    moved = publish_warehouse(home, reference)
    assert (moved.mode, moved.parts_kept) == ("incremental", 0) and moved.parts_read > 1
    again = publish_warehouse(home, reference)
    assert (again.mode, again.parts_read, again.parts_kept) == ("incremental", 0, moved.parts_read)
    assert again.counts == moved.counts
    before = warehouse_rows(home.warehouse_db)

    # a rate fix (UK fixed 0.09 → 0.15 a minute) and the final cycle rerated: its rated partition is a new version
    cards = home.reference / "rate_cards.csv"
    cards.write_text(
        cards.read_text().replace("RC-STD,44,,0,United Kingdom,0.0900", "RC-STD,44,,0,United Kingdom,0.1500")
    )
    assert main(["--home", str(home.root), "rerate", "--cycle", "2026-10"]) == 0
    rerated = publish_warehouse(home, load_reference(home.reference))
    # the rated cycle and its new rerate report; no loaded file changed
    assert (rerated.mode, rerated.parts_read, rerated.why_full) == ("incremental", 2, "")
    incremental = warehouse_rows(home.warehouse_db)
    assert incremental["rated_usage"] != before["rated_usage"]  # the new charges, not the kept ones
    assert incremental["usage_records"] == before["usage_records"] and incremental["rerate_events"]

    full = publish_warehouse(home, load_reference(home.reference), full=True)
    assert (full.mode, full.parts_kept, full.why_full) == ("full", 0, "asked for") and full.counts == rerated.counts
    assert warehouse_rows(home.warehouse_db) == incremental
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        assert con.execute("select publication from published").fetchall() == [("full",)]


def test_a_changed_part_that_no_longer_fits_the_kept_table_makes_the_publication_full(sample_cycle, tmp_path):
    """A changed part whose columns the kept table lacks (a column a newer rating writes) is not forced into it:
    the whole warehouse is built again, so its tables are those a full build gives."""
    home = copy_home(sample_cycle[0], tmp_path / "home")
    reference = load_reference(home.reference)
    publish_warehouse(home, reference)
    expected = warehouse_rows(home.warehouse_db)
    with duckdb.connect(str(home.warehouse_db)) as con:  # the published table from before the column existed
        con.execute("alter table rated_usage drop column destination")
        con.execute("update publication_parts set fingerprint = 'older' where table_name = 'rated_usage'")
    publication = publish_warehouse(home, reference)
    assert (publication.mode, publication.parts_kept) == ("full", 0)
    assert publication.why_full == "a changed part does not fit the kept table (rated_usage: [('destination', 'VARCHAR')])"
    assert warehouse_rows(home.warehouse_db) == expected


def test_billing_ops_ask_for_a_full_publication_in_the_run_config(sample_cycle, tmp_path):
    """The asset publishes part by part; ``full: true`` in its run config (the launchpad) reads every part again."""
    import dagster as dg

    from assets.resources import CdrbillHome
    from assets.warehouse import warehouse

    home = copy_home(sample_cycle[0], tmp_path / "home")
    parts = publish_warehouse(home, load_reference(home.reference)).parts_read  # the copy's parts read once
    for full, mode, read in ((False, "incremental", 0), (True, "full", parts)):
        result = dg.materialize(
            [warehouse],
            partition_key="2026-10",
            resources={"cdrbill": CdrbillHome(root=str(home.root))},
            run_config={"ops": {"warehouse": {"config": {"full": full}}}},
        )
        metadata = result.asset_materializations_for_node("warehouse")[0].metadata
        assert metadata["publication"].value == mode
        assert (metadata["parts_read"].value, metadata["parts_kept"].value) == (read, parts - read)
        assert metadata["why_full"].value == ("asked for" if full else "(incremental)")


def test_a_warehouse_published_before_the_parts_is_built_again_whole(sample_cycle, tmp_path):
    """A published warehouse without ``publication_parts`` (from before this rule) cannot say what its rows came
    from: the next publication is full, the one after it keeps every part."""
    home = copy_home(sample_cycle[0], tmp_path / "home")
    reference = load_reference(home.reference)
    publish_warehouse(home, reference)
    expected = warehouse_rows(home.warehouse_db)
    with duckdb.connect(str(home.warehouse_db)) as con:
        con.execute("drop table publication_parts")
    first = publish_warehouse(home, reference)
    assert (first.mode, first.parts_kept) == ("full", 0)
    assert first.why_full == "the published warehouse does not name its parts (publication_parts)"
    assert warehouse_rows(home.warehouse_db) == expected
    again = publish_warehouse(home, reference)
    assert (again.mode, again.parts_read, again.parts_kept) == ("incremental", 0, first.parts_read)
