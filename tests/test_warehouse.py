"""Publishing the warehouse never waits for analysts: an open read-only connection keeps its snapshot while
a new warehouse is swapped in, and new connections see the new one whole. Its tables are the documented,
masked interface of docs/WAREHOUSE.md."""

import duckdb
import polars as pl
import pytest

from pipeline.home import SAMPLE_DIR
from pipeline.reference import load_reference
from pipeline.warehouse import publish_warehouse
from pipeline.warehouse_dictionary import DOC_PATH, TABLE_NOTES, render_dictionary, warehouse_columns

pytestmark = pytest.mark.slow

# the list: files, usage events, suspense, duplicates, rated events, accounts, service numbers, agents,
# plans, invoices, invoice lines, taxes, adjustments, disputes, payments, deliveries, commissions, file
# sequences, the suspense reason catalogue, rerate deltas
REQUIRED = {
    "usage_files", "usage_records", "suspense", "duplicates", "rated_usage", "accounts", "service_numbers",
    "agents", "plans", "invoices", "invoice_lines", "taxes", "tax_lines", "adjustments", "disputes", "payments",
    "deliveries", "commission_lines", "agent_statements", "file_sequences", "suspense_reasons", "rerate_events",
    "rerate_accounts",
}  # fmt: skip


def test_publishing_while_an_analyst_reads(sample_cycle):
    home, _ = sample_cycle
    analyst = duckdb.connect(str(home.warehouse_db), read_only=True)
    try:
        query = "select count(*), sum(total_amount) from invoices"
        before = analyst.execute(query).fetchall()
        old_published = analyst.execute("select published_at from published").fetchall()
        tables = publish_warehouse(home, load_reference(home.reference)).counts  # the analyst is still connected
        # the analyst keeps querying its snapshot, every table of it, after the swap
        assert analyst.execute(query).fetchall() == before
        assert analyst.execute("select count(*) from rated_usage").fetchall() == [(863,)]
        assert analyst.execute("select published_at from published").fetchall() == old_published
    finally:
        analyst.close()
    assert tables["invoices"] == 49 and tables["rated_usage"] == 863
    with duckdb.connect(str(home.warehouse_db), read_only=True) as fresh:
        assert fresh.execute(query).fetchall() == before
        assert fresh.execute("select published_at from published").fetchall() != old_published  # the new file
        assert not list(home.root.glob(".warehouse.*"))  # no staging file left behind


def test_the_documented_tables_are_there_and_the_dictionary_matches_them(sample_cycle):
    home, _ = sample_cycle
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        tables = warehouse_columns(con)
        doc = render_dictionary(con)
    assert set(tables) >= REQUIRED, REQUIRED - set(tables)
    assert set(tables) <= set(TABLE_NOTES), "describe the new table in pipeline/warehouse_dictionary.py"
    assert "|  |" not in doc, "a column without a meaning: add it to COLUMN_NOTES"
    assert DOC_PATH.read_text(encoding="utf-8") == doc, (
        "docs/WAREHOUSE.md differs from the warehouse: python -m pipeline.warehouse_dictionary "
        "<home>/warehouse.duckdb > docs/WAREHOUSE.md"
    )


def test_accounts_are_masked_and_suspense_has_reason_and_age(sample_cycle):
    home, _ = sample_cycle
    accounts_csv = pl.read_csv(SAMPLE_DIR / "reference" / "accounts.csv", infer_schema=False)
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        columns = {c for c, _ in warehouse_columns(con)["accounts"]}
        masked = con.execute("select account_id, account_number_masked from accounts").fetchall()
        suspense = con.execute("select reason, age_days, start_utc from suspense").fetchall()
        catalogue = {r[0] for r in con.execute("select code from suspense_reasons").fetchall()}
    assert not columns & {"tax_id", "email", "billing_address_line1"}
    assert len(masked) == accounts_csv.height
    # ACC-0001 → ****0001: four characters kept, the rest hidden
    assert all(m == "****" + a[-4:] and a not in m for a, m in masked)
    assert len(suspense) == 9 and all(reason in catalogue for reason, _, _ in suspense)
    # a record with a call time has an age; one whose time was unreadable (BAD_TIMESTAMP) has none
    assert all((age is None) == (start is None) and (age is None or age >= 0) for _, age, start in suspense)
    assert any(age is not None for _, age, _ in suspense)


def test_a_build_over_its_memory_limit_fails_and_keeps_the_published_warehouse(sample_cycle):
    """The build runs under ``memory_limit`` (at 10M CDRs it held ~3.9 GB unbounded): a limit too small for it
    stops the build with DuckDB's out-of-memory error, and the published warehouse stays as it was, whole."""
    home, _ = sample_cycle
    before = home.warehouse_db.read_bytes()
    with pytest.raises(duckdb.OutOfMemoryException):
        publish_warehouse(home, load_reference(home.reference), memory_limit="1MB")
    assert home.warehouse_db.read_bytes() == before
    assert not list(home.root.glob(".warehouse.*"))
