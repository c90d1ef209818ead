"""Account balances at finalisation (state.duckdb, inside the cycle's finalisation transaction): post the
cycle's adjustments, payments and disputes to their ledgers, apply payments oldest invoice first, and add the
balance-side invoice lines — pending adjustments (each carried exactly once) and the late fee on the
undisputed past-due amount."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import duckdb

from pipeline.cycles import BillCycle

# Open amount of every finalised invoice: total − payments applied − credit notes issued against it.
OPEN_INVOICES = """
    select
        invoices.invoice_number,
        invoices.account_id,
        invoices.issue_date,
        invoices.due_date,
        invoices.total_amount
            - coalesce((select sum(amount) from payment_allocations a
                        where a.invoice_number = invoices.invoice_number), 0)
            - coalesce((select sum(amount) from credit_notes c
                        where c.invoice_number = invoices.invoice_number), 0) as open_amount
    from invoices
"""


@dataclass(frozen=True)
class BalanceRules:
    """The carrier's balance rules from settings: late fee rate (percent of the undisputed past-due amount)
    and the days of grace after the due date before it applies."""

    late_fee_percent: Decimal
    late_fee_grace_days: int
    carrier_name: str = "cdrbill Telecom"


def post_cycle_inputs(state: duckdb.DuckDBPyConnection, cycle: BillCycle, now: datetime) -> None:
    """Post what happened up to the cycle's end to the ledgers, each at most once (ids are deterministic):
    adjustments (``adjustments_input``), payments (``payments_input``), disputes and their resolutions
    (``disputes_input``; a resolution with a credit posts a ``dispute_resolution`` adjustment)."""
    state.execute(
        """
        insert into adjustments
        select
            'adj:' || i.adjustment_id, i.account_id,
            case i.direction when 'credit' then -i.amount else i.amount end, accounts.currency, i.direction,
            i.reason, i.approved_by, 'adjustments.csv:' || i.adjustment_id, i.effective_date, ?, null
        from adjustments_input as i
        join accounts using (account_id)
        where i.effective_date <= ?
            and not exists (select 1 from adjustments a where a.adjustment_id = 'adj:' || i.adjustment_id)
        """,
        [now, cycle.end],
    )
    state.execute(
        """
        insert into payments
        select payment_id, account_id, received_on, amount, method, reference, ?, ?
        from payments_input as i
        where received_on <= ? and not exists (select 1 from payments p where p.payment_id = i.payment_id)
        """,
        [cycle.key, now, cycle.end],
    )
    state.execute(
        """
        insert into disputes
        select dispute_id, account_id, invoice_number, amount, reason, opened_on, 'open', null, null, null, null
        from disputes_input as i
        where opened_on <= ? and not exists (select 1 from disputes d where d.dispute_id = i.dispute_id)
        """,
        [cycle.end],
    )
    state.execute(
        """
        create or replace temp table resolved_now as
        select i.*
        from disputes_input as i
        join disputes as d using (dispute_id)
        where d.status = 'open' and i.resolved_on is not null and i.resolved_on <= ?
        """,
        [cycle.end],
    )
    state.execute(
        """
        insert into adjustments
        select
            'dispute:' || r.dispute_id, r.account_id, -r.credit_granted, accounts.currency, 'dispute_resolution',
            'Dispute ' || r.dispute_id || ' on ' || r.invoice_number || ' resolved: ' || r.reason,
            coalesce(r.approved_by, 'unknown'), 'dispute:' || r.dispute_id, r.resolved_on, ?, null
        from resolved_now as r
        join accounts using (account_id)
        where coalesce(r.credit_granted, 0) > 0
        """,
        [now],
    )
    state.execute(
        """
        update disputes set
            status = 'resolved', resolved_on = r.resolved_on, credit_granted = coalesce(r.credit_granted, 0),
            approved_by = r.approved_by,
            adjustment_id = case when coalesce(r.credit_granted, 0) > 0 then 'dispute:' || r.dispute_id end
        from resolved_now as r
        where disputes.dispute_id = r.dispute_id
        """
    )


def apply_payments(state: duckdb.DuckDBPyConnection, cycle: BillCycle) -> None:
    """Apply every unapplied payment amount to the account's open invoices, oldest invoice first (by issue
    date, then number) and oldest payment first; what is left stays a credit for the next invoice. Vectorised:
    each side is laid on a running-total line and an allocation is the overlap of two intervals."""
    state.execute(
        f"""
        insert into payment_allocations
        with
        open_items as (
            select * from ({OPEN_INVOICES}) where open_amount > 0
        ),
        invoice_ranges as (
            select *,
                sum(open_amount) over (partition by account_id order by issue_date, invoice_number) as hi
            from open_items
        ),
        unapplied as (
            select payments.payment_id, payments.account_id, payments.received_on,
                   payments.amount - coalesce((select sum(amount) from payment_allocations a
                                               where a.payment_id = payments.payment_id), 0) as left_amount
            from payments
        ),
        payment_ranges as (
            select *,
                sum(left_amount) over (partition by account_id order by received_on, payment_id) as hi
            from unapplied where left_amount > 0
        )
        select
            p.payment_id, i.invoice_number,
            least(i.hi, p.hi) - greatest(i.hi - i.open_amount, p.hi - p.left_amount) as amount, ?
        from payment_ranges p
        join invoice_ranges i
            on i.account_id = p.account_id
            and least(i.hi, p.hi) > greatest(i.hi - i.open_amount, p.hi - p.left_amount)
        """,
        [cycle.key],
    )


def balance_lines(
    state: duckdb.DuckDBPyConnection, cycle: BillCycle, issue_date: date, rules: BalanceRules
) -> None:
    """The temp table ``balance_lines`` (same columns as charge lines, no line numbers): every pending
    adjustment effective by the cycle's end (for any account, so a closed account gets a last bill carrying
    it), and, for the accounts of ``charge_lines``, the late fee — late fee percent × the undisputed open amount
    of invoices whose due date + grace is before this issue date, half_up to the minor unit of the
    account's currency."""
    state.execute(
        f"""
        create or replace temp table balance_lines as
        with
        billable as (select distinct account_id from charge_lines),
        held as (
            select invoice_number, sum(amount) as held_amount from disputes where status = 'open' group by all
        ),
        past_due as (
            select o.account_id, sum(greatest(0, o.open_amount - coalesce(held.held_amount, 0))) as past_due
            from ({OPEN_INVOICES}) as o
            left join held using (invoice_number)
            where o.due_date + ?::integer < ?::date and o.open_amount > 0
            group by all
        )
        select
            a.account_id, 'adjustments' as section, a.category, a.category as tax_category,
            ?::varchar as provider, null::varchar as service_number, null::varchar as jurisdiction,
            a.adjustment_id as code, a.reason || ' (approved by ' || a.approved_by || ')' as description,
            null::decimal(18, 6) as quantity, null::varchar as unit, null::decimal(18, 2) as taxable_base,
            null::decimal(18, 6) as rate, a.amount
        from adjustments a
        join accounts using (account_id)  -- a closed account still gets a bill that carries its adjustment
        where a.invoice_number is null and a.effective_date <= ?
        union all
        select
            p.account_id, 'late_fees', 'late_fee', 'late_fee', ?, null, null, 'LATE-FEE',
            'Late payment charge ' || ?::varchar || '% of ' || p.past_due::varchar || ' past due',
            null, null, p.past_due, ?::decimal(18, 6),
            from_minor(round_div(micros(p.past_due) * micros(?::decimal(18, 6)), 100 * 1000000 * c.unit_micros,
                                 'half_up'), c.minor_units)
        from past_due p
        join billable using (account_id)
        join account_currency c using (account_id)
        where p.past_due > 0
        """,
        [
            rules.late_fee_grace_days,
            issue_date,
            rules.carrier_name,
            cycle.end,
            rules.carrier_name,
            format(rules.late_fee_percent.normalize(), "f"),
            rules.late_fee_percent,
            rules.late_fee_percent,
        ],  # fmt: skip
    )


