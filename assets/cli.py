"""``cdrbill``: run bill cycles through the same Dagster job the UI and the schedule use, open the UI, and
print a cycle's summary."""

import argparse
import functools
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dagster as dg

from assets.rating_cli import RATING_COMMANDS, add_rating_commands, run_rating_command
from assets.warehouse_cli import WAREHOUSE_COMMANDS, add_warehouse_commands, run_warehouse_command
from pipeline.cycles import BillCycle
from pipeline.home import SAMPLE_DIR, Home
from pipeline.lake_upkeep import format_removals, sweep_lake
from pipeline.locks import HOME_LOCK, hold
from pipeline.summary import cycle_summary, format_summary

SAMPLE_CYCLE = "2026-10"
DAGSTER_YAML = """\
# written by cdrbill: run history lives here and survives restarts
telemetry:
  enabled: false
run_retries:
  enabled: false
  retry_on_asset_or_op_failure: false
"""


def prepare_instance(home: Home) -> Path:
    """A persistent Dagster instance directory under the home (telemetry off), set as ``DAGSTER_HOME``."""
    path = home.dagster_home
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(path)
    os.environ["CDRBILL_HOME"] = str(home.root)
    return path


def run_cycle(
    home: Home, cycle: str, job: str = "bill_cycle", approved_by: str | None = None, note: str = ""
) -> dg.ExecuteInProcessResult:
    """Run the ``bill_cycle`` job (or ``recycle_suspense``, ``approve_cycle``) for one cycle partition on the
    persistent instance; ``approved_by`` approves the cycle's delivery in the same run (asset
    ``cycle_approval``) once its blocking checks pass."""
    prepare_instance(home)
    from assets.definitions import defs  # after DAGSTER_HOME is set

    # two runs started at once on a fresh home would both create the instance's SQLite schema: one at a time
    with hold(home.root / "locks" / "instance.lock", "opening the Dagster instance"):
        instance = dg.DagsterInstance.get()
    with instance:
        result = defs.resolve_job_def(job).execute_in_process(
            partition_key=cycle,
            instance=instance,
            raise_on_error=False,
            # the full event log is in the instance (cdrbill ui); the terminal gets warnings and errors
            run_config={
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                **approval_run_config(approved_by, note),
            },
        )
    return result


def approval_run_config(approved_by: str | None, note: str = "") -> dict:
    """The run config that approves a cycle's delivery as ``approved_by`` (none: the run stops at the gate)."""
    if not approved_by:
        return {}
    return {"ops": {"cycle_approval": {"config": {"approved_by": approved_by, "note": note}}}}


def approve_command(home: Home, args: argparse.Namespace) -> int:
    """``cdrbill approve``: approve a cycle's delivery and deliver it (job ``approve_cycle``), or revoke the
    approval while nothing has been delivered (``--revoke``)."""
    from pipeline.approval import ApprovalError, revoke_approval
    from pipeline.state import open_state

    cycle = BillCycle.parse(args.cycle).key
    if args.revoke:
        try:
            with open_state(home.state_db) as state:
                revoked = revoke_approval(state, cycle, args.by, args.note or None)
        except ApprovalError as error:
            print(f"cdrbill: revocation refused: {error}", file=sys.stderr)
            return 2
        print(f"cycle {cycle}: approval by {revoked.approved_by} revoked by {args.by}; nothing was delivered")
        return 0
    result = run_cycle(home, cycle, "approve_cycle", approved_by=args.by, note=args.note or "")
    if not result.success:
        failure = next((e for e in result.all_events if e.event_type_value == "STEP_FAILURE"), None)
        message = (
            failure.step_failure_data.error.message if failure and failure.step_failure_data.error else ""
        )
        print(f"cdrbill: approval of {cycle} FAILED: {message.strip()}", file=sys.stderr)
        return 1
    print(f"cycle {cycle} approved for delivery by {args.by}")
    print(format_summary(cycle_summary(home, cycle)))
    return 0


def stage_sample(home: Home) -> None:
    """Put the sample month in the home: reference data (when none is there yet) and its landing files."""
    if not any(home.reference.glob("*.csv")):
        shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    shutil.copytree(SAMPLE_DIR / "landing", home.landing, dirs_exist_ok=True)


