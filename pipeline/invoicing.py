"""Invoices: finalise a cycle's charge lines into numbered invoices. Numbers are gapless per series and are
assigned only at finalisation, in one transaction with the invoices and their lines; a finalised cycle never
changes (a re-run numbers nothing again; corrections are credit notes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
import polars as pl

from pipeline.balances import BalanceRules, apply_payments, balance_lines, post_cycle_inputs, record_balances
from pipeline.currencies import account_currencies
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


def register_inputs(state: duckdb.DuckDBPyConnection, tables: dict[str, pl.DataFrame]) -> None:
    """Register what finalisation reads besides the charge lines: ``accounts`` and the adjustments, payments
    and disputes inputs (as ``<name>_input``, apart from the ledgers of the same name), and each account's
    currency with its minor units (``account_currency``)."""
    state.register("accounts", tables["accounts"])
    state.register("account_currency", account_currencies(tables["accounts"]))
    for name in ("adjustments", "payments", "disputes"):
        state.register(f"{name}_input", tables[name])


def due_date(issue_date: date, settings: Settings) -> date:
    """Issue date + payment terms, never fewer than the configured minimum days."""
    return issue_date + timedelta(days=max(settings.payment_terms_days, settings.minimum_payment_days))


def balance_rules(settings: Settings) -> BalanceRules:
    """The balance rules of the settings (late fee rate and grace)."""
    try:
        rate = Decimal(str(settings.late_fee_percent))
    except InvalidOperation:
        raise ValueError(
            f"late_fee_percent={settings.late_fee_percent!r} is not a number. Fix: write it as a string, e.g. '1.50'"
        ) from None
    return BalanceRules(rate, settings.late_fee_grace_days, settings.carrier_name)


STORED_MINOR_UNITS = 2  # the ledgers' money columns are decimal(18, 2)


def _refuse_unstorable_currencies(state: duckdb.DuckDBPyConnection) -> None:
    """The ledgers keep money as decimal(18, 2): an account billed in a currency with 3 minor units (BHD, KWD,
    …) has exact charge lines but cannot be finalised yet, and is refused before anything is numbered."""
    row = first_row(
        state,
        "select account_id, currency from account_currency where minor_units > ? "
        "and account_id in (select account_id from charge_lines) order by account_id limit 1",
        [STORED_MINOR_UNITS],
    )
    if row:
        raise ValueError(
            f"account {row[0]} is billed in {row[1]}, which has more than {STORED_MINOR_UNITS} minor units; the "
            "invoice ledgers store 2 decimals. Fix: bill the account in a currency with at most 2 minor units "
            "(its charge lines are exact in lake/charges) until the ledgers are widened"
        )


def finalize_cycle(
    state: duckdb.DuckDBPyConnection, charge_lines: Path, cycle: BillCycle, settings: Settings
) -> FinalizeResult:
    """Number and store the cycle's invoices in state.duckdb, unless the cycle is already final. In the same
    transaction: post the cycle's adjustments, payments and disputes, apply payments, add the balance lines
    (pending adjustments, late fees), suppress zero bills when the policy says so, and write each invoice's
    balance block. Needs ``accounts``, ``adjustments_input``, ``payments_input`` and ``disputes_input``."""
    state.execute(
        f"create or replace temp view charge_lines as select * from read_parquet('{charge_lines.as_posix()}')"
    )
    already = first_row(state, "select 1 from finalized_cycles where cycle = ?", [cycle.key])
    newly = 0
    if not already:
        _refuse_unstorable_currencies(state)
        issue_date = cycle.end + timedelta(days=1)
        now = datetime.now(UTC).replace(tzinfo=None)
        rules = balance_rules(settings)
        state.execute("begin transaction")
        try:
            post_cycle_inputs(state, cycle, now)
            apply_payments(state, cycle)
            balance_lines(state, cycle, issue_date, rules)
            state.execute(
                """
                create or replace temp table all_lines as
                select * from charge_lines
                union all by name
                select
                    balance_lines.*,
                    (select coalesce(max(line_no), 0) from charge_lines c where c.account_id = balance_lines.account_id)
                    + row_number() over (partition by account_id order by section, code, description, amount)::integer as line_no
                from balance_lines
                """
            )
            state.execute(
                """
                insert into suppressed_bills
                select ?, account_id, 'ZERO_AMOUNT', ?
                from all_lines
                where ? = 'suppress'
                group by account_id
                having bool_and(amount = 0)
                """,
                [cycle.key, now, settings.zero_bill_policy],
            )
            state.execute(
                "insert into invoice_series select ?, 0 where not exists "
                "(select 1 from invoice_series where series = ?)",
                [settings.invoice_series, settings.invoice_series],
            )
            state.execute(
                """
                create or replace temp table numbered as
                with totals as (
                    select account_id, sum(amount) as total_amount from all_lines
                    where account_id not in (select account_id from suppressed_bills where cycle = ?)
                    group by account_id
                )
                select
                    totals.*,
                    invoice_series.last_number
                        + row_number() over (order by account_id) as sequence_no
                from totals
                cross join invoice_series
                where invoice_series.series = ?
                """,
                [cycle.key, settings.invoice_series],
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
                    due_date(issue_date, settings),
                    cycle.start,
                    cycle.end,
                    now,
                ],
            )
            state.execute(
                """
                insert into invoice_lines by name
                select
                    invoices.invoice_number, line_no, section, category, tax_category, provider, service_number,
                    jurisdiction, code, description, quantity, unit, taxable_base, rate, amount
                from all_lines
                join invoices on invoices.account_id = all_lines.account_id and invoices.cycle = ?
                """,
                [cycle.key],
            )
            record_balances(state, cycle, issue_date, rules)
            state.execute(
                "update invoice_series set last_number = last_number + (select count(*) from numbered) "
                "where series = ?",
                [settings.invoice_series],
            )
            state.execute(
                "insert into finalized_cycles select ?, count(*), coalesce(sum(total_amount), 0), ? from numbered",
                [cycle.key, now],
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
        with recomputed as (
            select account_id, sum(amount) as total from charge_lines
            where account_id not in (select account_id from suppressed_bills where cycle = ?) group by account_id
        ),
        final as (
            select invoices.account_id, sum(amount) filter (where section not in ('adjustments', 'late_fees')) as total
            from invoices join invoice_lines using (invoice_number) where cycle = ? group by all
        )
        select count(*) from recomputed full join final using (account_id)
        where recomputed.total is distinct from final.total
        """,
        [cycle.key, cycle.key],
    )
    assert row is not None and differences is not None
    return FinalizeResult(newly, int(row[0]), row[1], row[2], str(row[3]), int(differences[0]))


