"""Bill run rules on small hand-checked accounts: proration by actual days, usage lines, taxes sourced by
state with their own rounding, and gapless invoice numbers assigned once."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.billing import charge_lines
from pipeline.cycles import BillCycle
from pipeline.engine import session
from pipeline.invoicing import finalize_cycle
from pipeline.settings import Settings
from pipeline.state import open_state

OCTOBER = BillCycle.parse("2026-10")
MONEY = pl.Decimal(18, 6)


def accounts(*rows: tuple[str, str, date, date | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"account_id": a, "service_state": s, "plan_id": "P", "currency": "USD", "activated_on": on,
          "deactivated_on": off} for a, s, on, off in rows],
        schema={"account_id": pl.String, "service_state": pl.String, "plan_id": pl.String, "currency": pl.String,
                "activated_on": pl.Date, "deactivated_on": pl.Date},
    )  # fmt: skip


def bill(account_rows, rated_rows=(), monthly="30.00", cycle=OCTOBER) -> pl.DataFrame:
    plans = pl.DataFrame({"plan_id": ["P"], "plan_name": ["Plan"], "monthly_charge": [monthly]}).with_columns(
        pl.col("monthly_charge").cast(MONEY)
    )
    taxes = pl.DataFrame(
        [
            ("IL", "IL-T", "IL tax", "government_tax", "7.00", "half_up"),
            ("TX", "TX-A", "TX tax", "government_tax", "6.25", "half_up"),
            ("TX", "TX-B", "TX fee", "regulatory_fee", "3.30", "up"),
        ],
        schema=["state", "tax_code", "tax_name", "kind", "rate_percent", "rounding_method"],
        orient="row",
    ).with_columns(
        pl.col("rate_percent").cast(MONEY),
        valid_from=pl.lit(date(2026, 1, 1)),
        valid_to=pl.lit(None, pl.Date),
    )
    rated = pl.DataFrame(
        list(rated_rows),
        schema={"account_id": pl.String, "charged_number": pl.String, "service_state": pl.String,
                "billed_seconds": pl.Int64, "charge_amount": pl.String},
        orient="row",
    ).with_columns(pl.col("charge_amount").cast(MONEY))  # fmt: skip
    params = pl.DataFrame({"cycle": [cycle.key], "period_start": [cycle.start], "period_end": [cycle.end],
                           "cycle_days": [cycle.days]})  # fmt: skip
    with session() as con:
        for name, frame in {"accounts": account_rows, "plans": plans, "taxes": taxes, "rated": rated,
                            "cycle_params": params}.items():  # fmt: skip
            con.register(name, frame)
        return charge_lines(con).pl()


def test_whole_month_usage_and_tax():
    lines = bill(accounts(("A", "IL", date(2025, 1, 1), None)),
                 [("A", "+13125550100", "IL", 84, "0.028"), ("A", "+13125550100", "IL", 30, "0.0955")])  # fmt: skip
    # usage 0.1235 → 0.12; tax 7% × 30.12 = 2.1084 → 2.11
    assert lines.select("section", "amount").rows() == [
        ("recurring", Decimal("30.00")), ("usage", Decimal("0.12")), ("taxes", Decimal("2.11")),
    ]  # fmt: skip


def test_activation_and_deactivation_are_prorated_by_actual_days():
    lines = bill(
        accounts(("A", "TX", date(2026, 10, 16), None), ("B", "TX", date(2024, 1, 1), date(2026, 10, 20)))
    )
    recurring = lines.filter(pl.col("section") == "recurring")
    # A: 16 of 31 days: 30 × 16 / 31 = 15.4838… → 15.48; B: deactivated on the 20th: 19 days → 18.3870… → 18.39
    assert recurring.select("account_id", "quantity", "amount").rows() == [
        ("A", Decimal(16), Decimal("15.48")), ("B", Decimal(19), Decimal("18.39")),
    ]  # fmt: skip
    taxes = lines.filter(pl.col("account_id") == "A", pl.col("section") == "taxes")
    # TX 6.25% × 15.48 = 0.9675 → half_up 0.97; TX fee 3.3% × 15.48 = 0.51084 → up 0.52
    assert taxes["amount"].to_list() == [Decimal("0.97"), Decimal("0.52")]


def test_accounts_outside_the_cycle_are_not_billed():
    lines = bill(
        accounts(("A", "IL", date(2026, 11, 1), None), ("B", "IL", date(2025, 1, 1), date(2026, 10, 1)))
    )
    assert lines.height == 0


@given(st.sampled_from(["0.01", "19.99", "34.99", "49.00", "1234.57"]))
def test_a_whole_cycle_prorates_to_the_full_charge(monthly):
    lines = bill(accounts(("A", "IL", date(2026, 10, 1), None)), monthly=monthly)
    assert lines.filter(pl.col("section") == "recurring")["amount"].to_list() == [Decimal(monthly)]


def finalize(tmp_path: Path, lines: pl.DataFrame, cycle: BillCycle):
    path = tmp_path / f"charges-{cycle.key}.parquet"
    lines.write_parquet(path)
    with open_state(tmp_path / "state.duckdb") as state:
        state.register(
            "accounts", accounts(("A", "IL", date(2025, 1, 1), None), ("B", "IL", date(2025, 1, 1), None))
        )
        result = finalize_cycle(state, path, cycle, Settings())
        numbers = state.execute(
            "select account_id, invoice_number, total_amount from invoices order by 2"
        ).fetchall()
    return result, numbers


def test_invoice_numbers_are_gapless_assigned_once_and_continue_next_cycle(tmp_path):
    october = bill(accounts(("A", "IL", date(2025, 1, 1), None), ("B", "IL", date(2025, 1, 1), None)))
    first, numbers = finalize(tmp_path, october, OCTOBER)
    assert first.newly_finalized == 2
    assert numbers == [("A", "INV-00000001", Decimal("32.10")), ("B", "INV-00000002", Decimal("32.10"))]
    again, numbers_again = finalize(tmp_path, october, OCTOBER)
    assert again.newly_finalized == 0 and numbers_again == numbers
    # a changed recomputation of a final cycle does not touch it; the difference is reported
    changed = october.with_columns(pl.when(pl.col("account_id") == "A").then(pl.col("amount") + Decimal("1"))
                                   .otherwise(pl.col("amount")).alias("amount"))  # fmt: skip
    drift, _ = finalize(tmp_path, changed, OCTOBER)
    assert drift.recomputed_differences == 1 and drift.total_amount == "64.20"
    november = BillCycle.parse("2026-11")
    _, all_numbers = finalize(
        tmp_path, bill(accounts(("A", "IL", date(2025, 1, 1), None)), cycle=november), november
    )
    assert [n for _, n, _ in all_numbers] == ["INV-00000001", "INV-00000002", "INV-00000003"]


def test_a_failed_finalisation_numbers_nothing(tmp_path):
    broken = bill(accounts(("A", "IL", date(2025, 1, 1), None))).with_columns(
        pl.lit(None, pl.String).alias("section")
    )
    with pytest.raises(Exception, match="NOT NULL|null"):
        finalize(tmp_path, broken, OCTOBER)
    with open_state(tmp_path / "state.duckdb") as state:
        assert state.execute("select count(*) from invoices").fetchall() == [(0,)]
        assert state.execute("select count(*) from invoice_series where last_number > 0").fetchall() == [(0,)]
