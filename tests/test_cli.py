"""The README's demo command: ``cdrbill demo`` runs the sample cycle through the Dagster job on a persistent
instance and prints the summary; ``cdrbill summary`` prints it again."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[1]


def cdrbill(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CDRBILL_HOME", "DAGSTER_HOME")}
    return subprocess.run(
        [sys.executable, "-m", "assets.cli", "--home", str(home), *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_demo_runs_the_sample_cycle_and_prints_the_summary(tmp_path):
    home = tmp_path / "home"
    done = cdrbill(home, "demo")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "files:    5 registered — 4 loaded, 1 duplicate, 0 quarantined" in done.stdout
    assert "records:  940 in = 863 rated + 9 suspended + 7 duplicate + 61 discarded" in done.stdout
    assert "invoices: 49, total billed 1572.23 USD" in done.stdout
    assert "delivery: 36 e-mailed, 13 to print" in done.stdout
    assert "succeeded; checks 4 of 4 passed" in done.stdout
    # the run is kept in the persistent instance, with telemetry off
    instance = home / "dagster"
    assert "enabled: false" in (instance / "dagster.yaml").read_text()
    assert any(instance.rglob("*.db"))

    again = cdrbill(home, "summary", "--cycle", "2026-10")
    assert again.returncode == 0 and "invoices: 49, total billed 1572.23 USD" in again.stdout

    # a recycle run with nothing fixed moves nothing and rates nothing twice
    recycled = cdrbill(home, "recycle", "--cycle", "2026-10")
    assert recycled.returncode == 0, recycled.stderr[-3000:]
    assert "records:  940 in = 863 rated + 9 suspended + 7 duplicate + 61 discarded" in recycled.stdout
    assert "succeeded; checks 2 of 2 passed" in recycled.stdout


def test_an_unknown_cycle_is_refused_clearly(tmp_path):
    done = cdrbill(tmp_path / "home", "run", "--cycle", "October")
    assert done.returncode != 0
    assert done.returncode == 2 and "bad bill cycle 'October'" in done.stderr
