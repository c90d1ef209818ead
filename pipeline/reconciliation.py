"""Money checks of a bill run: every invoice total equals the sum of its lines, and the cycle's revenue
reconciles with rated usage plus charges."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from pipeline.billing import CHARGES
from pipeline.invoicing import INVOICES
from pipeline.lake import lake_partition, lake_table
from pipeline.rating import RATED, rated_events_sql


def invoice_total_mismatches(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> pl.DataFrame:
    """Invoices of the cycle whose total is not exactly the sum of their (rounded) lines."""
    folder = lake_partition(lake, INVOICES, cycle=cycle)
    return con.sql(
        f"""
        with totals as (
            select invoice_number, sum(amount) as lines_total, count(*) as lines
            from read_parquet('{(folder / "invoice_lines.parquet").as_posix()}') group by all
        )
        select invoices.invoice_number, invoices.total_amount, totals.lines_total
        from read_parquet('{(folder / "invoices.parquet").as_posix()}') as invoices
        left join totals using (invoice_number)
        where totals.lines_total is distinct from invoices.total_amount
        """
    ).pl()


CHARGE_SECTIONS = ("recurring", "one_time", "usage", "discounts", "carrier_fees", "taxes")
BALANCE_SECTIONS = ("adjustments", "late_fees")


def cycle_reconciliation(
    con: duckdb.DuckDBPyConnection, lake: Path, cycle: str
) -> dict[str, Decimal | int | bool]:
    """Revenue proof of a cycle: Σ invoice totals = Σ recurring + one-time + usage − discounts + carrier fees +
    taxes (the
    cycle's charge lines) + adjustments + late fees (added at finalisation); and the usage lines differ from the
    exact rated charges plus the cycle's tier charges and data rounding by no more than their rounding (half a
    cent per line of rated events; a tier charge and a data rounding charge are already in whole cents)."""
    rated = lake_table(lake, RATED, "rated", cycle=cycle)
    tiers = rated.with_name("tier_charges.parquet")
    tier_amount = (
        f"(select coalesce(sum(charge_amount), 0) from read_parquet('{tiers.as_posix()}'))"
        if tiers.exists()
        else "0::decimal(18, 2)"
    )
    rounding = rated.with_name("data_rounding.parquet")
    data_rounding_amount = (
        f"(select coalesce(sum(charge_amount), 0) from read_parquet('{rounding.as_posix()}'))"
        if rounding.exists()
        else "0::decimal(18, 2)"
    )
    charges = lake_table(lake, CHARGES, "charge_lines", cycle=cycle)
    folder = lake_partition(lake, INVOICES, cycle=cycle)
    sums = ", ".join(
        f"coalesce(sum(amount) filter (where section = '{s}'), 0) as {s}" for s in CHARGE_SECTIONS
    )
    balance = ", ".join(
        f"{s} := coalesce(sum(amount) filter (where section = '{s}'), 0)" for s in BALANCE_SECTIONS
    )
    row = con.sql(
        f"""
        select
            (select coalesce(sum(charge_amount), 0) from ({rated_events_sql(lake, cycle)})) as rated_amount,
            {tier_amount} as tier_amount,
            {data_rounding_amount} as data_rounding_amount,
            count(*) filter (
                where section = 'usage' and not ends_with(category, '_tier') and category <> 'data_rounding'
            ) as usage_line_count,
            {sums},
            (select struct_pack({balance}) from read_parquet('{(folder / "invoice_lines.parquet").as_posix()}'))
                as balance,
            (select coalesce(sum(total_amount), 0) from read_parquet('{(folder / "invoices.parquet").as_posix()}'))
                as invoiced_total
        from read_parquet('{charges.as_posix()}')
        """
    ).fetchall()[0]
    rated_amount, tier_amount, data_rounding_amount, usage_count, *sections, balance, invoiced = row
    parts: dict[str, Decimal] = dict(zip(CHARGE_SECTIONS, sections, strict=True)) | balance
    rounding_bound = Decimal("0.005") * usage_count
    expected = sum(parts.values(), Decimal("0"))
    usage_difference = parts["usage"] - rated_amount - tier_amount - data_rounding_amount
    return {
        "rated_amount": rated_amount,
        "tier_amount": tier_amount,
        "data_rounding_amount": data_rounding_amount,
        **{f"{name}_lines": amount for name, amount in parts.items()},
        "invoiced_total": invoiced,
        "usage_rounding_difference": usage_difference,
        "invoices_equal_charges": invoiced == expected,
        "usage_within_rounding": abs(usage_difference) <= rounding_bound,
    }


def accounts_without_invoice(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> pl.DataFrame:
    """Billable accounts of the cycle (those with charge lines) that have neither an invoice nor a recorded
    reason for having none (a suppressed zero bill)."""
    charges = lake_table(lake, CHARGES, "charge_lines", cycle=cycle)
    folder = lake_partition(lake, INVOICES, cycle=cycle)
    return con.sql(
        f"""
        select distinct account_id from read_parquet('{charges.as_posix()}')
        except select account_id from read_parquet('{(folder / "invoices.parquet").as_posix()}')
        except select account_id from read_parquet('{(folder / "suppressed_bills.parquet").as_posix()}')
        order by account_id
        """
    ).pl()


def negative_totals_without_reason(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> pl.DataFrame:
    """Invoices with a negative total that carry no credit with a stated reason (an adjustment line: a credit,
    a dispute resolution or a rerate, each with its reason and approver)."""
    folder = lake_partition(lake, INVOICES, cycle=cycle)
    return con.sql(
        f"""
        select invoice_number, account_id, total_amount
        from read_parquet('{(folder / "invoices.parquet").as_posix()}') as invoices
        where total_amount < 0 and not exists (
            select 1 from read_parquet('{(folder / "invoice_lines.parquet").as_posix()}') as lines
            where lines.invoice_number = invoices.invoice_number and lines.section = 'adjustments'
                and lines.amount < 0 and length(trim(lines.description)) > 0
        )
        order by invoice_number
        """
    ).pl()
