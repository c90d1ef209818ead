"""Invoices: finalise a cycle's charge lines into numbered invoices. Numbers are gapless per series and are
assigned only at finalisation, in one transaction with the invoices and their lines; a finalised cycle never
changes (a re-run numbers nothing again; corrections are credit notes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from pipeline.cycles import BillCycle
from pipeline.engine import first_row, scalar
from pipeline.faults import crash_point
from pipeline.lake import partition_dir, replace_partition
from pipeline.settings import Settings

INVOICES = "invoices"


@dataclass(frozen=True)
class FinalizeResult:
    """What finalisation did: invoices numbered now (0 on a re-run) and the cycle's invoices in all."""

    newly_finalized: int
    invoices: int
    first_number: str | None
    last_number: str | None
    total_amount: str
    recomputed_differences: int  # accounts whose recomputed charges differ from the finalised invoice


def finalize_cycle(
    state: duckdb.DuckDBPyConnection, charge_lines: Path, cycle: BillCycle, settings: Settings
) -> FinalizeResult:
    """Number and store the cycle's invoices in state.duckdb, unless the cycle is already final."""
    state.execute(
        f"create or replace temp view charge_lines as select * from read_parquet('{charge_lines.as_posix()}')"
    )
    already = first_row(state, "select 1 from finalized_cycles where cycle = ?", [cycle.key])
    newly = 0
    if not already:
        issue_date = cycle.end + timedelta(days=1)
        due_date = issue_date + timedelta(days=settings.payment_terms_days)
        state.execute("begin transaction")
        try:
            state.execute(
                "insert into invoice_series select ?, 0 where not exists "
                "(select 1 from invoice_series where series = ?)",
                [settings.invoice_series, settings.invoice_series],
            )
            state.execute(
                """
                create or replace temp table numbered as
                with totals as (
                    select account_id, sum(amount) as total_amount from charge_lines group by account_id
                )
                select
                    totals.*,
                    invoice_series.last_number
                        + row_number() over (order by account_id) as sequence_no
                from totals
                cross join invoice_series
                where invoice_series.series = ?
                """,
                [settings.invoice_series],
            )
            state.execute(
                """
                insert into invoices
                select
                    ? || '-' || lpad(sequence_no::varchar, 8, '0'), ?, sequence_no, ?, numbered.account_id,
                    ?, ?, ?, ?, accounts.currency, total_amount, ?
                from numbered
                left join accounts using (account_id)  -- an unknown account fails the insert: no gap
                """,
                [
                    settings.invoice_series,
                    settings.invoice_series,
                    cycle.key,
                    issue_date,
                    due_date,
                    cycle.start,
                    cycle.end,
                    datetime.now(UTC).replace(tzinfo=None),
                ],
            )
            state.execute(
                """
                insert into invoice_lines
                select
                    invoices.invoice_number, line_no, section, category, service_number, jurisdiction, code,
                    description, quantity, unit, taxable_base, rate, amount
                from charge_lines
                join invoices on invoices.account_id = charge_lines.account_id and invoices.cycle = ?
                """,
                [cycle.key],
            )
            state.execute(
                "update invoice_series set last_number = last_number + (select count(*) from numbered) "
                "where series = ?",
                [settings.invoice_series],
            )
            state.execute(
                "insert into finalized_cycles select ?, count(*), coalesce(sum(total_amount), 0), ? from numbered",
                [cycle.key, datetime.now(UTC).replace(tzinfo=None)],
            )
            newly = int(scalar(state, "select count(*) from numbered"))
            crash_point("invoicing.numbered")
            state.execute("commit")
            crash_point("invoicing.committed")
        except BaseException:
            state.execute("rollback")
            raise
    row = first_row(
        state,
        """
        select count(*), min(invoice_number), max(invoice_number), coalesce(sum(total_amount), 0)::varchar
        from invoices where cycle = ?
        """,
        [cycle.key],
    )
    differences = first_row(
        state,
        """
        with recomputed as (select account_id, sum(amount) as total from charge_lines group by account_id),
        final as (select account_id, total_amount as total from invoices where cycle = ?)
        select count(*) from recomputed full join final using (account_id)
        where recomputed.total is distinct from final.total
        """,
        [cycle.key],
    )
    assert row is not None and differences is not None
    return FinalizeResult(newly, int(row[0]), row[1], row[2], str(row[3]), int(differences[0]))


def export_invoices(state: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> dict[str, int]:
    """Publish the cycle's finalised invoices and lines from the ledger to ``lake/invoices/cycle=C``."""
    invoices = state.sql(f"select * from invoices where cycle = '{cycle}' order by invoice_number")
    lines = state.sql(
        "select invoice_lines.* from invoice_lines join invoices using (invoice_number) "
        f"where invoices.cycle = '{cycle}' order by invoice_number, line_no"
    )
    return replace_partition(
        lake, partition_dir(lake, INVOICES, cycle=cycle), {"invoices": invoices, "invoice_lines": lines}
    )