def export_invoices(state: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> dict[str, int]:
    """Publish the cycle's finalised invoices from the ledger to ``lake/invoices/cycle=C``: invoices, invoice
    lines, tax lines (one per tax and state: what a tax-liability return is filed from), balance blocks,
    suppressed bills with their reason, the payments applied in this cycle's finalisation (with the revenue share
    of the invoice they paid, for commissions on collected revenue) and the credit notes issued against the
    cycle's invoices."""
    of_cycle = f"join invoices using (invoice_number) where invoices.cycle = '{cycle}'"
    tables: dict[str, pl.DataFrame | duckdb.DuckDBPyRelation] = {
        "invoices": state.sql(f"select * from invoices where cycle = '{cycle}' order by invoice_number"),
        "invoice_lines": state.sql(
            f"select invoice_lines.* from invoice_lines {of_cycle} order by invoice_number, line_no"
        ),
        "tax_lines": state.sql(
            f"""
            select invoice_number, invoices.cycle, invoices.account_id, invoices.issue_date, invoices.currency,
                   line_no, jurisdiction, code as tax_code, category as kind, provider as authority, description,
                   taxable_base, quantity as lines, rate, amount
            from invoice_lines {of_cycle} and section = 'taxes' order by invoice_number, line_no
            """
        ),
        "invoice_balances": state.sql(
            f"select invoice_balances.* from invoice_balances {of_cycle} order by 1"
        ),
        "suppressed_bills": state.sql(
            f"select * from suppressed_bills where cycle = '{cycle}' order by account_id"
        ),
        "payment_allocations": state.sql(
            f"""
            select payment_allocations.*, invoices.account_id, invoices.total_amount as invoice_total,
                   (select coalesce(sum(amount), 0) from invoice_lines l
                    where l.invoice_number = invoices.invoice_number
                        and l.section in ('recurring', 'one_time', 'usage', 'discounts')) as invoice_revenue
            from payment_allocations join invoices using (invoice_number)
            where payment_allocations.allocated_cycle = '{cycle}' order by 1, 2
            """
        ),
        "credit_notes": state.sql(
            f"select credit_notes.* exclude (account_id), invoices.account_id from credit_notes {of_cycle} order by 1"
        ),
    }
    return replace_partition(lake, partition_dir(lake, INVOICES, cycle=cycle), tables)
