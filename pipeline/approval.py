"""The approval gate of delivery: nothing of a cycle is e-mailed, printed or reminded until the cycle has
passed its blocking checks and a person has approved it (ledger ``cycle_approvals`` in state.duckdb).

Billing rules applied here:

* an approval is refused while the cycle is not finalised or any blocking check of the bill run fails (the same
  pipeline checks the ``invoices`` and ``rated_usage`` assets run, re-run at the moment of approval);
* approving an approved cycle again changes nothing (the first approval stands);
* an approval can be revoked only while nothing of the cycle has been delivered (no delivery ledger row, no
  print batch, no reminder);
* before approval the reviewer gets a sample of invoices to look at first: the highest amount, the largest change
  against the account's previous invoice, a Spanish, a paper and an e-invoice account, and a credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipeline.accounting import home_record_accounting
from pipeline.durable import write_atomically
from pipeline.engine import first_row, scalar, session
from pipeline.reconciliation import (
    accounts_without_invoice,
    cycle_reconciliation,
    invoice_total_mismatches,
    negative_totals_without_reason,
)


class ApprovalError(ValueError):
    """An approval or revocation that the rules refuse; the message says why and what to do."""


@dataclass(frozen=True)
class Approval:
    """The standing approval of a cycle's delivery."""

    cycle: str
    approval_no: int
    approved_by: str
    approved_at: datetime
    note: str | None


def current_approval(state: duckdb.DuckDBPyConnection, cycle: str) -> Approval | None:
    """The cycle's approval that is not revoked, or None (rule: no approval, no delivery)."""
    row = first_row(
        state,
        "select approval_no, approved_by, approved_at, note from cycle_approvals "
        "where cycle = ? and revoked_at is null order by approval_no desc limit 1",
        [cycle],
    )
    if row is None:
        return None
    return Approval(cycle, int(row[0]), str(row[1]), row[2], row[3])


