"""Currency per account (ISO 4217 minor units): every line is rounded to its account currency's minor unit by
its rule, and the invoice total is the sum of the rounded lines — golden bills in JPY (0 decimals) and BHD (3)."""

from decimal import Decimal

import polars as pl
import pytest
from billrun_fixtures import OCTOBER, account, amounts, bill, rated, table, tax

from pipeline.credit_notes import CreditNoteError, issue_credit_note
from pipeline.currencies import account_currencies, minor_units
from pipeline.invoicing import finalize_cycle, register_inputs
from pipeline.settings import Settings
from pipeline.state import open_state

D = Decimal
ACCOUNTS = table(
    "accounts",
    account("J", activated="2026-10-16", plan="PJ", currency="JPY"),
    account("K", activated="2026-10-16", plan="PK", currency="BHD"),
    account("U", plan="PU"),
)
TABLES = {
    "accounts": ACCOUNTS,
    "plans": table("plans", {"plan_id": "PJ", "plan_name": "Plan JPY", "monthly_charge": "3000", "currency": "JPY"},
                   {"plan_id": "PK", "plan_name": "Plan BHD", "monthly_charge": "12.345", "currency": "BHD"},
                   {"plan_id": "PU", "plan_name": "Plan USD", "monthly_charge": "30.00", "currency": "USD"}),
    "orders": table("orders", {"order_id": "O-1", "account_id": "J", "charge_type": "activation",
                               "description": "Activation", "amount": "2500.50", "charge_date": "2026-10-16"}),
    "taxes": table("taxes", tax("IL-T", "IL", "10.00")),
}  # fmt: skip
EVENTS = rated(("J", "+13125550100", "IL", 60, "12.4"), ("J", "+13125550100", "IL", 60, "3.35"),
               ("K", "+13125550101", "IL", 60, "0.0125"), ("K", "+13125550101", "IL", 60, "0.0333"),
               ("U", "+13125550102", "IL", 60, "0.125"))  # fmt: skip


def test_minor_units_come_from_iso_4217():
    assert [minor_units(c) for c in ("USD", "CAD", "JPY", "BHD")] == [2, 2, 0, 3]
    units = account_currencies(ACCOUNTS).sort("account_id")
    assert units.select("currency", "minor_units", "unit_micros").rows() == [
        ("JPY", 0, 1_000_000), ("BHD", 3, 1_000), ("USD", 2, 10_000)]  # fmt: skip


def test_every_line_is_rounded_to_its_accounts_minor_unit():
    lines = bill(TABLES, EVENTS)
    # J (JPY, 0 decimals), active Oct 16–31: 3000 × 16 / 31 = 1548.387… → 1548; order 2500.50 → half_up 2501;
    # usage 12.4 + 3.35 = 15.75 → 16; tax 10% × (1548 + 2501 + 16 = 4065) = 406.5 → half_up 407
    assert amounts(lines, "J") == [("recurring", "PJ", D(1548)), ("one_time", "O-1", D(2501)),
                                   ("usage", None, D(16)), ("taxes", "IL-T", D(407))]  # fmt: skip
    # K (BHD, 3 decimals): 12.345 × 16 / 31 = 6.371612… → 6.372; usage 0.0125 + 0.0333 = 0.0458 → 0.046;
    # tax 10% × (6.372 + 0.046 = 6.418) = 0.6418 → 0.642
    assert amounts(lines, "K") == [("recurring", "PK", D("6.372")), ("usage", None, D("0.046")),
                                   ("taxes", "IL-T", D("0.642"))]  # fmt: skip
    # U (USD, 2 decimals) as before: 30.00; usage 0.125 → half_up 0.13; tax 10% × 30.13 = 3.013 → 3.01
    assert amounts(lines, "U") == [("recurring", "PU", D("30.00")), ("usage", None, D("0.13")),
                                   ("taxes", "IL-T", D("3.01"))]  # fmt: skip
    assert dict(lines.group_by("account_id").agg(pl.col("currency").unique().first()).rows()) == {
        "J": "JPY", "K": "BHD", "U": "USD"}  # fmt: skip
    assert str(lines.schema["amount"]) == "Decimal(precision=18, scale=3)"


def finalize(tmp_path, lines: pl.DataFrame, accounts: pl.DataFrame):
    path = tmp_path / "charges.parquet"
    lines.write_parquet(path)
    with open_state(tmp_path / "state.duckdb") as state:
        register_inputs(state, {"accounts": accounts} | {n: table(n) for n in ("adjustments", "payments", "disputes")})
        finalize_cycle(state, path, OCTOBER, Settings())
        return state.execute("select account_id, currency, total_amount from invoices order by 1").fetchall()


def test_a_jpy_invoice_total_is_the_sum_of_its_rounded_lines(tmp_path):
    lines = bill(TABLES, EVENTS).filter(pl.col("account_id") != "K")
    # J: 1548 + 2501 + 16 + 407 = 4472 JPY; U: 30.00 + 0.13 + 3.01 = 33.14 USD
    assert finalize(tmp_path, lines, ACCOUNTS) == [("J", "JPY", D(4472)), ("U", "USD", D("33.14"))]


def test_a_three_decimal_currency_is_refused_at_finalisation_before_anything_is_numbered(tmp_path):
    with pytest.raises(ValueError, match="account K is billed in BHD, which has more than 2 minor units"):
        finalize(tmp_path, bill(TABLES, EVENTS), ACCOUNTS)
    with open_state(tmp_path / "state.duckdb") as state:
        assert state.execute("select count(*) from invoices").fetchall() == [(0,)]


def test_a_credit_note_is_in_whole_minor_units_of_the_invoice_currency(tmp_path):
    finalize(tmp_path, bill(TABLES, EVENTS).filter(pl.col("account_id") != "K"), ACCOUNTS)
    with open_state(tmp_path / "state.duckdb") as state:
        # INV-00000001 is J's 4472 JPY invoice: yen have no decimals; INV-00000002 is U's in USD cents
        with pytest.raises(CreditNoteError, match=r"whole minor units of JPY \(0 decimals\), e.g. 1250"):
            issue_credit_note(state, "INV-00000001", D("12.50"), "Outage", "j.rivera", Settings())
        with pytest.raises(CreditNoteError, match=r"whole minor units of USD \(2 decimals\), e.g. 12.50"):
            issue_credit_note(state, "INV-00000002", D("1.005"), "Outage", "j.rivera", Settings())
        note = issue_credit_note(state, "INV-00000001", D("1250"), "Outage", "j.rivera", Settings())
    assert (note.amount, note.currency) == (D(1250), "JPY")
