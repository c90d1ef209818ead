"""The bill run's blocking checks fail on the faults they guard against: an account billed without invoice or
reason, a negative total without a stated credit, and invoices that do not reconcile with the cycle's lines."""

from decimal import Decimal

import polars as pl
from billrun_fixtures import OCTOBER, account, bill, table

from pipeline.billing import CHARGES
from pipeline.engine import session
from pipeline.invoicing import INVOICES, export_invoices, finalize_cycle, register_inputs
from pipeline.lake import partition_dir, replace_partition
from pipeline.rating import RATED
from pipeline.reconciliation import (
    accounts_without_invoice,
    cycle_reconciliation,
    negative_totals_without_reason,
)
from pipeline.settings import Settings
from pipeline.state import open_state

D = Decimal
CREDIT = {"adjustment_id": "ADJ-1", "account_id": "B", "direction": "credit", "amount": "50.00",
          "reason": "Refund", "approved_by": "j.rivera", "effective_date": "2026-10-03"}  # fmt: skip


def run_cycle(tmp_path, tier_charges: pl.DataFrame | None = None):
    """A real finalised cycle of two accounts; B gets a 50.00 credit, so its total is −20.00 (before any tier
    charges, which rating writes beside the rated events)."""
    lake = tmp_path / "lake"
    accounts = table("accounts", account("A"), account("B"))
    lines = bill({"accounts": accounts}, tier_charges=tier_charges)
    replace_partition(lake, partition_dir(lake, CHARGES, cycle=OCTOBER.key), {"charge_lines": lines})
    # no rated event: an empty rated partition as written before the narrow fact (it carries its normalised
    # columns, so the rated events' reader needs no mediated partition)
    rated = {
        "rated": pl.DataFrame(
            {"charged_number": [], "charge_amount": []},
            schema={"charged_number": pl.String, "charge_amount": pl.Decimal(18, 6)},
        )
    }
    if tier_charges is not None:
        rated["tier_charges"] = tier_charges
    replace_partition(lake, partition_dir(lake, RATED, cycle=OCTOBER.key), rated)
    with open_state(tmp_path / "state.duckdb") as state:
        inputs = {"accounts": accounts, "adjustments": table("adjustments", CREDIT), "payments": table("payments"),
                  "disputes": table("disputes")}  # fmt: skip
        register_inputs(state, inputs)
        finalize_cycle(state, partition_dir(lake, CHARGES, cycle=OCTOBER.key) / "charge_lines.parquet", OCTOBER,
                       Settings())  # fmt: skip
        export_invoices(state, lake, OCTOBER.key)
    return lake


def test_the_checks_pass_on_a_true_cycle_and_fail_on_its_faults(tmp_path):
    lake = run_cycle(tmp_path)
    folder = partition_dir(lake, INVOICES, cycle=OCTOBER.key)
    with session() as con:
        assert accounts_without_invoice(con, lake, OCTOBER.key).height == 0
        assert (
            negative_totals_without_reason(con, lake, OCTOBER.key).height == 0
        )  # B's −20.00 states its credit
        proof = cycle_reconciliation(con, lake, OCTOBER.key)
        # 30.00 + 30.00 recurring − 50.00 adjustment = 10.00 invoiced
        assert proof["invoices_equal_charges"] and proof["invoiced_total"] == D("10.00")
        assert proof["adjustments_lines"] == D("-50.00")

        tables = {name: pl.read_parquet(folder / f"{name}.parquet") for name in
                  ("invoices", "invoice_lines", "tax_lines", "invoice_balances", "suppressed_bills",
                   "payment_allocations", "credit_notes")}  # fmt: skip
        # an invoice lost for A, and B's credit line stripped of its reason
        broken = tables | {
            "invoices": tables["invoices"].filter(pl.col("account_id") == "B"),
            "invoice_lines": tables["invoice_lines"].with_columns(
                description=pl.when(pl.col("section") == "adjustments")
                .then(pl.lit(" "))
                .otherwise("description")
            ),
        }
        replace_partition(lake, folder, broken)
        assert accounts_without_invoice(con, lake, OCTOBER.key)["account_id"].to_list() == ["A"]
        assert negative_totals_without_reason(con, lake, OCTOBER.key)["invoice_number"].to_list() == [
            "INV-00000002"
        ]
        assert not cycle_reconciliation(con, lake, OCTOBER.key)["invoices_equal_charges"]


def test_tier_charges_reconcile_as_usage(tmp_path):
    tiers = pl.DataFrame(
        [("A", "T-MMS", "graduated", "P", "mms", 1234, "1000 × 0.10 + 234 × 0.05", D("111.70"))],
        schema={"account_id": pl.String, "tier_id": pl.String, "mode": pl.String, "plan_id": pl.String,
                "service": pl.String, "total_units": pl.Int64, "tier_breakdown": pl.String,
                "charge_amount": pl.Decimal(18, 2)}, orient="row",
    )  # fmt: skip
    lake = run_cycle(tmp_path, tiers)
    with session() as con:
        proof = cycle_reconciliation(con, lake, OCTOBER.key)
        # 30.00 + 30.00 recurring + 111.70 tier usage − 50.00 adjustment = 121.70 invoiced; usage lines 111.70 =
        # rated 0 + tier 111.70 exactly
        assert proof["invoiced_total"] == D("121.70") and proof["invoices_equal_charges"]
        assert (proof["tier_amount"], proof["usage_lines"], proof["usage_rounding_difference"]) == (
            D("111.70"), D("111.70"), D(0))  # fmt: skip
        assert proof["usage_within_rounding"]
        # a tier charge the bill run left out breaks the proof
        folder = partition_dir(lake, RATED, cycle=OCTOBER.key)
        doubled = tiers.with_columns(charge_amount=pl.col("charge_amount") * 2)
        replace_partition(
            lake, folder, {"rated": pl.read_parquet(folder / "rated.parquet"), "tier_charges": doubled}
        )
        assert not cycle_reconciliation(con, lake, OCTOBER.key)["usage_within_rounding"]
