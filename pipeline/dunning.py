"""Payment reminders (dunning): notices for invoices past due, by level, on the undisputed amount, sent once.

Billing rules applied here:

* the amount a reminder asks for is the invoice's **undisputed past-due amount** on the as-of date: total −
  payments applied − credit notes (``balances.OPEN_INVOICES``) − amounts under open dispute on that invoice;
  an invoice paid, credited or wholly disputed gets no reminder;
* the level is the highest of the settings' ``dunning_levels`` (days past the due date → level, e.g.
  15 → reminder, 30 → second notice, 45 → suspension notice) the invoice has reached on the as-of date;
* one reminder per invoice and level, ever (``payment_reminders``, unique (invoice, level)); a level reached
  after a higher one was sent is not sent; levels skipped (a run after a long pause) are not sent late —
  only the highest level reached;
* a reminder goes through the channel of the account's invoices: e-mail (PDF attached, deterministic
  Message-ID ``<REM-…@cdrbill.invalid>``, a message found in the outbox is recorded, not sent again) or paper
  (the PDF goes into the cycle's print batch); an e-mail account without a usable address gets paper;
* the ledger row is written after the notice went out, so a crash sends nothing twice.
"""

from __future__ import annotations

import email.headerregistry
import email.message
import email.policy
import email.utils
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from babel.dates import format_date

from pipeline.balances import OPEN_INVOICES
from pipeline.delivery import MESSAGE_ID_DOMAIN, clean_header_text, parse_recipient, send_once
from pipeline.documents import format_money, load_strings, template_environment
from pipeline.durable import write_atomically
from pipeline.engine import scalar
from pipeline.faults import crash_point
from pipeline.mail import sender_address
from pipeline.transports import Transport

EMAIL = "email"
PRINT = "print"
CSS_NAME = "reminder.css"


@dataclass
class ReminderReport:
    """Counts of one dunning run: reminders sent per level and per channel."""

    by_level: dict[str, int] = field(default_factory=dict)
    emailed: int = 0
    printed: int = 0
    recovered_from_outbox: int = 0
    failed: int = 0  # e-mails that failed for now (retried by the next run)

    @property
    def sent(self) -> int:
        return self.emailed + self.printed


def reminders_due(state: duckdb.DuckDBPyConnection, as_of: date, levels: dict[str, int]) -> pl.DataFrame:
    """The reminders to send on ``as_of``: per invoice with an undisputed past-due amount, the highest level
    reached (days past due ≥ the level's days) unless that level or a higher one was already sent.
    Columns: reminder_id, invoice_number, account_id, level, days_past_due, past_due_amount, currency,
    due_date."""
    ranked = pl.DataFrame(
        {
            "level": list(levels),
            "min_days": [int(d) for d in levels.values()],
        }
    ).with_columns(rank=pl.col("min_days").rank("ordinal").cast(pl.Int32))
    state.register("dunning_levels", ranked)
    try:
        return state.sql(
            f"""
            with
            held as (
                select invoice_number, sum(amount) as held_amount
                from disputes where status = 'open' group by all
            ),
            past_due as (
                select
                    o.invoice_number, o.account_id, o.due_date, invoices.currency,
                    greatest(0, o.open_amount - coalesce(held.held_amount, 0)) as past_due_amount,
                    date_diff('day', o.due_date, $as_of::date) as days_past_due
                from ({OPEN_INVOICES}) as o
                join invoices using (invoice_number)
                left join held using (invoice_number)
                where o.open_amount > 0
            ),
            reached as (
                select p.*, l.level, l.rank
                from past_due p
                join dunning_levels l on p.days_past_due >= l.min_days
                where p.past_due_amount > 0
                qualify row_number() over (partition by p.invoice_number order by l.rank desc) = 1
            ),
            already_sent as (
                select r.invoice_number, max(l.rank) as sent_rank
                from payment_reminders r join dunning_levels l using (level)
                group by all
            )
            select
                'REM-' || reached.invoice_number || '-' || reached.level as reminder_id,
                reached.invoice_number, reached.account_id, reached.level,
                reached.days_past_due::integer as days_past_due, reached.past_due_amount, reached.currency,
                reached.due_date
            from reached
            left join already_sent using (invoice_number)
            where already_sent.sent_rank is null or already_sent.sent_rank < reached.rank
            order by reached.invoice_number
            """,
            params={"as_of": as_of},
        ).pl()
    finally:
        state.unregister("dunning_levels")


def latest_delivered_cycle(state: duckdb.DuckDBPyConnection) -> str | None:
    """The latest cycle whose invoices went out (approved, at least one invoice e-mailed or printed): the cycle a
    daily reminder run is recorded under and whose print batch takes its paper reminders (rule: reminders
    cover every open invoice, whatever cycle billed it; none before any cycle was delivered)."""
    cycle = scalar(
        state,
        "select max(cycle) from delivery_ledger where status = 'sent' and channel in ('email', 'print')",
    )
    return None if cycle is None else str(cycle)


