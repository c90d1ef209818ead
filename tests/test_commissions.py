"""Agent commissions from the finalised lake: the most specific commission plan, on billed revenue or on the
revenue share of payments collected, never on taxes."""

from decimal import Decimal

import polars as pl
from billrun_fixtures import OCTOBER, account, bill, plan, table, tax

from pipeline.commissions import COMMISSIONS, compute_commissions
from pipeline.cycles import BillCycle
from pipeline.engine import session
from pipeline.invoicing import export_invoices, finalize_cycle, register_inputs
from pipeline.lake import partition_dir
from pipeline.settings import Settings
from pipeline.state import open_state

D = Decimal
SEPTEMBER = BillCycle.parse("2026-09")


def test_commissions_on_billed_and_collected_revenue(tmp_path):
    lake, state_db = tmp_path / "lake", tmp_path / "state.duckdb"
    accounts = table("accounts", account("A", agent_id="AG-1"), account("B", plan="BIZ", agent_id="AG-1"))
    reference = {
        "accounts": accounts,
        "plans": table("plans", plan("P", "30.00"), plan("BIZ", "100.00")),
        "taxes": table("taxes", tax("IL-T", "IL", "10.00")),
    }
    payments = table("payments", {"payment_id": "PAY-1", "account_id": "B", "received_on": "2026-10-05",
                                  "amount": "55.00", "method": "card"})  # fmt: skip
    for cycle, paid in ((SEPTEMBER, table("payments")), (OCTOBER, payments)):
        path = tmp_path / f"charges-{cycle.key}.parquet"
        bill(reference, cycle=cycle).write_parquet(path)
        with open_state(state_db) as state:
            register_inputs(state, {"accounts": accounts, "adjustments": table("adjustments"), "payments": paid,
                                    "disputes": table("disputes")})  # fmt: skip
            finalize_cycle(state, path, cycle, Settings())
            export_invoices(state, lake, cycle.key)
    plans = table("commission_plans",
                  {"commission_plan_id": "CP-A", "agent_id": "AG-1", "basis": "billed", "percent": "10",
                   "valid_from": "2026-01-01"},
                  {"commission_plan_id": "CP-B", "agent_id": "AG-1", "plan_id": "BIZ", "basis": "collected",
                   "percent": "12", "valid_from": "2026-01-01"})  # fmt: skip
    agents = table("agents", {"agent_id": "AG-1", "agent_name": "Agent One", "commission_percent": "0"})
    with session() as con:
        for name, frame in {"accounts": accounts, "commission_plans": plans, "agents": agents}.items():
            con.register(name, frame)
        compute_commissions(con, lake, OCTOBER)
    folder = partition_dir(lake, COMMISSIONS, cycle=OCTOBER.key)
    lines = pl.read_parquet(folder / "commission_lines.parquet")
    # A: CP-A, billed October revenue 30.00 (its 3.00 tax is not revenue) × 10% = 3.00
    # B: CP-B (agent + plan beats agent alone), collected: PAY-1 55.00 paid September's 110.00 invoice
    #    (100.00 revenue + 10.00 tax): 55.00 × 100.00 / 110.00 = 50.00 of revenue × 12% = 6.00
    assert lines.select("account_id", "commission_plan_id", "billed_revenue", "collected_revenue", "commission").rows() == [
        ("A", "CP-A", D("30.00"), D("0.00"), D("3.00")),
        ("B", "CP-B", D("100.00"), D("50.00"), D("6.00")),
    ]  # fmt: skip
    statement = pl.read_parquet(folder / "agent_statements.parquet")
    assert statement.select("agent_id", "accounts", "billed_revenue", "collected_revenue", "commission").rows() == [
        ("AG-1", 2, D("130.00"), D("50.00"), D("9.00"))
    ]
