"""``cdrbill``: run bill cycles through the same Dagster job the UI and the schedule use, open the UI, and
print a cycle's summary."""

import argparse
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
from pipeline.locks import hold
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


def run_cycle(home: Home, cycle: str, job: str = "bill_cycle") -> dg.ExecuteInProcessResult:
    """Run the ``bill_cycle`` job (or ``recycle_suspense``) for one cycle partition on the persistent
    instance."""
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
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    return result


def stage_sample(home: Home) -> None:
    """Put the sample month in the home: reference data (when none is there yet) and its landing files."""
    if not any(home.reference.glob("*.csv")):
        shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    shutil.copytree(SAMPLE_DIR / "landing", home.landing, dirs_exist_ok=True)


def issue_credit_note_command(home: Home, args: argparse.Namespace) -> int:
    """``cdrbill credit-note``: issue one credit note in the state ledger and print its number."""
    from pipeline.credit_notes import CreditNoteError, issue_credit_note
    from pipeline.settings import load_settings
    from pipeline.state import open_state

    try:
        amount = Decimal(args.amount)
        with open_state(home.state_db) as state:
            note = issue_credit_note(
                state, args.invoice, amount, args.reason, args.approved_by, load_settings(home.reference)
            )
    except (CreditNoteError, InvalidOperation) as error:
        print(f"cdrbill: credit note refused: {error}", file=sys.stderr)
        return 2
    print(f"credit note {note.credit_note_number}: {note.amount} {note.currency} on {note.invoice_number} "
          f"({note.account_id})")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdrbill", description=__doc__)
    parser.add_argument("--home", help="home directory (default: $CDRBILL_HOME or .cdrbill in the checkout)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help=f"land the sample month and run bill cycle {SAMPLE_CYCLE}")
    run = commands.add_parser("run", help="run one bill cycle on whatever has landed")
    run.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    recycle = commands.add_parser(
        "recycle", help="re-mediate and re-rate a cycle's suspense after fixing reference data or sources"
    )
    recycle.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    summary = commands.add_parser("summary", help="print a cycle's summary")
    summary.add_argument("--cycle", required=True)
    credit = commands.add_parser("credit-note", help="issue a credit note against a finalised invoice")
    credit.add_argument("--invoice", required=True, help="the invoice number it credits, e.g. INV-00000012")
    credit.add_argument("--amount", required=True, help="amount credited, e.g. 12.50")
    credit.add_argument("--reason", required=True, help="why (printed on the credit note)")
    credit.add_argument("--approved-by", required=True, help="who approved it")
    ui = commands.add_parser("ui", help="open the Dagster UI on 127.0.0.1 with a persistent instance")
    ui.add_argument("--port", type=int, default=3000)
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
    if args.command in RATING_COMMANDS:
        return run_rating_command(home, args)
    if args.command in WAREHOUSE_COMMANDS:
        return run_warehouse_command(home, args)
    if args.command == "summary":
        print(format_summary(cycle_summary(home, args.cycle)))
        return 0
    if args.command == "demo":
        stage_sample(home)
    try:
        cycle = BillCycle.parse(SAMPLE_CYCLE if args.command == "demo" else args.cycle).key
        result = run_cycle(home, cycle, "recycle_suspense" if args.command == "recycle" else "bill_cycle")
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
