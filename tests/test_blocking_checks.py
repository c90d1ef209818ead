"""A failed blocking check stops the bill run before anything downstream is billed."""

import dagster as dg
import polars as pl
import pytest

from assets.definitions import defs
from assets.resources import CdrbillHome
from pipeline.lake import partition_dir, replace_partition
from pipeline.mediation import MEDIATED
from tests.conftest import SAMPLE_CYCLE

pytestmark = pytest.mark.slow


def test_a_lost_record_blocks_billing(sample_home):
    resources = {"cdrbill": CdrbillHome(root=str(sample_home.root))}
    assets = list(defs.assets or [])
    upstream = dg.materialize(assets, selection=["usage_files", "mediated_usage"],  # type: ignore[arg-type]
                              partition_key=SAMPLE_CYCLE, resources=resources)  # fmt: skip
    assert upstream.success
    # a record goes missing between mediation and rating
    folder = partition_dir(sample_home.lake, MEDIATED, cycle=SAMPLE_CYCLE)
    streams = {name: pl.read_parquet(folder / f"{name}.parquet") for name in ("normalised", "suspended",
                                                                               "duplicate", "discarded")}  # fmt: skip
    streams["normalised"] = streams["normalised"].slice(1)
    replace_partition(sample_home.lake, folder, streams)

    downstream = dg.materialize(
        assets,  # type: ignore[arg-type]
        selection="rated_usage*",
        partition_key=SAMPLE_CYCLE,
        resources=resources,
        raise_on_error=False,
    )
    checks = {c.check_name: c.passed for c in downstream.get_asset_check_evaluations()}
    assert checks == {"every_record_accounted_for": False}
    materialized = {e.asset_key.to_user_string() for e in downstream.get_asset_materialization_events()}
    assert materialized == {"rated_usage"}  # nothing was billed, numbered or sent
    assert not (sample_home.lake / "invoices").exists()