def record_balances(
    state: duckdb.DuckDBPyConnection, cycle: BillCycle, issue_date: date, rules: BalanceRules
) -> None:
    """Write ``invoice_balances`` for the cycle's new invoices (temp table ``numbered``) and mark the
    adjustments and credit notes they carry: previous balance (the account's last amount due) − payments
    posted this cycle − credit notes not yet shown = balance forward; + current charges = amount due."""
    state.execute(
        f"""
        insert into invoice_balances
        with
        new_invoices as (
            select invoices.invoice_number, invoices.account_id, invoices.total_amount
            from invoices join numbered using (account_id) where invoices.cycle = ?
        ),
        previous as (
            select invoices.account_id, arg_max(b.amount_due, invoices.issue_date) as amount_due
            from invoices join invoice_balances b using (invoice_number)
            where invoices.cycle <> ?
            group by all
        ),
        paid as (select account_id, sum(amount) as amount from payments where posted_cycle = ? group by all),
        credited as (
            select account_id, sum(amount) as amount from credit_notes where carried_on_invoice is null group by all
        ),
        held as (select account_id, sum(amount) as amount from disputes where status = 'open' group by all),
        due as (
            select o.account_id, sum(greatest(0, o.open_amount - coalesce(h.amount, 0))) as amount
            from ({OPEN_INVOICES}) o
            left join (select invoice_number, sum(amount) as amount from disputes where status = 'open'
                       group by all) h using (invoice_number)
            where o.due_date + ?::integer < ?::date and o.open_amount > 0
            group by all
        )
        select
            n.invoice_number,
            coalesce(previous.amount_due, 0),
            coalesce(paid.amount, 0),
            coalesce(credited.amount, 0),
            coalesce(previous.amount_due, 0) - coalesce(paid.amount, 0) - coalesce(credited.amount, 0),
            n.total_amount,
            coalesce(previous.amount_due, 0) - coalesce(paid.amount, 0) - coalesce(credited.amount, 0)
                + n.total_amount,
            coalesce(held.amount, 0),
            coalesce(due.amount, 0)
        from new_invoices n
        left join previous using (account_id)
        left join paid using (account_id)
        left join credited using (account_id)
        left join held using (account_id)
        left join due using (account_id)
        """,
        [cycle.key, cycle.key, cycle.key, rules.late_fee_grace_days, issue_date],
    )
    state.execute(
        """
        update adjustments set invoice_number = invoices.invoice_number
        from balance_lines, invoices
        where balance_lines.section = 'adjustments' and adjustments.adjustment_id = balance_lines.code
            and invoices.account_id = adjustments.account_id and invoices.cycle = ?
        """,
        [cycle.key],
    )
    state.execute(
        """
        update credit_notes set carried_on_invoice = invoices.invoice_number
        from invoices
        where credit_notes.carried_on_invoice is null and invoices.account_id = credit_notes.account_id
            and invoices.cycle = ?
        """,
        [cycle.key],
    )
