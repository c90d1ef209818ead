"""Finalisation on a real state.duckdb: gapless numbers assigned once, balances (adjustments carried exactly
once, payments applied oldest first, disputes held from late fees), due dates, zero bills and credit notes."""

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from billrun_fixtures import OCTOBER, account, bill, plan, table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.credit_notes import CreditNoteError, issue_credit_note
from pipeline.cycles import BillCycle
from pipeline.invoicing import finalize_cycle, register_inputs
from pipeline.settings import Settings
from pipeline.state import open_state

D = Decimal
SEPTEMBER, NOVEMBER = BillCycle.parse("2026-09"), BillCycle.parse("2026-11")
LEDGERS = ("invoices", "invoice_lines", "invoice_series", "finalized_cycles", "adjustments", "payments",
           "payment_allocations", "disputes", "invoice_balances", "suppressed_bills", "credit_notes")  # fmt: skip


def finalize(folder: Path, lines: pl.DataFrame, cycle: BillCycle, accounts: pl.DataFrame,
             inputs: dict[str, pl.DataFrame] | None = None, config: Settings | None = None):  # fmt: skip
    path = folder / f"charges-{cycle.key}.parquet"
    lines.write_parquet(path)
    tables = {
        "accounts": accounts,
        **{n: table(n) for n in ("adjustments", "payments", "disputes")},
        **(inputs or {}),
    }
    with open_state(folder / "state.duckdb") as state:
        register_inputs(state, tables)
        return finalize_cycle(state, path, cycle, config or Settings())


def query(folder: Path, sql: str, params: list | None = None) -> list[tuple]:
    with open_state(folder / "state.duckdb") as state:
        return state.execute(sql, params or []).fetchall()


TWO = table("accounts", account("A"), account("B"))


def test_invoice_numbers_are_gapless_assigned_once_and_continue_next_cycle(tmp_path):
    october = bill({"accounts": TWO})
    first = finalize(tmp_path, october, OCTOBER, TWO)
    assert first.newly_finalized == 2
    numbers = query(tmp_path, "select account_id, invoice_number, total_amount from invoices order by 2")
    assert numbers == [("A", "INV-00000001", D("30.00")), ("B", "INV-00000002", D("30.00"))]
    again = finalize(tmp_path, october, OCTOBER, TWO)
    assert again.newly_finalized == 0
    assert (
        query(tmp_path, "select account_id, invoice_number, total_amount from invoices order by 2") == numbers
    )
    # a changed recomputation of a final cycle does not touch it; the difference is reported
    changed = october.with_columns(pl.when(pl.col("account_id") == "A").then(pl.col("amount") + D("1"))
                                   .otherwise(pl.col("amount")).alias("amount"))  # fmt: skip
    drift = finalize(tmp_path, changed, OCTOBER, TWO)
    assert drift.recomputed_differences == 1 and drift.total_amount == "60.00"
    finalize(tmp_path, bill({"accounts": TWO}, cycle=NOVEMBER), NOVEMBER, TWO)
    assert [n for (n,) in query(tmp_path, "select invoice_number from invoices order by 1")] == [
        f"INV-0000000{i}" for i in range(1, 5)
    ]


def test_a_failed_finalisation_numbers_nothing(tmp_path):
    broken = bill({"accounts": TWO}).with_columns(pl.lit(None, pl.String).alias("section"))
    with pytest.raises(Exception, match="NOT NULL|null"):
        finalize(tmp_path, broken, OCTOBER, TWO)
    assert query(tmp_path, "select count(*) from invoices") == [(0,)]
    assert query(tmp_path, "select count(*) from invoice_series where last_number > 0") == [(0,)]


ONE = table("accounts", account("A"))
ONE_HUNDRED = {"accounts": ONE, "plans": table("plans", plan("P", "100.00"))}


