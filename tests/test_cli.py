"""The README's demo command: ``cdrbill demo`` runs the sample cycle through the Dagster job on a persistent
instance and prints the summary; ``cdrbill summary`` prints it again."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assets.reports import cycle_reports_catalogue

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[1]


def cdrbill(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CDRBILL_HOME", "DAGSTER_HOME")}
    return subprocess.run(
        [sys.executable, "-m", "assets.cli", "--home", str(home), *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_demo_runs_the_sample_cycle_and_prints_the_summary(tmp_path):
    home = tmp_path / "home"
    done = cdrbill(home, "demo")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "files:    5 registered — 4 loaded, 1 duplicate, 0 quarantined" in done.stdout
    assert "records:  940 in = 863 rated + 9 suspended + 7 duplicate + 61 discarded" in done.stdout
    assert "invoices: 49, total billed 1881.77 USD" in done.stdout
    assert "delivery: 36 e-mailed, 13 to print" in done.stdout
    assert "succeeded; checks 6 of 6 passed" in done.stdout
    # then the cycle_reports job: every preset report without a required parameter, and the dashboard
    runnable = len(cycle_reports_catalogue())
    assert f"reports:  {runnable} preset reports (cdrbill report list), dashboard" in done.stdout
    assert (home / "reports" / "2026-10" / "dashboard.html").is_file()
    # the run is kept in the persistent instance, with telemetry off
    instance = home / "dagster"
    assert "enabled: false" in (instance / "dagster.yaml").read_text()
    assert any(instance.rglob("*.db"))

    again = cdrbill(home, "summary", "--cycle", "2026-10")
    assert again.returncode == 0 and "invoices: 49, total billed 1881.77 USD" in again.stdout

    # a recycle run with nothing fixed moves nothing and rates nothing twice
    recycled = cdrbill(home, "recycle", "--cycle", "2026-10")
    assert recycled.returncode == 0, recycled.stderr[-3000:]
    assert "records:  940 in = 863 rated + 9 suspended + 7 duplicate + 61 discarded" in recycled.stdout
    assert "succeeded; checks 2 of 2 passed" in recycled.stdout


def test_an_unknown_cycle_is_refused_clearly(tmp_path):
    done = cdrbill(tmp_path / "home", "run", "--cycle", "October")
    assert done.returncode != 0
    assert done.returncode == 2 and "bad bill cycle 'October'" in done.stderr


def test_a_credit_note_is_issued_from_the_command_line(tmp_path):
    from decimal import Decimal

    from billrun_fixtures import OCTOBER, account, bill, table

    from pipeline.invoicing import finalize_cycle, register_inputs
    from pipeline.settings import Settings
    from pipeline.state import open_state

    home = tmp_path / "home"
    accounts = table("accounts", account("A"))
    path = tmp_path / "charges.parquet"
    bill({"accounts": accounts}).write_parquet(path)
    with open_state(home / "state.duckdb") as state:
        register_inputs(state, {"accounts": accounts} | {n: table(n) for n in ("adjustments", "payments", "disputes")})
        finalize_cycle(state, path, OCTOBER, Settings())
    done = cdrbill(home, "credit-note", "--invoice", "INV-00000001", "--amount", "4.50",
                   "--reason", "Outage credit", "--approved-by", "a.ng", "--no-deliver")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "credit note CN-00000001: 4.50 USD on INV-00000001 (A)"
    # without --no-deliver it runs the job deliver_credit_notes: this cycle is not approved, so nothing yet
    held = cdrbill(home, "credit-note", "--invoice", "INV-00000001", "--amount", "0.50",
                   "--reason", "Rounding", "--approved-by", "a.ng")  # fmt: skip
    assert held.returncode == 0, held.stderr
    assert held.stdout.splitlines()[-1] == "cycle 2026-10 is not approved yet: the credit note is delivered with its approval"
    refused = cdrbill(home, "credit-note", "--invoice", "INV-00000001", "--amount", "26.00",
                      "--reason", "too much", "--approved-by", "a.ng")  # fmt: skip
    assert refused.returncode == 2 and "more than the 25.00 left to credit" in refused.stderr
    with open_state(home / "state.duckdb") as state:
        assert state.execute("select amount, reason, approved_by from credit_notes order by 1 desc").fetchall() == [
            (Decimal("4.50"), "Outage credit", "a.ng"),
            (Decimal("0.50"), "Rounding", "a.ng"),
        ]