def blocking_check_failures(state: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> list[str]:
    """Why the cycle cannot be approved (empty when it can): it must be finalised, and pass the bill run's
    blocking checks — every record accounted for, invoice totals equal their lines, revenue reconciles, one
    invoice per billable account, no negative total without a credit reason."""
    if not scalar(state, "select count(*) from finalized_cycles where cycle = ?", [cycle]):
        return [f"cycle {cycle} is not finalised: run it first (cdrbill run --cycle {cycle})"]
    failures = []
    unbalanced = home_record_accounting(lake, cycle).filter(~pl.col("balanced")).height
    with session() as con:
        mismatches = invoice_total_mismatches(con, lake, cycle).height
        proof = cycle_reconciliation(con, lake, cycle)
        uninvoiced = accounts_without_invoice(con, lake, cycle).height
        negative = negative_totals_without_reason(con, lake, cycle).height
    if unbalanced:
        failures.append(f"every_record_accounted_for: {unbalanced} files do not balance")
    if mismatches:
        failures.append(f"invoice_totals_equal_their_lines: {mismatches} invoices differ from their lines")
    if not (proof["invoices_equal_charges"] and proof["usage_within_rounding"]):
        failures.append("cycle_revenue_reconciles: the cycle's revenue does not reconcile")
    if uninvoiced:
        failures.append(f"one_invoice_per_billable_account: {uninvoiced} accounts without an invoice")
    if negative:
        failures.append(f"no_negative_total_without_credit_reason: {negative} invoices")
    return failures


def approve_cycle(
    state: duckdb.DuckDBPyConnection,
    lake: Path,
    cycle: str,
    approved_by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> tuple[Approval, bool]:
    """Record a person's approval of the cycle's delivery; returns (the standing approval, newly recorded).
    Rule: refused while a blocking check fails; a second approval keeps the first."""
    approved_by = " ".join(approved_by.split())
    if not approved_by:
        raise ApprovalError("an approval names the person who approves (--by NAME / approved_by)")
    existing = current_approval(state, cycle)
    if existing is not None:
        return existing, False
    failures = blocking_check_failures(state, lake, cycle)
    if failures:
        raise ApprovalError(f"cycle {cycle} cannot be approved: " + "; ".join(failures))
    at = (now or datetime.now(UTC)).replace(tzinfo=None)
    state.execute(
        "insert into cycle_approvals (cycle, approval_no, approved_by, approved_at, note) "
        "select ?, coalesce(max(approval_no), 0) + 1, ?, ?, ? from cycle_approvals where cycle = ?",
        [cycle, approved_by, at, note, cycle],
    )
    approval = current_approval(state, cycle)
    assert approval is not None
    return approval, True


def deliveries_made(state: duckdb.DuckDBPyConnection, cycle: str) -> int:
    """How many deliveries of the cycle exist: e-mails and print copies, print batch items, reminders."""
    return int(
        scalar(
            state,
            """
            select (select count(*) from delivery_ledger where cycle = $1)
                 + (select count(*) from print_batch_items where cycle = $1)
                 + (select count(*) from payment_reminders where cycle = $1)
            """,
            [cycle],
        )
    )


def revoke_approval(
    state: duckdb.DuckDBPyConnection, cycle: str, revoked_by: str, note: str | None = None
) -> Approval:
    """Revoke the cycle's approval (rule: only before anything of the cycle was delivered); returns it."""
    existing = current_approval(state, cycle)
    if existing is None:
        raise ApprovalError(f"cycle {cycle} has no approval to revoke")
    delivered = deliveries_made(state, cycle)
    if delivered:
        raise ApprovalError(
            f"cycle {cycle}: {delivered} deliveries were already made under the approval of "
            f"{existing.approved_by}; it can no longer be revoked (correct with credit notes)"
        )
    state.execute(
        "update cycle_approvals set revoked_by = ?, revoked_at = ?, revoke_note = ? "
        "where cycle = ? and approval_no = ?",
        [revoked_by, datetime.now(UTC).replace(tzinfo=None), note, cycle, existing.approval_no],
    )
    return existing


REVIEW_REASONS = ("highest_amount", "largest_change", "spanish", "paper", "e_invoice", "credit")


def review_sample(
    state: duckdb.DuckDBPyConnection, cycle: str, accounts: pl.DataFrame, document_preferences: pl.DataFrame
) -> pl.DataFrame:
    """The invoices a reviewer looks at first, one per reason in ``REVIEW_REASONS`` order when the cycle has
    one (an invoice shown once, for its first reason): highest total; largest absolute change against the
    account's previous invoice; a Spanish-language, a paper and an e-invoice account (``einvoice`` of its
    document preferences); a credit (a negative total, a credit line, or a credit note)."""
    e_invoice_accounts = document_preferences.filter(pl.col("einvoice").fill_null("none") != "none")
    review_accounts = accounts.select("account_id", "language", "delivery_preference").with_columns(
        e_invoice=pl.col("account_id").is_in(e_invoice_accounts["account_id"].implode())
    )
    state.register("review_accounts", review_accounts)
    try:
        return state.sql(
            """
            with
            this_cycle as (
                select invoice_number, account_id, total_amount, issue_date
                from invoices where cycle = $cycle
            ),
            previous as (
                select i.account_id, arg_max(i.total_amount, i.issue_date) as previous_total
                from invoices i join this_cycle c using (account_id)
                where i.issue_date < c.issue_date
                group by all
            ),
            credits as (
                select distinct invoice_number from invoice_lines
                where section = 'adjustments' and amount < 0
                union
                select invoice_number from credit_notes
            ),
            candidates as (
                select c.invoice_number, c.account_id, c.total_amount,
                       c.total_amount - p.previous_total as change,
                       a.language, a.delivery_preference, coalesce(a.e_invoice, false) as e_invoice,
                       c.total_amount < 0 or c.invoice_number in (select invoice_number from credits) as credit
                from this_cycle c
                left join previous p using (account_id)
                left join review_accounts a using (account_id)
            ),
            picks as (
                select 1 as rank, 'highest_amount' as reason, invoice_number from candidates
                    qualify row_number() over (order by total_amount desc, invoice_number) = 1
                union all
                select 2, 'largest_change', invoice_number from candidates where change is not null
                    qualify row_number() over (order by abs(change) desc, invoice_number) = 1
                union all
                select 3, 'spanish', invoice_number from candidates where language = 'es'
                    qualify row_number() over (order by invoice_number) = 1
                union all
                select 4, 'paper', invoice_number from candidates where delivery_preference = 'paper'
                    qualify row_number() over (order by invoice_number) = 1
                union all
                select 5, 'e_invoice', invoice_number from candidates where e_invoice
                    qualify row_number() over (order by invoice_number) = 1
                union all
                select 6, 'credit', invoice_number from candidates where credit
                    qualify row_number() over (order by invoice_number) = 1
            )
            select
                arg_min(p.reason, p.rank) as reason, p.invoice_number, any_value(c.account_id) as account_id,
                any_value(c.total_amount) as total_amount, any_value(c.change) as change_vs_previous
            from picks p join candidates c using (invoice_number)
            group by p.invoice_number
            order by min(p.rank)
            """,
            params={"cycle": cycle},
        ).pl()
    finally:
        state.unregister("review_accounts")


def write_review_sample(sample: pl.DataFrame, folder: Path) -> Path:
    """Write the review sample beside the cycle's PDFs (``review_sample.csv``) for the reviewer."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_atomically(folder / "review_sample.csv", sample.write_csv().encode())