def test_a_dispute_with_a_partial_payment_and_a_late_fee(tmp_path):
    payment = {
        "payment_id": "PAY-1",
        "account_id": "A",
        "received_on": "2026-10-10",
        "amount": "40.00",
        "method": "ach",
    }
    dispute = {"dispute_id": "DSP-1", "account_id": "A", "invoice_number": "INV-00000001", "amount": "25.00",
               "reason": "calls not made", "opened_on": "2026-10-05"}  # fmt: skip
    # September: plan 100.00, no tax: INV-00000001 100.00, issued Oct 1, due Oct 22 (21 days)
    finalize(tmp_path, bill(ONE_HUNDRED, cycle=SEPTEMBER), SEPTEMBER, ONE)
    october_inputs = {"payments": table("payments", payment), "disputes": table("disputes", dispute)}
    finalize(tmp_path, bill(ONE_HUNDRED), OCTOBER, ONE, october_inputs)
    # October: PAY-1 40.00 applied to INV-1 → open 60.00. At the Nov 1 issue date INV-1 is past due (Oct 22 +
    # 5 days grace = Oct 27); 25.00 of it is under dispute: late fee 1.5% × (60.00 − 25.00 = 35.00) = 0.525 → 0.53
    lines = query(tmp_path, "select section, description, amount from invoice_lines where invoice_number = "
                            "'INV-00000002' order by line_no")  # fmt: skip
    assert lines == [("recurring", "Plan P — Oct 1–Oct 31", D("100.00")),
                     ("late_fees", "Late payment charge 1.5% of 35.00 past due", D("0.53"))]  # fmt: skip
    # balance: previous 100.00 − payments 40.00 = 60.00 forward; + 100.53 = 160.53 due; 25.00 held
    assert query(tmp_path, "select * exclude (invoice_number) from invoice_balances where invoice_number = "
                           "'INV-00000002'") == [(D("100.00"), D("40.00"), D("0.00"), D("60.00"), D("100.53"),
                                                  D("160.53"), D("25.00"), D("35.00"))]  # fmt: skip
    # November: the dispute is resolved with a 25.00 credit (an adjustment on the next invoice); PAY-2 60.00
    # clears INV-1 (oldest first); INV-2 (due Nov 22 + 5) is past due at Dec 1, nothing held: 1.5% × 100.53 =
    # 1.50795 → 1.51. Total 100.00 − 25.00 + 1.51 = 76.51
    resolved = dispute | {"resolved_on": "2026-11-10", "credit_granted": "25.00", "approved_by": "m.chen"}
    november_inputs = {
        "payments": table("payments", payment, payment | {"payment_id": "PAY-2", "received_on": "2026-11-20",
                                                          "amount": "60.00"}),
        "disputes": table("disputes", resolved),
    }  # fmt: skip
    finalize(tmp_path, bill(ONE_HUNDRED, cycle=NOVEMBER), NOVEMBER, ONE, november_inputs)
    assert query(tmp_path, "select section, amount from invoice_lines where invoice_number = 'INV-00000003' "
                           "order by line_no") == [("recurring", D("100.00")), ("adjustments", D("-25.00")),
                                                   ("late_fees", D("1.51"))]  # fmt: skip
    assert query(tmp_path, "select payment_id, invoice_number, amount from payment_allocations order by 1, 2") == [
        ("PAY-1", "INV-00000001", D("40.00")), ("PAY-2", "INV-00000001", D("60.00")),
    ]  # fmt: skip
    assert query(tmp_path, "select status, adjustment_id from disputes") == [("resolved", "dispute:DSP-1")]


