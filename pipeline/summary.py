"""The short summary a bill run ends with: files, records by outcome, invoices, total billed, outputs."""

from __future__ import annotations

from pipeline.accounting import home_record_accounting
from pipeline.approval import current_approval
from pipeline.home import Home
from pipeline.lake import partition_exists
from pipeline.late_usage import late_usage_counts
from pipeline.rating import RATED
from pipeline.state import open_state


def cycle_summary(home: Home, cycle: str) -> dict:
    """Counts and totals of one cycle, read from the ledgers and the lake."""
    with open_state(home.state_db) as state:
        files = dict(state.execute("select status, count(*) from usage_files group by all").fetchall())
        invoices, total = state.execute(
            "select count(*), coalesce(sum(total_amount), 0) from invoices where cycle = ?", [cycle]
        ).fetchall()[0]
        deliveries = dict(
            state.execute(
                "select channel, count(*) from delivery_ledger where cycle = ? and status = 'sent' group by all",
                [cycle],
            ).fetchall()
        )
        approval = current_approval(state, cycle)
    records: dict[str, int] = {}
    if partition_exists(home.lake, RATED, cycle=cycle):
        table = home_record_accounting(home.lake, cycle)
        records = {c: int(table[c].sum()) for c in table.columns if c not in ("file_id", "balanced")}
    return {
        "cycle": cycle,
        "files": files,
        "records": records,
        "late_usage": late_usage_counts(home.lake, cycle),
        "invoices": int(invoices),
        "total_billed": total,
        "deliveries": deliveries,
        "approval": approval,
        "home": home,
    }


def format_summary(s: dict) -> str:
    """The summary as the few lines a person reads at the end of a run."""
    files, rec = s["files"], s["records"]
    home: Home = s["home"]
    lines = [
        f"bill cycle {s['cycle']}",
        f"  files:    {sum(files.values())} registered — {files.get('loaded', 0)} loaded, "
        f"{files.get('duplicate_file', 0)} duplicate, {files.get('quarantined', 0)} quarantined",
        f"  records:  {rec.get('records_in', 0)} in = {rec.get('rated', 0)} rated + "
        f"{rec.get('suspended', 0) + rec.get('suspended_in_rating', 0)} suspended + "
        f"{rec.get('duplicate', 0)} duplicate + {rec.get('discarded', 0)} discarded",
        *_late_usage_lines(s),
        f"  invoices: {s['invoices']}, total billed {s['total_billed']} USD",
        f"  delivery: {s['deliveries'].get('email', 0)} e-mailed, {s['deliveries'].get('print', 0)} to print",
        _approval_line(s),
        f"  outputs:  invoices PDF {home.documents / s['cycle']}",
        f"            outbox (Maildir) {home.outbox}, print {home.print_dir / s['cycle']}",
        f"            warehouse {home.warehouse_db} (open read-only with duckdb)",
    ]
    return "\n".join(lines)


def _late_usage_lines(s: dict) -> list[str]:
    """Late usage in the summary, only when the cycle has some (billed here, or its own billed elsewhere)."""
    late = s.get("late_usage") or {}
    lines = []
    if late.get("billed_here"):
        lines.append(
            f"  late:     {late['billed_here']} records of final cycles {', '.join(late['from_cycles'])} billed here"
            f" (in the records above; {late['too_old']} too old: suspended)"
        )
    if late.get("billed_later") or late.get("waiting"):
        lines.append(
            f"  late:     {late['billed_later']} records arrived after this cycle was final: billed in a later "
            f"cycle; {late['waiting']} waiting for the next open cycle to run"
        )
    return lines


def _approval_line(s: dict) -> str:
    approval = s["approval"]
    if approval is not None:
        return f"  approval: approved by {approval.approved_by} at {approval.approved_at:%Y-%m-%d %H:%M} UTC"
    home: Home = s["home"]
    return (
        f"  approval: PENDING — nothing delivered; review {home.documents / s['cycle'] / 'review_sample.csv'}, "
        f"then cdrbill approve --cycle {s['cycle']} --by NAME"
    )
