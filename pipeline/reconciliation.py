"""Money checks of a bill run: every invoice total equals the sum of its lines, and the cycle's revenue
reconciles with rated usage plus charges."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from pipeline.billing import CHARGES
from pipeline.invoicing import INVOICES
from pipeline.lake import partition_dir
from pipeline.rating import RATED


def invoice_total_mismatches(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> pl.DataFrame:
    """Invoices of the cycle whose total is not exactly the sum of their (rounded) lines."""
    folder = partition_dir(lake, INVOICES, cycle=cycle)
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


def cycle_reconciliation(
    con: duckdb.DuckDBPyConnection, lake: Path, cycle: str
) -> dict[str, Decimal | int | bool]:
    """Revenue proof of a cycle: Σ invoice totals = Σ recurring + usage + tax lines; and the usage lines differ
    from the exact rated charges by no more than their rounding (half a cent per usage line)."""
    rated = partition_dir(lake, RATED, cycle=cycle) / "rated.parquet"
    charges = partition_dir(lake, CHARGES, cycle=cycle) / "charge_lines.parquet"
    invoices = partition_dir(lake, INVOICES, cycle=cycle) / "invoices.parquet"
    row = con.sql(
        f"""
        select
            (select coalesce(sum(charge_amount), 0) from read_parquet('{rated.as_posix()}')) as rated_amount,
            coalesce(sum(amount) filter (where section = 'usage'), 0) as usage_lines,
            count(*) filter (where section = 'usage') as usage_line_count,
            coalesce(sum(amount) filter (where section = 'recurring'), 0) as recurring_lines,
            coalesce(sum(amount) filter (where section = 'taxes'), 0) as tax_lines,
            coalesce(sum(amount), 0) as charge_lines_total,
            (select coalesce(sum(total_amount), 0) from read_parquet('{invoices.as_posix()}')) as invoiced_total
        from read_parquet('{charges.as_posix()}')
        """
    ).fetchall()[0]
    rated_amount, usage, usage_count, recurring, taxes, lines_total, invoiced = row
    rounding_bound = Decimal("0.005") * usage_count
    return {
        "rated_amount": rated_amount,
        "usage_lines": usage,
        "recurring_lines": recurring,
        "tax_lines": taxes,
        "invoiced_total": invoiced,
        "usage_rounding_difference": usage - rated_amount,
        "invoices_equal_charges": invoiced == usage + recurring + taxes == lines_total,
        "usage_within_rounding": abs(usage - rated_amount) <= rounding_bound,
    }
