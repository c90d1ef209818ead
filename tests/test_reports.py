"""The preset reports and ad-hoc SQL on the sample cycle's published warehouse: every report runs and gives the
columns its header names; reports that should agree do; parameters are bound, never pasted; the warehouse
connection refuses writes and file access; the CLI prints table / CSV / Markdown and writes Parquet."""

from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.cli import main
from pipeline.adhoc import QueryRefused, WarehouseMissing, open_warehouse, run_query
from pipeline.reports import ReportError, bind_parameters, catalogue, find_report, parse_report, run_report

pytestmark = pytest.mark.slow

CYCLE = "2026-10"
REGISTER_TOTAL = Decimal("1881.77")  # the sample cycle: 49 invoices (make demo's summary)
REPORTS = catalogue()


@pytest.fixture(scope="module")
def warehouse(sample_cycle):
    home, _ = sample_cycle
    con = open_warehouse(home.warehouse_db)
    yield con
    con.close()


def report(con: duckdb.DuckDBPyConnection, name: str, **params: str) -> pl.DataFrame:
    return run_report(con, REPORTS[name], {"cycle": CYCLE, **params})


def total(frame: pl.DataFrame, column: str) -> Decimal:
    return sum((v for v in frame[column].to_list() if v is not None), Decimal(0))


def test_the_catalogue_has_forty_reports_with_headers():
    assert len(REPORTS) >= 40
    for r in REPORTS.values():
        assert r.title and r.question.endswith(("?", ".")) and r.columns, r.name
        assert r.parameters[0].name == "cycle" and r.parameters[0].type == "varchar", r.name
        assert "$cycle" in r.sql, f"{r.name} does not bind its cycle"


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_runs_on_the_sample_cycle(warehouse, name):
    extra = {"account": "ACC-0001"} if any(p.name == "account" for p in REPORTS[name].parameters) else {}
    frame = report(warehouse, name, **extra)
    assert tuple(frame.columns) == REPORTS[name].columns


def test_revenue_reports_sum_to_the_invoice_register(warehouse):
    register = report(warehouse, "invoice_register")
    assert register.height == 49 and total(register, "total_amount") == REGISTER_TOTAL
    # each row of the register is the sum of its sections
    sections = ["recurring", "one_time", "usage", "discounts", "taxes_and_fees", "adjustments", "late_fees"]
    for row in register.iter_rows(named=True):
        assert sum(row[s] for s in sections) == row["total_amount"], row["invoice_number"]
    for name in ("revenue_by_state", "revenue_by_agent", "revenue_by_plan", "revenue_by_service",
                 "revenue_by_jurisdiction", "invoice_sections"):  # fmt: skip
        column = "amount" if name == "invoice_sections" else "billed"
        assert total(report(warehouse, name), column) == REGISTER_TOTAL, name
    assert total(report(warehouse, "arpu_by_account_type"), "billed") == REGISTER_TOTAL
    assert total(report(warehouse, "agent_sales"), "billed") == REGISTER_TOTAL
    assert report(warehouse, "invoice_reconciliation").height == 0  # every total = Σ its lines
    assert report(warehouse, "cycle_summary")["billed"].to_list() == [REGISTER_TOTAL]


def test_tax_liability_equals_the_tax_lines(warehouse):
    tax_lines = run_query(
        warehouse,
        "select sum(amount) from invoice_lines where cycle = $cycle and section = 'taxes'",
        {"cycle": CYCLE},
    ).item()
    assert tax_lines == Decimal("325.99")  # Σ the 145 tax lines of the sample cycle
    assert total(report(warehouse, "tax_liability_by_jurisdiction"), "tax_amount") == tax_lines
    assert total(report(warehouse, "tax_liability_by_type"), "tax_amount") == tax_lines
    register = report(warehouse, "invoice_register")
    fees = total(report(warehouse, "carrier_fees"), "amount")
    assert total(register, "taxes_and_fees") == tax_lines + fees  # 325.99 + 33.00 recovery fees


def test_ar_aging_equals_open_balances(warehouse):
    aging = report(warehouse, "ar_aging")
    due = total(report(warehouse, "balances_due"), "amount_due")
    assert total(aging, "total_open") == due
    buckets = ["current", "days_1_30", "days_31_60", "days_61_90", "days_over_90"]
    for row in aging.iter_rows(named=True):
        assert sum(row[b] for b in buckets) == row["total_open"]