def issue_credit_note_command(home: Home, args: argparse.Namespace) -> int:
    """``cdrbill credit-note``: issue one credit note (one amount, or several lines) in the state ledger and
    print its number."""
    from pipeline.credit_notes import CreditLine, CreditNoteError, issue_credit_note_lines
    from pipeline.engine import scalar
    from pipeline.settings import load_settings
    from pipeline.state import open_state

    try:
        lines = ([CreditLine(Decimal(args.amount))] if args.amount else []) + list(args.lines or [])
        if args.amount and args.lines:
            raise CreditNoteError("give --amount, or --line / --invoice-line, not both")
        with open_state(home.state_db) as state:
            note = issue_credit_note_lines(
                state, args.invoice, lines, args.reason, args.approved_by, load_settings(home.reference)
            )
    except (CreditNoteError, InvalidOperation) as error:
        print(f"cdrbill: credit note refused: {error}", file=sys.stderr)
        return 2
    print(f"credit note {note.credit_note_number}: {note.amount} {note.currency} on {note.invoice_number} "
          f"({note.account_id}){f' in {len(note.lines)} lines' if len(note.lines) > 1 else ''}")  # fmt: skip
    if args.no_deliver:
        return 0
    with open_state(home.state_db) as state:
        cycle = scalar(state, "select cycle from invoices where invoice_number = ?", [note.invoice_number])
    result = run_cycle(home, str(cycle), "deliver_credit_notes")
    if not result.success:
        print(f"cdrbill: delivery of {note.credit_note_number} FAILED (see cdrbill ui); it is retried by the "
              f"next run of cycle {cycle}", file=sys.stderr)  # fmt: skip
        return 1
    [event] = result.asset_materializations_for_node("credit_note_deliveries")
    meta = {key: getattr(value, "value", value) for key, value in event.metadata.items()}
    if meta.get("pending_approval"):
        print(f"cycle {cycle} is not approved yet: the credit note is delivered with its approval")
    else:
        print(f"credit notes of cycle {cycle}: {meta['emailed']} e-mailed, {meta['to_print']} to print")
    return 0