def test_every_pending_adjustment_is_carried_exactly_once(tmp_path):
    adjustment = {"adjustment_id": "ADJ-1", "account_id": "A", "direction": "credit", "amount": "5.00",
                  "reason": "Goodwill", "approved_by": "j.rivera", "effective_date": "2026-10-20"}  # fmt: skip
    later = adjustment | {
        "adjustment_id": "ADJ-2",
        "direction": "debit",
        "amount": "1.00",
        "effective_date": "2026-11-02",
    }
    inputs = {"adjustments": table("adjustments", adjustment, later)}
    with open_state(tmp_path / "state.duckdb") as state:  # rerating posts straight into the ledger
        state.execute("insert into adjustments values ('rerate:2026-10:A', 'A', -0.40, 'USD', 'rerate', "
                      "'Rerated calls', 'rating', 'rerate:2026-10', '2026-10-31', now(), null)")  # fmt: skip
    finalize(tmp_path, bill({"accounts": ONE}), OCTOBER, ONE, inputs)
    finalize(tmp_path, bill({"accounts": ONE}, cycle=NOVEMBER), NOVEMBER, ONE, inputs)
    finalize(tmp_path, bill({"accounts": ONE}, cycle=NOVEMBER), NOVEMBER, ONE, inputs)  # re-run: no-op
    carried = query(tmp_path, "select adjustment_id, amount, invoice_number from adjustments order by 1")
    # October carries ADJ-1 (−5.00) and the rerate (−0.40): 30.00 − 5.40 = 24.60; ADJ-2 is November's:
    # 30.00 + 1.00 + the late fee on October's unpaid 24.60 (due Nov 22 + 5 < Dec 1): 0.369 → 0.37 = 31.37
    assert carried == [("adj:ADJ-1", D("-5.00"), "INV-00000001"), ("adj:ADJ-2", D("1.00"), "INV-00000002"),
                       ("rerate:2026-10:A", D("-0.40"), "INV-00000001")]  # fmt: skip
    assert query(tmp_path, "select total_amount from invoices order by 1") == [(D("24.60"),), (D("31.37"),)]
    descriptions = query(
        tmp_path, "select description from invoice_lines where section = 'adjustments' order by 1"
    )
    assert descriptions[0] == ("Goodwill (approved by j.rivera)",)


def test_zero_bills_are_suppressed_with_a_reason_or_sent(tmp_path):
    free = {"accounts": TWO, "plans": table("plans", plan("P", "0.00"))}
    suppress = replace(Settings(), zero_bill_policy="suppress")
    (tmp_path / "s").mkdir()
    result = finalize(tmp_path / "s", bill(free), OCTOBER, TWO, config=suppress)
    assert result.invoices == 0
    assert query(tmp_path / "s", "select account_id, reason from suppressed_bills") == [("A", "ZERO_AMOUNT"),
                                                                                         ("B", "ZERO_AMOUNT")]  # fmt: skip
    (tmp_path / "t").mkdir()
    sent = finalize(tmp_path / "t", bill(free), OCTOBER, TWO)
    assert sent.invoices == 2 and sent.total_amount == "0.00"


def test_the_due_date_is_never_under_the_minimum(tmp_path):
    finalize(tmp_path, bill({"accounts": ONE}), OCTOBER, ONE,
             config=replace(Settings(), payment_terms_days=7, minimum_payment_days=14))  # fmt: skip
    # issued Nov 1; 7 days of terms would be Nov 8, under the 14-day minimum → Nov 15
    assert [str(d) for (d,) in query(tmp_path, "select due_date from invoices")] == ["2026-11-15"]


def test_a_credit_note_after_finalisation(tmp_path):
    finalize(tmp_path, bill(ONE_HUNDRED), OCTOBER, ONE)
    with open_state(tmp_path / "state.duckdb") as state:
        note = issue_credit_note(
            state, "INV-00000001", D("30.00"), "Billing error: wrong plan", "a.ng", Settings()
        )
        with pytest.raises(CreditNoteError, match="more than the 70.00 left"):
            issue_credit_note(state, "INV-00000001", D("70.01"), "again", "a.ng", Settings())
        with pytest.raises(CreditNoteError, match="not a finalised invoice"):
            issue_credit_note(state, "INV-00000099", D("1.00"), "x", "a.ng", Settings())
    assert note.credit_note_number == "CN-00000001" and note.invoice_number == "INV-00000001"
    # the invoice itself never changes; the next invoice's balance shows the credit:
    # previous 100.00 − credit 30.00 = 70.00 forward; the 70.00 left unpaid on INV-1 is past due at Dec 1:
    # late fee 1.5% × 70.00 = 1.05, so November is 101.05 and 70.00 + 101.05 = 171.05 is due
    finalize(tmp_path, bill(ONE_HUNDRED, cycle=NOVEMBER), NOVEMBER, ONE)
    assert query(tmp_path, "select total_amount from invoices order by 1") == [(D("100.00"),), (D("101.05"),)]
    assert query(tmp_path, "select previous_balance, credit_notes, balance_forward, amount_due from invoice_balances "
                           "where invoice_number = 'INV-00000002'") == [(D("100.00"), D("30.00"), D("70.00"),
                                                                         D("171.05"))]  # fmt: skip
    assert query(tmp_path, "select carried_on_invoice from credit_notes") == [("INV-00000002",)]