def _context(reminder: dict[str, Any], as_of: date, templates_dir: Path) -> dict[str, Any]:
    strings = load_strings(templates_dir, reminder["language"], "dunning")
    locale = strings["locale"]

    def t(key: str, **kwargs: Any) -> str:
        return str(strings[key]).format(**kwargs)

    address = [reminder["billing_address_line1"], f"{reminder['billing_city']}, {reminder['billing_state']}"]
    view = {
        "title": strings[f"title_{reminder['level']}"],
        "action": strings.get(f"action_{reminder['level']}", strings["action_reminder"]),
        "due_date": format_date(reminder["due_date"], "long", locale=locale),
        "as_of": format_date(as_of, "long", locale=locale),
        "amount": format_money(reminder["past_due_amount"], reminder["currency"], locale),
        "account": "****" + str(reminder["account_id"])[-4:],
        "address_lines": [*address[:1], f"{address[1]} {reminder['billing_zip']}"],
        "name": clean_header_text(str(reminder["account_name"])),
    }
    return {"r": reminder, "s": strings, "t": t, "v": view}


def render_reminder_pdf(reminder: dict[str, Any], as_of: date, templates_dir: Path, target: Path) -> Path:
    """Render one reminder (Jinja2 ``reminder.html.j2``, strings ``strings/dunning.<lang>.json``) to a PDF."""
    import weasyprint

    html = (
        template_environment(templates_dir)
        .get_template("reminder.html.j2")
        .render(_context(reminder, as_of, templates_dir))
    )
    pdf = weasyprint.HTML(string=html, base_url=str(templates_dir)).write_pdf(
        stylesheets=[weasyprint.CSS(filename=str(templates_dir / CSS_NAME))]
    )
    assert pdf is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(target, pdf)


def reminder_message_id(reminder_id: str) -> str:
    """Deterministic Message-ID of a reminder (rule: a resend is detected, never repeated)."""
    return f"<{reminder_id}@{MESSAGE_ID_DOMAIN}>"


def build_reminder_email(
    reminder: dict[str, Any], as_of: date, pdf_path: Path, recipient: str, sender: str, templates_dir: Path
) -> email.message.EmailMessage:
    """The reminder e-mail: text body from ``reminder_email.txt.j2``, the reminder PDF attached."""
    context = _context(reminder, as_of, templates_dir)
    subject = clean_header_text(
        context["t"]("email_subject", title=context["v"]["title"], invoice_number=reminder["invoice_number"])
    )
    body = template_environment(templates_dir).get_template("reminder_email.txt.j2").render(context)
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender_address(sender)
    to_addr = parse_recipient(recipient)
    assert to_addr is not None
    msg["To"] = email.headerregistry.Address(
        display_name=context["v"]["name"], username=to_addr.username, domain=to_addr.domain
    )
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(datetime.now(UTC))
    msg["Message-ID"] = reminder_message_id(reminder["reminder_id"])
    msg.set_content(body)
    msg.add_attachment(
        pdf_path.read_bytes(),
        maintype="application",
        subtype="pdf",
        filename=f"{reminder['reminder_id']}.pdf",
    )
    return msg


def send_payment_reminders(
    state: duckdb.DuckDBPyConnection,
    cycle: str,
    as_of: date,
    levels: dict[str, int],
    accounts: pl.DataFrame,
    reminders_dir: Path,
    sender: str,
    templates_dir: Path,
    transport: Transport,
) -> ReminderReport:
    """Send every reminder due on ``as_of`` through the account's channel and record each in
    ``payment_reminders`` after it went out (rule: one per invoice and level, ever). E-mails go through the
    delivery ledger's exactly-once protocol (``delivery.send_once``, channel ``reminder``); one refused for good
    goes to paper, one that failed for now is left for the next run. Paper reminders are rendered into
    ``reminders_dir`` and recorded on the ``print`` channel for the cycle's print batch."""
    due = reminders_due(state, as_of, levels)
    report = ReminderReport(by_level=dict.fromkeys(levels, 0))
    if due.is_empty():
        return report
    rows = due.join(
        accounts.select(
            "account_id",
            "account_name",
            "language",
            "delivery_preference",
            "email",
            "billing_address_line1",
            "billing_city",
            "billing_state",
            "billing_zip",
        ),
        on="account_id",
        how="left",
    )
    for reminder in rows.iter_rows(named=True):
        pdf_path = render_reminder_pdf(
            reminder, as_of, templates_dir, reminders_dir / f"{reminder['reminder_id']}.pdf"
        )
        recipient = parse_recipient(reminder["email"]) if reminder["delivery_preference"] == "email" else None
        message_id = None
        outcome = None
        if recipient is not None:
            message = build_reminder_email(
                reminder, as_of, pdf_path, recipient.addr_spec, sender, templates_dir
            )
            outcome = send_once(
                state,
                transport,
                (reminder["reminder_id"], "reminder"),
                cycle,
                reminder["account_id"],
                message,
                recipient.addr_spec,
            )
            if outcome.status == "failed":  # transient: no reminder row, the next run tries again
                report.failed += 1
                continue
        if recipient is not None and outcome is not None and outcome.status == "sent":
            message_id = str(message["Message-ID"])
            report.recovered_from_outbox += outcome.recovered or outcome.skipped
            crash_point("dunning.emailed")
            channel, destination = EMAIL, recipient.addr_spec
            report.emailed += 1
        else:  # paper by choice, no usable address, or the e-mail refused for good
            channel, destination = PRINT, str(pdf_path)
            report.printed += 1
        state.execute(
            "insert into payment_reminders values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                reminder["reminder_id"],
                reminder["invoice_number"],
                reminder["level"],
                cycle,
                reminder["account_id"],
                as_of,
                reminder["days_past_due"],
                reminder["past_due_amount"],
                reminder["currency"],
                channel,
                destination,
                message_id,
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
        report.by_level[reminder["level"]] = report.by_level.get(reminder["level"], 0) + 1
    return report
