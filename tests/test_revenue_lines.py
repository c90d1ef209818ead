"""The warehouse table ``revenue_lines`` (every invoice line with its account's state, agent and plan and its
revenue class) and the revenue reports that read it: each report gives exactly the rows the join it replaced
gave, on the sample cycle."""

from decimal import Decimal

import duckdb
import pytest
from conftest import SAMPLE_CYCLE

from pipeline.reports import find_report, run_report

# the join each of revenue_by_agent / _plan / _state repeated before revenue_lines, kept here as the expectation
FORMER_JOIN = """
    with cycle_lines as (
        select invoice_lines.*, accounts.service_state, accounts.agent_id, accounts.plan_id
        from invoice_lines left join accounts using (account_id)
        where invoice_lines.cycle = $cycle
    )
    select {key}{extra},
        count(distinct cycle_lines.account_id) as accounts,
        count(distinct cycle_lines.invoice_number) as invoices,
        sum(amount) filter (where section not in ('taxes', 'carrier_fees'))::decimal(18, 2) as charges,
        coalesce(sum(amount) filter (where section in ('taxes', 'carrier_fees')), 0)::decimal(18, 2)
            as taxes_and_fees,
        sum(amount)::decimal(18, 2) as billed
    from cycle_lines {join}
    group by all order by billed desc, 1
"""
FORMER = {
    "revenue_by_agent": ("cycle_lines.agent_id", ", agents.agent_name", "left join agents using (agent_id)"),
    "revenue_by_plan": ("cycle_lines.plan_id", ", plans.plan_name", "left join plans using (plan_id)"),
    "revenue_by_state": ("cycle_lines.service_state", "", ""),
}


def test_revenue_lines_is_every_invoice_line_with_its_account(sample_cycle):
    home, _ = sample_cycle
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        lines, total, unmatched = con.execute(
            "select count(*), sum(amount), count(*) filter (where service_state is null) from revenue_lines"
        ).fetchall()[0]
        invoice_lines = con.execute("select count(*) from invoice_lines").fetchall()[0][0]
        taxes = con.execute("select sum(amount) from revenue_lines where is_tax_or_fee").fetchall()[0][0]
    # the sample cycle: 49 invoices, 1881.77 USD, every line's account in the reference data
    assert (lines, total, unmatched) == (invoice_lines, Decimal("1881.77"), 0)
    assert taxes > 0


@pytest.mark.parametrize("name", sorted(FORMER))
def test_revenue_reports_read_revenue_lines_and_give_the_same_rows(sample_cycle, name):
    home, _ = sample_cycle
    report = find_report(name)
    assert "revenue_lines" in report.sql and "invoice_lines" not in report.sql
    key, extra, join = FORMER[name]
    with duckdb.connect(str(home.warehouse_db), read_only=True) as con:
        rows = run_report(con, report, {"cycle": SAMPLE_CYCLE}).rows()
        expected = con.execute(
            FORMER_JOIN.format(key=key, extra=extra, join=join), {"cycle": SAMPLE_CYCLE}
        ).fetchall()
    assert rows == expected and sum(row[-1] for row in rows) == Decimal("1881.77")