def test_mediation_reports_account_for_every_record(warehouse):
    flow = report(warehouse, "record_flow").row(0, named=True)
    # 940 in = 863 rated + 9 suspended + 7 duplicate + 61 discarded
    assert (flow["records_in"], flow["rated"], flow["suspended"], flow["duplicates"], flow["discarded"]) == (
        940, 863, 9, 7, 61,
    )  # fmt: skip
    assert flow["unaccounted"] == 0
    assert set(report(warehouse, "mediation_outcomes")["unaccounted"].to_list()) == {0}
    assert total(report(warehouse, "suspense_by_reason_and_age"), "records") == 9
    # the sample cycle was never recycled (tests/test_recycling.py runs the report on recycled records)
    assert report(warehouse, "recycled_suspense").height == 0
    files = report(warehouse, "files_per_source")
    assert (int(files["files"].sum()), int(files["duplicate_files"].sum())) == (5, 1)
    assert report(warehouse, "usage_by_hour").height == 24
    assert int(report(warehouse, "usage_by_hour")["calls"].sum()) == 863  # every rated call in one hour


def test_parameters_are_bound_never_pasted(warehouse):
    lines = report(warehouse, "account_invoice_lines", account="ACC-0001")
    assert lines.height > 0
    # pasted into the SQL, this value would select every account's lines
    hostile = "ACC-0001' or '1'='1"
    assert report(warehouse, "account_invoice_lines", account=hostile).height == 0
    assert (
        run_report(
            warehouse, REPORTS["invoice_register"], {"cycle": "2026-10'; drop table invoices; --"}
        ).height
        == 0
    )
    assert run_query(warehouse, "select count(*) as n from invoices")["n"].to_list() == [49]
    with pytest.raises(ReportError, match="top is of type integer"):
        bind_parameters(REPORTS["top_talkers"], {"cycle": CYCLE, "top": "10; drop table invoices"})
    with pytest.raises(ReportError, match="no parameter"):
        bind_parameters(REPORTS["top_talkers"], {"cycle": CYCLE, "evil": "x"})
    with pytest.raises(ReportError, match="no report"):
        find_report("../../etc/passwd")


def test_a_header_without_title_is_refused(tmp_path):
    path = tmp_path / "broken.sql"
    path.write_text("-- question: what?\n-- columns: a\nselect 1 as a\n", encoding="utf-8")
    with pytest.raises(ReportError, match="lacks title"):
        parse_report(path)


def test_adhoc_sql_is_read_only_and_cannot_touch_files(warehouse, tmp_path):
    leak = tmp_path / "leak.csv"
    for statement, reason in [
        ("delete from invoices", "read-only"),
        ("create table notes as select 1", "read-only"),
        (f"copy invoices to '{leak}'", "cannot read or write files"),
        (f"attach '{tmp_path / 'other.duckdb'}' as other", "cannot read or write files"),
        ("select * from read_csv('/etc/passwd')", "cannot read or write files"),
        ("set enable_external_access = true", "locked"),
    ]:
        with pytest.raises(QueryRefused, match=reason):
            run_query(warehouse, statement)
    assert not leak.exists() and not (tmp_path / "other.duckdb").exists()
    assert run_query(warehouse, "select count(*) as n from invoices")["n"].to_list() == [49]


def test_cli_sql_and_reports(sample_cycle, tmp_path, capsys):
    home, _ = sample_cycle
    base = ["--home", str(home.root)]
    assert main([*base, "sql", "select count(*) as invoices from invoices", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "invoices\n49\n"
    assert main([*base, "sql", "insert into plans select * from plans"]) == 2
    assert "read-only" in capsys.readouterr().err
    query = tmp_path / "q.sql"
    query.write_text(
        "select account_id, total_amount from invoices order by total_amount desc limit 2", "utf-8"
    )
    assert main([*base, "sql", "--file", str(query), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| account_id | total_amount |\n|---|---|\n") and out.count("\n") == 4
    assert main([*base, "report", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in REPORTS)
    parquet = tmp_path / "register.parquet"
    args = [
        *base,
        "report",
        "run",
        "invoice_register",
        "--cycle",
        CYCLE,
        "--format",
        "parquet",
        "--out",
        str(parquet),
    ]
    assert main(args) == 0
    assert pl.read_parquet(parquet)["total_amount"].sum() == REGISTER_TOTAL
    assert main([*base, "report", "run", "top_talkers", "--cycle", CYCLE, "--param", "top=3"]) == 0
    assert "ACC-0034" in capsys.readouterr().out  # 88.2 minutes: the sample's top talker
    assert main([*base, "report", "run", "top_talkers", "--cycle", CYCLE, "--format", "parquet"]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_no_warehouse_yet_is_a_clear_error(tmp_path):
    with pytest.raises(WarehouseMissing, match="run a bill cycle first"):
        open_warehouse(Path(tmp_path / "warehouse.duckdb"))
