"""Publishing the warehouse never waits for analysts: an open read-only connection keeps its snapshot while
a new warehouse is swapped in, and new connections see the new one whole."""

import duckdb
import pytest

from pipeline.reference import load_reference
from pipeline.warehouse import publish_warehouse

pytestmark = pytest.mark.slow


def test_publishing_while_an_analyst_reads(sample_cycle):
    home, _ = sample_cycle
    analyst = duckdb.connect(str(home.warehouse_db), read_only=True)
    try:
        before = analyst.execute("select count(*), sum(total_amount) from invoices").fetchall()
        tables = publish_warehouse(home, load_reference(home.reference))  # the analyst is still connected
        assert analyst.execute("select count(*), sum(total_amount) from invoices").fetchall() == before
    finally:
        analyst.close()
    assert tables["invoices"] == 49 and tables["rated_usage"] == 863
    with duckdb.connect(str(home.warehouse_db), read_only=True) as fresh:
        assert fresh.execute("select count(*), sum(total_amount) from invoices").fetchall() == before
        assert not list(home.root.glob(".warehouse.*"))  # no staging file left behind
