"""The warehouse publishes on a partial lake: each lake dataset a stage has not written yet becomes an empty
table with the real dataset's columns (pipeline/lake_fallbacks.py) — tested on a home where only mediation ran,
and each fallback compared column by column with the sample cycle's real files."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import SAMPLE_CYCLE

from assets.resources import CdrbillHome
from pipeline.lake_fallbacks import LAKE_DATASETS, dataset_sql
from pipeline.reference import load_reference
from pipeline.warehouse import publish_warehouse


def _columns(sql: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in duckdb.sql(f"describe {sql}").fetchall()]


@pytest.mark.parametrize("name", sorted(LAKE_DATASETS))
def test_each_fallback_has_the_columns_of_the_real_dataset(sample_cycle, tmp_path: Path, name: str) -> None:
    home, _ = sample_cycle
    real = dataset_sql(home.lake, name)
    assert "read_parquet" in real  # the sample cycle wrote every dataset
    empty = dataset_sql(tmp_path / "no-lake", name)
    assert "where false" in empty
    assert _columns(empty) == _columns(real)
    assert duckdb.sql(empty).fetchall() == []


def test_publish_on_a_home_where_only_mediation_ran(sample_home) -> None:
    from assets.definitions import defs

    result = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=dg.AssetSelection.assets("usage_files", "mediated_usage"),
        partition_key=SAMPLE_CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(sample_home.root))},
    )
    assert result.success
    datasets = sorted(p.name for p in sample_home.lake.iterdir() if not p.name.startswith("."))
    assert datasets == ["mediated", "usage_records"]
    counts = publish_warehouse(sample_home, load_reference(sample_home.reference)).counts
    # the sample month: 940 records in 5 files (one refused as a duplicate file): 940 loaded usage records;
    # mediation alone: 7 duplicates, 61 discarded; no rating, no bill run, no commissions yet
    assert counts["usage_records"] == 940
    assert (counts["duplicates"], counts["discarded"]) == (7, 61)
    assert counts["rated_usage"] == counts["commission_lines"] == counts["agent_statements"] == 0
    assert counts["invoices"] == counts["invoice_lines"] == 0
    with duckdb.connect(str(sample_home.warehouse_db), read_only=True) as con:
        suspense = con.execute("select stage, count(*) from suspense group by all order by 1").fetchall()
        columns = [row[0] for row in con.execute("describe rated_usage").fetchall()]
    assert [stage for stage, _ in suspense] == ["mediation"]  # no rating suspense before rating ran
    assert "charge_amount" in columns and "raw" not in columns  # the real table's columns, empty
