"""Payment reminders: levels by days past due on the undisputed past-due amount, once per invoice and level,
through the account's channel (e-mail with the PDF, or paper into the print batch)."""

import mailbox
from datetime import date, datetime
from decimal import Decimal

import polars as pl
from conftest import SAMPLE_CYCLE
from delivery_fixtures import asset_metadata, copy_home, deliver
from pypdf import PdfReader

from pipeline.dunning import reminders_due
from pipeline.engine import scalar
from pipeline.state import open_state

DUE = date(2026, 11, 22)  # every sample invoice: issued 2026-11-01, due 21 days later
LEVELS = {"reminder": 15, "second_notice": 30, "suspension_notice": 45}


def _prepare(state) -> dict[str, object]:
    """Every invoice paid but five open ones (two of them paper), one wholly and one partly disputed;
    returns role → invoice number(s)."""
    rows = state.execute(
        """select invoice_number, account_id, total_amount, delivery_preference
        from invoices join accounts_now using (account_id) where cycle = ? order by invoice_number""",
        [SAMPLE_CYCLE],
    ).fetchall()
    email = [r for r in rows if r[3] == "email"]
    paper = [r for r in rows if r[3] == "paper"]
    disputed, partly = email[0], email[1]
    open_ones = {partly[0], email[2][0], email[3][0], paper[0][0], paper[1][0]}
    now = datetime(2026, 11, 30)
    for n, (invoice, account, total, _) in enumerate(
        r for r in rows if r[0] not in open_ones | {disputed[0]}
    ):
        state.execute(
            "insert into payments values (?, ?, '2026-11-20', ?, 'card', null, ?, ?)",
            [f"P-{n}", account, total, SAMPLE_CYCLE, now],
        )
        state.execute(
            "insert into payment_allocations values (?, ?, ?, ?)", [f"P-{n}", invoice, total, SAMPLE_CYCLE]
        )
    for dispute_id, (invoice, account, _total, _), amount in (
        ("D-1", disputed, disputed[2]),
        ("D-2", partly, Decimal("1.00")),
    ):
        state.execute(
            "insert into disputes values (?, ?, ?, ?, 'wrong charge', '2026-11-10', 'open', null, null, null, null)",
            [dispute_id, account, invoice, amount],
        )
    return {"disputed": disputed[0], "partly": partly[0], "open": open_ones}


def test_reminder_levels_on_the_undisputed_past_due_amount(waiting_cycle, tmp_path):
    home = copy_home(waiting_cycle[0], tmp_path / "home")
    accounts = pl.read_csv(home.reference / "accounts.csv", infer_schema=False)
    with open_state(home.state_db) as state:
        state.register("accounts_now", accounts)
        roles = _prepare(state)
        totals = dict(state.execute("select invoice_number, total_amount from invoices").fetchall())
        assert reminders_due(state, date(2026, 12, 6), LEVELS).is_empty()  # 14 days past due: not yet
        due = reminders_due(state, date(2026, 12, 7), LEVELS)  # 15 days
    # the five open invoices; none for the 43 paid ones nor the wholly disputed one
    assert set(due["invoice_number"]) == roles["open"] and set(due["level"]) == {"reminder"}
    partly = due.filter(pl.col("invoice_number") == roles["partly"]).row(0, named=True)
    assert partly["past_due_amount"] == totals[roles["partly"]] - Decimal("1.00")  # total − 1.00 disputed

    result = deliver(home, as_of="2026-12-07")
    assert result.success
    meta = asset_metadata(result, "payment_reminders")
    assert (meta["reminders"], meta["level_reminder"], meta["level_second_notice"]) == (5, 5, 0)
    assert (meta["emailed"], meta["to_print"]) == (3, 2)  # like the accounts' invoices
    box = mailbox.Maildir(home.outbox, create=False)
    reminders = [m for m in box if str(m["Message-ID"]).startswith("<REM-")]
    assert len(reminders) == 3 and len(box) == 36 + 3
    assert all(m.get_content_type() == "multipart/mixed" for m in reminders)
    with open_state(home.state_db) as state:
        paper = state.execute(
            "select destination from payment_reminders where channel = 'print' order by 1 limit 1"
        ).fetchall()[0][0]
    assert PdfReader(paper).pages[0].extract_text().count("****") == 1  # account number masked
    # the paper reminders went into the cycle's print batch with the 13 paper invoices
    assert asset_metadata(result, "print_batch")["printed"] == 13 + 2

    # re-running the same day sends nothing twice
    assert asset_metadata(deliver(home, as_of="2026-12-07"), "payment_reminders")["reminders"] == 0
    # 30 days past due: the second notice, once; then the suspension notice; then nothing more
    later = asset_metadata(deliver(home, as_of="2026-12-22"), "payment_reminders")
    assert (later["reminders"], later["level_second_notice"]) == (5, 5)
    last = asset_metadata(deliver(home, as_of="2027-01-06"), "payment_reminders")
    assert last["level_suspension_notice"] == 5
    assert asset_metadata(deliver(home, as_of="2027-02-01"), "payment_reminders")["reminders"] == 0
    with open_state(home.state_db) as state:
        assert scalar(state, "select count(distinct (invoice_number, level)) from payment_reminders") == 5 * 3


def test_a_long_pause_sends_only_the_highest_level_reached(waiting_cycle, tmp_path):
    home = copy_home(waiting_cycle[0], tmp_path / "home")
    with open_state(home.state_db) as state:
        due = reminders_due(state, date(2027, 1, 10), LEVELS)  # 49 days past due
    assert due.height == 49 and set(due["level"]) == {"suspension_notice"}
    assert set(due["days_past_due"]) == {49}


def test_spanish_reminders_use_the_spanish_strings(waiting_cycle, tmp_path):
    from pipeline.dunning import render_reminder_pdf
    from pipeline.home import TEMPLATES_DIR

    reminder = {
        "reminder_id": "REM-INV-1-reminder",
        "invoice_number": "INV-1",
        "account_id": "ACC-0001",
        "account_name": "Maria Lopez",
        "language": "es",
        "level": "second_notice",
        "days_past_due": 31,
        "past_due_amount": Decimal("42.10"),
        "currency": "USD",
        "due_date": DUE,
        "billing_address_line1": "1450 W Cermak Rd",
        "billing_city": "Chicago",
        "billing_state": "IL",
        "billing_zip": "60608",
    }
    pdf = render_reminder_pdf(reminder, date(2026, 12, 23), TEMPLATES_DIR, tmp_path / "r.pdf")
    text = PdfReader(pdf).pages[0].extract_text()
    assert "Segundo aviso" in text and "42.10" in text and "****0001" in text and "ACC-0001" not in text
