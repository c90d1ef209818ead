"""The chain floor bench (``bench/chain_floor.py``) runs on a tiny generated month and its steps account for the
same records the pipeline's intake loads (no speed asserted: speed belongs to ``bench/``)."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from bench.chain_floor import STEPS, intake_statement, landed_files
from bench.dataset import ensure_dataset, parse_size
from bench.run import fresh_home
from bench.stages import intake
from pipeline.home import PROJECT_ROOT, Home


def test_the_chain_floor_reads_each_file_once_and_keeps_fewer_records_at_each_step(tmp_path: Path) -> None:
    dataset, _ = ensure_dataset(tmp_path / "cache", parse_size("2k"), prefixes=1000)
    run = subprocess.run(
        [sys.executable, "-m", "bench.chain_floor", "--dataset", str(dataset), "--repeat", "1"],
        cwd=PROJECT_ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    *lines, summary = [json.loads(line) for line in run.stdout.splitlines()]
    steps = {line["step"]: line for line in lines}
    assert list(steps) == list(STEPS)
    rows = {step: line["rows"] for step, line in steps.items()}
    # the floor reads every landed line, the resent DUF file too; intake skips the resend (same SHA-256) and
    # keeps the detail records; mediation keeps one answered call per content key with an account; rating
    # prices nearly all of them
    landed = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))["files"]
    assert rows["floor"] == sum(n for name, n in landed.items() if name.startswith("landing/"))
    resend = [name for name in landed if name.endswith("-resend.emi")]
    assert resend and rows["intake"] < rows["floor"] - landed[resend[0]]
    assert 0.8 * rows["intake"] < rows["mediation"] < rows["intake"]
    assert 0.9 * rows["mediation"] < rows["rating"] <= rows["mediation"]
    assert summary["runs"] == 1 and summary["raw_to_rated_x_floor"] > 0
    # the same records as the pipeline's intake loads from the same files (its normalised and suspended ones)
    fresh_home(dataset, tmp_path / "home")
    loaded = intake(Home(tmp_path / "home").ensure(), "2026-10", None)  # type: ignore[arg-type]
    assert loaded["records"] == rows["intake"]


def test_the_least_intake_numbers_records_in_file_order_and_reads_times_as_utc(tmp_path: Path) -> None:
    dataset, _ = ensure_dataset(tmp_path / "cache", parse_size("1k"), prefixes=1000)
    path = next(p for p in landed_files(dataset) if p.suffix == ".csv")
    con = duckdb.connect(config={"preserve_insertion_order": True})
    target = tmp_path / "intake.parquet"
    con.execute(intake_statement(path, 7, "switch-x", "America/Chicago", target))
    first = path.read_text(encoding="utf-8").splitlines()[0].split('","')
    row = con.execute(
        f"select file_id, line_no, charged_number, start_utc::varchar from read_parquet('{target}') "
        "order by line_no limit 1"
    ).fetchall()[0]
    # line 1: its number, src as E.164, and its start (local Chicago time) in UTC
    assert row[:3] == (7, 1, "+1" + first[1])
    start = datetime.fromisoformat(first[9]).replace(tzinfo=ZoneInfo("America/Chicago")).astimezone(UTC)
    assert row[3] == f"{start:%Y-%m-%d %H:%M:%S}"
    lines = len(path.read_text(encoding="utf-8").splitlines())
    numbers = con.execute(f"select min(line_no), max(line_no), count(*) from read_parquet('{target}')").fetchall()
    assert numbers == [(1, lines, lines)]
    # an EMI file: its detail records keep their line numbers among the pack header and trailer lines
    emi = next(p for p in landed_files(dataset) if p.suffix == ".emi")
    con.execute(intake_statement(emi, 8, "ilec-duf", "America/New_York", target))
    details = [n for n, line in enumerate(emi.read_text(encoding="ascii").splitlines(), 1) if line.startswith("010101")]
    got = con.execute(f"select line_no from read_parquet('{target}') order by line_no").fetchall()
    assert [n for (n,) in got] == details and details[0] > 1