def snapshot(folder: Path) -> dict[str, list[tuple]]:
    with open_state(folder / "state.duckdb") as state:
        return {t: state.execute(f"select * exclude ({_volatile(t)}) from {t} order by all").fetchall()
                if _volatile(t) else state.execute(f"select * from {t} order by all").fetchall() for t in LEDGERS}  # fmt: skip


def _volatile(name: str) -> str:
    return {"invoices": "finalized_at", "finalized_cycles": "finalized_at", "adjustments": "posted_at",
            "payments": "posted_at", "suppressed_bills": "recorded_at"}.get(name, "")  # fmt: skip


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["0.00", "19.99", "49.00"]), st.sampled_from(["", "3.00", "80.00"])),
                min_size=1, max_size=4))  # fmt: skip
def test_rerunning_a_finalised_cycle_is_a_no_op(tmp_path_factory, accounts_spec):
    folder = tmp_path_factory.mktemp("rerun")
    ids = [f"A{i}" for i in range(len(accounts_spec))]
    accounts = table("accounts", *(account(a, plan=f"P{a}") for a in ids))
    plans = table(
        "plans", *(plan(f"P{a}", monthly) for a, (monthly, _) in zip(ids, accounts_spec, strict=True))
    )
    payments = table("payments", *({"payment_id": f"PAY-{a}", "account_id": a, "received_on": "2026-10-15",
                                     "amount": paid, "method": "card"}
                                    for a, (_, paid) in zip(ids, accounts_spec, strict=True) if paid))  # fmt: skip
    inputs = {"payments": payments}
    config = replace(Settings(), zero_bill_policy="suppress")
    finalize(
        folder,
        bill({"accounts": accounts, "plans": plans}, cycle=SEPTEMBER),
        SEPTEMBER,
        accounts,
        inputs,
        config,
    )
    october = bill({"accounts": accounts, "plans": plans})
    finalize(folder, october, OCTOBER, accounts, inputs, config)
    before = snapshot(folder)
    again = finalize(folder, october, OCTOBER, accounts, inputs, config)
    assert again.newly_finalized == 0 and snapshot(folder) == before


def test_a_closed_account_gets_a_last_bill_for_its_pending_credit(tmp_path):
    accounts = table("accounts", account("A"), account("GONE", deactivated="2026-09-15"))
    credit = {"adjustment_id": "ADJ-9", "account_id": "GONE", "direction": "credit", "amount": "7.00",
              "reason": "Refund of deposit", "approved_by": "j.rivera", "effective_date": "2026-10-03"}  # fmt: skip
    finalize(tmp_path, bill({"accounts": accounts}), OCTOBER, accounts, {"adjustments": table("adjustments", credit)})
    # GONE has no charges in October, but its credit is not left pending forever: a bill of −7.00 carries it
    assert query(tmp_path, "select account_id, total_amount from invoices order by 1") == [
        ("A", D("30.00")), ("GONE", D("-7.00"))
    ]  # fmt: skip
    assert query(tmp_path, "select invoice_number from adjustments") == [("INV-00000002",)]


def test_a_bad_zero_bill_policy_is_refused_with_the_fix(tmp_path):
    from pipeline.settings import load_settings

    (tmp_path / "settings.toml").write_text('zero_bill_policy = "drop"\nlate_fee_percent = "2.00"\n')
    with pytest.raises(ValueError, match="zero_bill_policy='drop'. Fix: use 'send' or 'suppress'"):
        load_settings(tmp_path)
