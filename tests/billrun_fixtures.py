"""Small typed reference tables for bill-run tests: rows are given as text, exactly as in the CSV files, and
cast by the registry's declared types (``pipeline.reference.TABLES``); tables not given are empty."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from pipeline.billing import charge_lines, cycle_params, data_rounding_view, rated_view, tier_charges_view
from pipeline.cycles import BillCycle
from pipeline.engine import session
from pipeline.reference import MONEY, TABLES

OCTOBER = BillCycle.parse("2026-10")
RATED = {"account_id": pl.String, "charged_number": pl.String, "service_state": pl.String, "service": pl.String,
         "jurisdiction": pl.String, "billed_seconds": pl.Int64, "charge_amount": MONEY}  # fmt: skip
_TYPES = {"date": pl.Date, "money": MONEY, "int": pl.Int64}


def table(name: str, *rows: dict[str, Any]) -> pl.DataFrame:
    """A reference table with the given rows (missing columns empty), typed like ``load_reference`` does."""
    spec = TABLES[name]
    text = pl.DataFrame(
        [{c: (None if row.get(c) in (None, "") else str(row[c])) for c in spec} for row in rows],
        schema=dict.fromkeys(spec, pl.String),
    )
    return text.select(
        pl.col(c).str.to_date("%Y-%m-%d")
        if kind.rstrip("?") == "date"
        else pl.col(c).cast(_TYPES.get(kind.rstrip("?"), pl.String))
        for c, kind in spec.items()
    )


def account(account_id: str, state: str = "IL", activated: str = "2025-01-01", deactivated: str = "",
            plan: str = "P", **extra: str) -> dict[str, str]:  # fmt: skip
    """An accounts row with sensible defaults."""
    return {"account_id": account_id, "account_name": account_id, "account_type": "residential",
            "billing_address_line1": "1 Main St", "billing_city": "Chicago", "billing_state": state,
            "billing_zip": "60601", "service_state": state, "agent_id": "AG", "plan_id": plan, "currency": "USD",
            "language": "en", "delivery_preference": "email", "email": "a@example.com", "activated_on": activated,
            "deactivated_on": deactivated, **extra}  # fmt: skip


def tax(code: str, state: str, rate: str = "", **extra: str) -> dict[str, str]:
    """A state percent tax on every carrier charge, half_up, unless ``extra`` says otherwise."""
    return {"tax_code": code, "tax_name": code, "authority": f"State {state}", "level": "state", "state": state,
            "kind": "government_tax", "method": "percent", "rate_percent": rate, "base": "all",
            "percent_taxable": "100", "discounts_reduce_base": "yes", "lifeline_exempt": "no",
            "rounding_method": "half_up", "valid_from": "2026-01-01", **extra}  # fmt: skip


def plan(plan_id: str = "P", monthly: str = "30.00") -> dict[str, str]:
    return {"plan_id": plan_id, "plan_name": f"Plan {plan_id}", "monthly_charge": monthly, "currency": "USD"}


def rated(*events: tuple) -> pl.DataFrame:
    """Rated events: (account, number, state, billed_seconds, charge[, jurisdiction[, service]])."""
    rows = [(e[0], e[1], e[2], e[6] if len(e) > 6 else "voice", e[5] if len(e) > 5 else None, e[3], e[4])
            for e in events]  # fmt: skip
    return pl.DataFrame(rows, schema={**RATED, "charge_amount": pl.String}, orient="row").with_columns(
        pl.col("charge_amount").cast(MONEY)
    )


def bill(tables: dict[str, pl.DataFrame], events: pl.DataFrame | None = None,
         cycle: BillCycle = OCTOBER, tier_charges: pl.DataFrame | None = None,
         data_rounding: pl.DataFrame | None = None) -> pl.DataFrame:  # fmt: skip
    """The charge lines of a cycle for these reference tables (others empty), rated events, tier charges and data
    rounding (``sql/data_rounding.sql``)."""
    frames = {name: table(name) for name in TABLES} | {"plans": table("plans", plan())} | tables
    with session() as con:
        for name, frame in frames.items():
            con.register(name, frame)
        con.register("rated_input", events if events is not None else rated())
        rated_view(con, "rated_input")
        if tier_charges is not None:
            con.register("tier_charges_input", tier_charges)
        tier_charges_view(con, "tier_charges_input" if tier_charges is not None else None)
        if data_rounding is not None:
            con.register("data_rounding_input", data_rounding)
        data_rounding_view(con, "data_rounding_input" if data_rounding is not None else None)
        cycle_params(con, cycle)
        return charge_lines(con).pl()


def amounts(lines: pl.DataFrame, account_id: str | None = None) -> list[tuple[str, str, Any]]:
    """(section, code, amount) of each line, in line order."""
    if account_id is not None:
        lines = lines.filter(pl.col("account_id") == account_id)
    return lines.select("section", "code", "amount").rows()


__all__ = ["OCTOBER", "account", "amounts", "bill", "date", "plan", "rated", "table", "tax"]
