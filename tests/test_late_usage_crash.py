"""Late-usage routing survives a kill (in the style of tests/test_crash_safety.py): the routing is killed with
SIGKILL at the fail point ``late_usage.ledger_written`` — its ledger rows committed, the routes not yet in the
lake — and the next run routes each late call once: the ledger keeps one row per call (the first run's), the
routes are written, and the billing cycle's records in count each late call once."""

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipeline.home import Home
from pipeline.lake import partition_dir
from pipeline.late_usage import LATE_USAGE, routed_records_sql, routes_path
from pipeline.state import open_state

PROJECT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("late_usage_crash_driver.py")
SEPTEMBER, OCTOBER = "2026-09", "2026-10"


def _home(tmp_path: Path) -> Home:
    """September final on Oct 2; a file registered on Oct 4 holds two September calls (late) and an October one."""
    home = Home(tmp_path / "home").ensure()
    records = pl.DataFrame(
        {
            "file_id": pl.Series([7, 7, 7], dtype=pl.Int32),
            "line_no": pl.Series([1, 2, 3], dtype=pl.UInt32),
            "cycle": [SEPTEMBER, SEPTEMBER, OCTOBER],
            "call_date": [date(2026, 9, 20), date(2026, 9, 25), date(2026, 10, 3)],
            "status": ["ok", "ok", "ok"],
            "reason": pl.Series([None, None, None], dtype=pl.String),
        }
    )
    folder = partition_dir(home.lake, "usage_records", file_id=7)
    folder.mkdir(parents=True)
    records.write_parquet(folder / "records.parquet")
    with open_state(home.state_db) as state:
        state.execute(f"insert into finalized_cycles values ('{SEPTEMBER}', 0, 0, '2026-10-02 06:00:00')")
        state.execute(
            "insert into usage_files (file_id, source_id, file_name, sha256, size_bytes, registered_at, "
            "registered_cycle, status) values (7, 'switch-chi', 'Master-20261004.csv', 'x', 1, "
            f"'2026-10-04 08:00:00', '{OCTOBER}', 'loaded')"
        )
        # routed long ago: a July call billed in August. October's routing neither reads nor rewrites it
        state.execute("insert into late_usage values (3, 9, '2026-07', '2026-08', 'late_file', '2026-08-03')")
    return home


def _route(home: Home, routed_at: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CDRBILL_CRASH_AT"}
    if crash_at:
        env["CDRBILL_CRASH_AT"] = crash_at
    env["PYTHONPATH"] = str(PROJECT)
    return subprocess.run(
        [sys.executable, str(DRIVER), str(home.root), OCTOBER, routed_at],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _ledger(home: Home) -> list[tuple]:
    with duckdb.connect(str(home.state_db), read_only=True) as con:
        return con.execute(
            "select file_id, line_no, call_cycle, billed_cycle, route, routed_at from late_usage "
            "where billed_cycle = '2026-10' order by all"
        ).fetchall()


def test_killed_between_the_ledger_and_the_lake_the_rerun_routes_each_late_call_once(tmp_path: Path):
    home = _home(tmp_path)
    killed = _route(home, "2026-10-05T09:00:00", crash_at="late_usage.ledger_written")
    assert killed.returncode == -9, killed.stderr[-2000:]
    first = datetime(2026, 10, 5, 9)
    routed = [(7, 1, SEPTEMBER, OCTOBER, "late_file", first), (7, 2, SEPTEMBER, OCTOBER, "late_file", first)]
    assert _ledger(home) == routed  # committed before the kill
    assert not (home.lake / LATE_USAGE).exists()  # the routes never reached the lake

    again = _route(home, "2026-10-06T09:00:00")
    assert again.returncode == 0, again.stderr[-2000:]
    # routed_now 0 (the ledger already holds both), billed here 2, too old 0, October's own late records 0
    assert again.stdout.split() == ["0", "2", "0", "0"]
    assert _ledger(home) == routed  # each late call once, still the first run's rows
    october = pl.read_parquet(routes_path(home.lake, OCTOBER))
    september = pl.read_parquet(routes_path(home.lake, SEPTEMBER))
    assert october.select("line_no", "call_cycle", "billed_cycle").rows() == [
        (1, SEPTEMBER, OCTOBER), (2, SEPTEMBER, OCTOBER)
    ]  # fmt: skip
    assert september.select("line_no", "billed_cycle").rows() == [(1, OCTOBER), (2, OCTOBER)]
    # October's records in: its own call (line 3) and the two late calls, each once; September's: none
    source = f"read_parquet('{(home.lake / 'usage_records' / 'file_id=7' / 'records.parquet').as_posix()}')"
    with duckdb.connect() as con:
        oct_in = con.sql(routed_records_sql(source, OCTOBER, routes_path(home.lake, OCTOBER))).pl()
        sep_in = con.sql(routed_records_sql(source, SEPTEMBER, routes_path(home.lake, SEPTEMBER))).pl()
    assert sorted(zip(oct_in["line_no"], oct_in["late_from_cycle"], strict=True)) == [
        (1, SEPTEMBER), (2, SEPTEMBER), (3, None)
    ]  # fmt: skip
    assert sep_in.height == 0
    # the ledger is read for the cycles this routing can change (October, September) only: the July → August
    # row is not, and no routes are written for those cycles
    assert routes_path(home.lake, "2026-08") is None and routes_path(home.lake, "2026-07") is None

    # a third run moves nothing: the same ledger, the same routes (not even rewritten)
    link = os.readlink(partition_dir(home.lake, LATE_USAGE, cycle=OCTOBER))
    third = _route(home, "2026-10-07T09:00:00")
    assert third.returncode == 0 and third.stdout.split() == ["0", "2", "0", "0"]
    assert _ledger(home) == routed and os.readlink(partition_dir(home.lake, LATE_USAGE, cycle=OCTOBER)) == link