def preview_command(home: Home, args: argparse.Namespace) -> int:
    """``cdrbill preview``: write the first page of a rendered invoice as PNG and print its path."""
    from pipeline.preview import write_preview

    try:
        cycle = BillCycle.parse(args.cycle).key
        path = write_preview(home.documents / cycle, args.invoice)
    except (ValueError, FileNotFoundError) as error:
        print(f"cdrbill preview: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _credit_line(text: str) -> object:
    """argparse type of ``--line DESCRIPTION=AMOUNT`` (a refused line is a usage error)."""
    from pipeline.credit_notes import CreditNoteError, parse_credit_line

    try:
        return parse_credit_line(text)
    except CreditNoteError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _invoice_line_credit(text: str) -> object:
    """argparse type of ``--invoice-line LINE_NO=AMOUNT``."""
    from pipeline.credit_notes import CreditNoteError, parse_invoice_line_credit

    try:
        return parse_invoice_line_credit(text)
    except CreditNoteError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdrbill", description=__doc__)
    parser.add_argument("--home", help="home directory (default: $CDRBILL_HOME or .cdrbill in the checkout)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help=f"land the sample month and run bill cycle {SAMPLE_CYCLE}")
    run = commands.add_parser("run", help="run one bill cycle on whatever has landed")
    run.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    run.add_argument(
        "--approve-as",
        metavar="NAME",
        help="approve the cycle's delivery as NAME in the same run (else it waits)",
    )
    approve = commands.add_parser(
        "approve", help="approve a cycle's delivery (after its blocking checks) and deliver it, or --revoke"
    )
    approve.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    approve.add_argument("--by", required=True, help="who approves (or revokes)")
    approve.add_argument("--note", default="", help="a note kept with the approval")
    approve.add_argument(
        "--revoke", action="store_true", help="revoke the approval (only before any delivery)"
    )
    recycle = commands.add_parser(
        "recycle", help="re-mediate and re-rate a cycle's suspense after fixing reference data or sources"
    )
    recycle.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    summary = commands.add_parser("summary", help="print a cycle's summary")
    summary.add_argument("--cycle", required=True)
    credit = commands.add_parser("credit-note", help="issue a credit note against a finalised invoice")
    credit.add_argument("--invoice", required=True, help="the invoice number it credits, e.g. INV-00000012")
    credit.add_argument("--amount", help="amount credited in one line, e.g. 12.50")
    credit.add_argument(
        "--line", dest="lines", action="append", type=_credit_line, metavar="DESCRIPTION=AMOUNT",
        help="a line of the credit, e.g. 'Usage credit, outage Oct 8=10.00' (repeat for several lines)",
    )  # fmt: skip
    credit.add_argument(
        "--invoice-line", dest="lines", action="append", type=_invoice_line_credit, metavar="LINE_NO=AMOUNT",
        help="credit part of a line of the invoice, e.g. 7=0.70 (its tax line; repeatable, in order with --line)",
    )  # fmt: skip
    credit.add_argument("--reason", required=True, help="why (printed on the credit note)")
    credit.add_argument("--approved-by", required=True, help="who approved it")
    credit.add_argument(
        "--no-deliver", action="store_true", help="only issue it: deliver with the cycle's next delivery run"
    )
    preview = commands.add_parser("preview", help="render an invoice's first page to PNG (beside its PDF)")
    preview.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    preview.add_argument("--invoice", required=True, help="invoice number, e.g. INV-00000001")
    ui = commands.add_parser("ui", help="open the Dagster UI on 127.0.0.1 with a persistent instance")
    ui.add_argument("--port", type=int, default=3000)
    lake = commands.add_parser("lake", help="the lake's upkeep")
    lake_actions = lake.add_subparsers(dest="lake_command", required=True)
    sweep = lake_actions.add_parser(
        "sweep", help="remove superseded versions past their grace, orphan versions and excess read cache"
    )
    sweep.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    add_rating_commands(commands)
    add_warehouse_commands(commands)
    args = parser.parse_args(argv)

    if args.home:
        os.environ["CDRBILL_HOME"] = str(Path(args.home).resolve())
    home = Home.from_env().ensure()
    if args.command == "ui":
        prepare_instance(home)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        return subprocess.call(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-m",
                "assets.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(args.port),
            ]
        )
    if args.command == "credit-note":
        return issue_credit_note_command(home, args)
    if args.command == "lake":
        waiting = functools.partial(print, "cdrbill lake sweep waits for", file=sys.stderr)
        with hold(home.root / "locks" / HOME_LOCK, "cdrbill lake sweep", waiting):  # no writer meanwhile
            print(format_removals(sweep_lake(home.lake, args.dry_run), args.dry_run))
        return 0
    if args.command == "approve":
        return approve_command(home, args)
    if args.command in RATING_COMMANDS:
        return run_rating_command(home, args)
    if args.command == "preview":
        return preview_command(home, args)
    if args.command in WAREHOUSE_COMMANDS:
        return run_warehouse_command(home, args)
    if args.command == "summary":
        print(format_summary(cycle_summary(home, args.cycle)))
        return 0
    approved_by = getattr(args, "approve_as", None)
    if args.command == "demo":
        stage_sample(home)
        approved_by = "demo"
        print(f'cdrbill demo approves the delivery of sample cycle {SAMPLE_CYCLE} as "demo"')
    try:
        cycle = BillCycle.parse(SAMPLE_CYCLE if args.command == "demo" else args.cycle).key
        if args.command == "recycle":
            result = run_cycle(home, cycle, "recycle_suspense")
        else:
            result = run_cycle(home, cycle, "bill_cycle", approved_by=approved_by)
    except (ValueError, dg.DagsterUnknownPartitionError) as error:
        print(
            f"cdrbill: {str(error).rstrip('.')}. A cycle is YYYY-MM, from 2026-01 to the last month that ended.",
            file=sys.stderr,
        )
        return 2
    checks = result.get_asset_check_evaluations()
    print(format_summary(cycle_summary(home, cycle)))
    print(
        f"  run:      {result.run_id} {'succeeded' if result.success else 'FAILED'}; "
        f"checks {sum(c.passed for c in checks)} of {len(checks)} passed (details: cdrbill ui)"
    )
    if not result.success:
        print(f"bill cycle {cycle} FAILED: see the run in the Dagster UI (cdrbill ui)", file=sys.stderr)
    elif (
        args.command == "demo"
    ):  # the demo also shows what analysts and ops get (cdrbill ui runs it by sensor)
        reports = run_cycle(home, cycle, "cycle_reports")
        produced = len(reports.get_asset_materialization_events()) - 1 if reports.success else 0
        print(
            f"  reports:  {produced} preset reports (cdrbill report list), dashboard "
            f"{home.root / 'reports' / cycle / 'dashboard.html'}"
            if reports.success
            else "  reports:  FAILED (see the cycle_reports run in cdrbill ui)"
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
