"""Bounces: delivery status reports read from the bounce mailbox, matched to invoices, and the accounts whose
e-mail keeps failing switched to paper with a notice mailed to their postal address.

Billing rules applied here:

* a report (pipeline/dsn.py) is matched to the invoice by the original Message-ID, else to the latest e-mail
  sent to its recipient (``matched_by``), both addresses in canonical form (``dsn.canonical_address``: an
  internationalised address, RFC 6531/6533, matches whether the report writes it in UTF-8, ``\\x{…}``-escaped or
  with the domain's A-label); unmatched reports are kept, counted, and change nothing;
* reading the same report twice records nothing new (``bounce_id``);
* an account is switched to paper after one hard bounce (5.x.x), or after ``soft_bounce_limit`` different
  messages soft-bounced (4.x.x) in a row — only bounces after the account's latest success report count, and
  several delay warnings about one message count once;
* the switch is a row of ``delivery_preference_overrides`` (reference data stays read-only), written with the
  notice: "in case an email bounces back several times, a note is mailed to the account address". The notice
  is a PDF in the print folder of the cycle (``print/<cycle>/notices/NOTICE-<account>.pdf``);
* a permanent SMTP refusal at sending (5xx) is a hard bounce too (``record_refusal``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mailbox
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from polars._typing import PolarsDataType

from pipeline.documents import template_environment
from pipeline.dsn import canonical_address, parse_dsn
from pipeline.durable import write_atomically
from pipeline.mail import clean_header_text

log = logging.getLogger(__name__)

NOTICE_TEMPLATE = "bounce_notice.html.j2"
NOTICE_STRINGS = Path("strings") / "bounce_notice.json"

_PARSED_SCHEMA: dict[str, PolarsDataType] = {
    "bounce_id": pl.String,
    "source": pl.String,
    "message_id": pl.String,
    "recipient": pl.String,
    "action": pl.String,
    "status": pl.String,
    "kind": pl.String,
    "diagnostic": pl.String,
    "reported_at": pl.Datetime("us"),
}


@dataclass
class BounceReport:
    """Counts of one bounce run: reports read, recipient results recorded by kind, switches to paper."""

    files_read: int = 0
    not_reports: int = 0
    already_recorded: int = 0
    hard: int = 0
    soft: int = 0
    success: int = 0
    unmatched: int = 0
    switched_to_paper: list[str] = field(default_factory=list)
    notices: list[Path] = field(default_factory=list)


def bounce_mailbox(env: Mapping[str, str], home_root: Path) -> Path:
    """The bounce Maildir: ``CDRBILL_BOUNCE_MAILDIR``, else ``<home>/bounces`` (rule: where DSNs arrive)."""
    configured = env.get("CDRBILL_BOUNCE_MAILDIR", "").strip()
    return Path(configured) if configured else Path(home_root) / "bounces"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _reported_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _parse_mailbox(folder: Path, report: BounceReport) -> pl.DataFrame:
    """Every recipient result of every report in the Maildir ``folder`` (new and cur), one row each."""
    rows: list[dict[str, Any]] = []
    if not folder.is_dir():
        return pl.DataFrame(schema=_PARSED_SCHEMA)
    box = mailbox.Maildir(folder, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        data = box.get_bytes(key)
        results = parse_dsn(data)
        report.files_read += 1
        if results is None:
            report.not_reports += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        for n, result in enumerate(results):
            rows.append(
                {
                    "bounce_id": hashlib.sha256(f"{digest}:{n}:{result.recipient}".encode()).hexdigest()[:32],
                    "source": key,
                    "message_id": result.original_message_id,
                    "recipient": result.recipient,
                    "action": result.action,
                    "status": result.status,
                    "kind": result.kind,
                    "diagnostic": result.diagnostic,
                    "reported_at": _reported_at(result.arrival),
                }
            )
    return pl.DataFrame(rows, schema=_PARSED_SCHEMA)


def read_bounces(con: duckdb.DuckDBPyConnection, folder: Path) -> BounceReport:
    """Record the reports in the bounce Maildir ``folder`` in ``bounces``, matched to invoices (rule: by
    Message-ID, else by recipient; a report already recorded adds nothing)."""
    report = BounceReport()
    parsed = _parse_mailbox(Path(folder), report)
    con.register("parsed_bounces", parsed)
    con.register("destination_forms", _destination_forms(con))
    try:
        con.execute("begin transaction")
        new = con.execute(
            """
            insert into bounces
            with fresh as (
                select p.* from parsed_bounces p anti join bounces b using (bounce_id)
            ),
            by_message_id as (
                select message_id, arg_max(invoice_number, delivered_at) as invoice_number,
                       arg_max(account_id, delivered_at) as account_id
                from delivery_ledger where message_id is not null group by message_id
            ),
            by_recipient as (
                select coalesce(forms.recipient, lower(delivery_ledger.destination)) as recipient,
                       arg_max(invoice_number, delivered_at) as invoice_number,
                       arg_max(account_id, delivered_at) as account_id
                from delivery_ledger
                left join destination_forms as forms using (destination)
                where message_id is not null and status in ('sent', 'rejected')
                group by all
            )
            select f.bounce_id, f.source, f.message_id,
                   coalesce(i.invoice_number, r.invoice_number),
                   coalesce(i.account_id, r.account_id),
                   f.recipient,
                   case when i.invoice_number is not null then 'message_id'
                        when r.invoice_number is not null then 'recipient' else 'none' end,
                   f.action, f.status, f.kind, f.diagnostic,
                   coalesce(f.reported_at, ?), ?
            from fresh f
            left join by_message_id i on i.message_id = f.message_id
            left join by_recipient r on r.recipient = f.recipient
            returning kind, matched_by
            """,
            [_now(), _now()],
        ).fetchall()
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("parsed_bounces")
        con.unregister("destination_forms")
    report.already_recorded = parsed.height - len(new)
    for kind, matched_by in new:
        setattr(report, str(kind), getattr(report, str(kind)) + 1)
        report.unmatched += matched_by == "none"
    return report


def _destination_forms(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The canonical form (``dsn.canonical_address``) of each e-mail destination in the delivery ledger that is
    not plain ASCII or names an IDNA A-label; every other address's canonical form is its lower case (SQL)."""
    destinations = con.sql(  # strlen counts bytes, length characters: they differ when not ASCII
        """
        select distinct destination from delivery_ledger
        where destination is not null and message_id is not null
            and (strlen(destination) <> length(destination) or contains(lower(destination), 'xn--'))
        """
    ).pl()["destination"]
    return pl.DataFrame(
        {"destination": destinations, "recipient": [canonical_address(d) for d in destinations]},
        schema={"destination": pl.String, "recipient": pl.String},
    )


def record_refusal(
    con: duckdb.DuckDBPyConnection,
    invoice_number: str,
    account_id: str,
    message_id: str,
    recipient: str,
    reason: str,
) -> None:
    """A permanent SMTP refusal at sending, recorded as a hard bounce (rule: 5xx = hard)."""
    status = next((word for word in reason.split() if word[:2] == "5." and word.count(".") == 2), "5.0.0")
    con.execute(
        "insert into bounces values (?, 'smtp', ?, ?, ?, ?, 'message_id', 'refused', ?, 'hard', ?, ?, ?) "
        "on conflict do nothing",
        [f"smtp:{message_id}", message_id, invoice_number, account_id, recipient, status, reason, _now(), _now()],
    )


def accounts_to_switch(con: duckdb.DuckDBPyConnection, soft_bounce_limit: int) -> pl.DataFrame:
    """Accounts not yet switched whose bounces since their latest success reach the rule: one hard bounce, or
    ``soft_bounce_limit`` different messages soft-bounced. Columns account_id, recipient, bounce_id, reason."""
    return con.sql(
        """
        with last_success as (
            select account_id, max(reported_at) as at
            from bounces where kind = 'success' and account_id is not null group by all
        ),
        counted as (
            select b.*, coalesce(b.message_id, b.bounce_id) as message
            from bounces b left join last_success s using (account_id)
            where b.account_id is not null and b.kind in ('hard', 'soft')
              and (s.at is null or b.reported_at > s.at)
              and b.account_id not in (select account_id from delivery_preference_overrides)
        ),
        per_account as (
            select account_id,
                   count(*) filter (where kind = 'hard') as hard_bounces,
                   count(distinct message) filter (where kind = 'soft') as soft_messages,
                   arg_max(bounce_id, (kind = 'hard', reported_at, bounce_id)) as bounce_id
            from counted group by all
        )
        select p.account_id, b.recipient, p.bounce_id,
               case when p.hard_bounces > 0
                    then 'hard bounce ' || b.status || coalesce(' (' || b.diagnostic || ')', '')
                    else p.soft_messages || ' soft bounces in a row (last ' || b.status || ')' end as reason,
               p.hard_bounces > 0 as hard
        from per_account p join bounces b using (bounce_id)
        where p.hard_bounces > 0 or p.soft_messages >= ?
        order by p.account_id
        """,
        params=[soft_bounce_limit],
    ).pl()


def _mask_email(address: str | None) -> str:
    if not address or "@" not in address:
        return "—"
    local, domain = address.rsplit("@", 1)
    return f"{local[:1]}***@{domain}"


def render_notice(
    account: Mapping[str, Any],
    recipient: str | None,
    hard: bool,
    target: Path,
    templates_dir: Path,
    carrier_name: str,
    phone: str,
) -> Path:
    """The paper notice to the account's postal address (rule: a bounced e-mail customer is told by mail that
    bills now come on paper, and how to go back); written atomically to ``target``."""
    import weasyprint

    language = str(account.get("language") or "en")
    all_strings = json.loads((Path(templates_dir) / NOTICE_STRINGS).read_text(encoding="utf-8"))
    strings = all_strings.get(language, all_strings["en"])

    def t(key: str, **kwargs: Any) -> str:
        return str(strings[key]).format(**kwargs)

    html = (
        template_environment(templates_dir)
        .get_template(NOTICE_TEMPLATE)
        .render(
            s=strings,
            t=t,
            language=language,
            carrier_name=carrier_name,
            phone=phone,
            name=clean_header_text(str(account["account_name"])),
            account_id=account["account_id"],
            address_lines=(
                account["billing_address_line1"],
                f"{account['billing_city']}, {account['billing_state']} {account['billing_zip']}",
            ),
            masked_email=_mask_email(recipient),
            why=strings["why_hard" if hard else "why_soft"],
        )
    )
    pdf = weasyprint.HTML(string=html).write_pdf()
    assert pdf is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(target, pdf)


def switch_to_paper(
    con: duckdb.DuckDBPyConnection,
    accounts: pl.DataFrame,
    soft_bounce_limit: int,
    cycle: str,
    notice_dir: Path,
    templates_dir: Path,
    carrier_name: str,
    phone: str,
) -> list[tuple[str, Path]]:
    """Switch the accounts that reached the bounce rule to paper: the notice is written, then the override
    row (rule: a crash in between writes the same notice again, never a second override)."""
    decided = accounts_to_switch(con, soft_bounce_limit)
    by_id = {row["account_id"]: row for row in accounts.iter_rows(named=True)}
    switched = []
    for row in decided.iter_rows(named=True):
        account = by_id.get(row["account_id"])
        if account is None:
            log.warning("%s: bounced but not in accounts.csv, not switched", row["account_id"])
            continue
        target = Path(notice_dir) / f"NOTICE-{row['account_id']}.pdf"
        render_notice(account, row["recipient"], bool(row["hard"]), target, templates_dir, carrier_name, phone)
        con.execute(
            "insert into delivery_preference_overrides values (?, 'paper', ?, ?, ?, ?, ?) on conflict do nothing",
            [row["account_id"], row["reason"], row["bounce_id"], cycle, str(target), _now()],
        )
        log.warning("%s: switched to paper: %s", row["account_id"], row["reason"])
        switched.append((str(row["account_id"]), target))
    return switched


def preference_overrides(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Account → delivery preference overriding the reference (rule: bounced accounts get paper)."""
    rows = con.execute("select account_id, preference from delivery_preference_overrides").fetchall()
    return {str(a): str(p) for a, p in rows}


def process_bounces(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    accounts: pl.DataFrame,
    soft_bounce_limit: int,
    cycle: str,
    notice_dir: Path,
    templates_dir: Path,
    carrier_name: str,
    phone: str,
) -> BounceReport:
    """Read the bounce mailbox, then switch the accounts that reached the bounce rule to paper."""
    report = read_bounces(con, folder)
    for account_id, notice in switch_to_paper(
        con, accounts, soft_bounce_limit, cycle, notice_dir, templates_dir, carrier_name, phone
    ):
        report.switched_to_paper.append(account_id)
        report.notices.append(notice)
    return report


def bounce_counts(con: duckdb.DuckDBPyConnection, cycle: str) -> dict[str, int]:
    """Hard and soft bounces recorded against the invoices of ``cycle`` (for the deliveries' metadata)."""
    rows = con.execute(
        "select b.kind, count(*) from bounces b join invoices i using (invoice_number) "
        "where i.cycle = ? and b.kind in ('hard', 'soft') group by all",
        [cycle],
    ).fetchall()
    counts = {"hard": 0, "soft": 0} | {str(k): int(n) for k, n in rows}
    return counts


__all__ = [
    "BounceReport",
    "accounts_to_switch",
    "bounce_counts",
    "bounce_mailbox",
    "preference_overrides",
    "process_bounces",
    "read_bounces",
    "record_refusal",
    "render_notice",
    "switch_to_paper",
]
