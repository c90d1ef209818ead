"""Intake on two cores: a file's batches are parsed and normalised in parts on two threads and written in line
order on the intake thread, and the next file is hashed meanwhile (``pipeline.ordered.ordered_map``). The
results, their order, the errors and what a kill leaves behind are those of a plain loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import stage_sample
from polars.testing import assert_frame_equal
from test_format_parsers import emi_pack

from pipeline.engine import first_row
from pipeline.home import Home
from pipeline.intake import register_landed_files
from pipeline.lake import partition_dir
from pipeline.ordered import ordered_map
from pipeline.reference import load_reference
from pipeline.state import open_state

CYCLE = "2026-10"
SMALL_BATCHES = 2000  # bytes: every sample file is several batches, each parsed in two parts


class Taken:
    """The items of a list, counting how many were taken from it (to see how far ahead a map reads)."""

    def __init__(self, items: list[int], fail_after: int | None = None) -> None:
        self.items, self.fail_after, self.taken = items, fail_after, 0

    def __iter__(self):
        for item in self.items:
            if self.fail_after is not None and self.taken == self.fail_after:
                raise OSError("the source failed")
            self.taken += 1
            yield item


def slow_square(item: int) -> int:
    time.sleep(0.02 * (item % 3))  # later items often finish first
    return item * item


def test_ordered_map_gives_every_result_in_order_and_reads_only_ahead():
    source = Taken(list(range(40)))
    results = []
    for result in ordered_map(slow_square, source, workers=2, ahead=3):
        results.append(result)
        assert source.taken - len(results) <= 2  # taken and not yet handed back: at most `ahead`, one handed over
    assert results == [i * i for i in range(40)]


def test_ordered_map_raises_a_task_error_at_its_turn_and_leaves_no_thread_working():
    finished: list[int] = []

    def task(item: int) -> int:
        if item == 5:
            raise ValueError("batch 5 is damaged")
        time.sleep(0.05)
        finished.append(item)
        return item

    got = []
    with pytest.raises(ValueError, match="batch 5"):
        for result in ordered_map(task, Taken(list(range(20))), workers=2, ahead=3):
            got.append(result)
    assert got == [0, 1, 2, 3, 4]  # everything before the damaged batch, as a loop would have written it
    settled = list(finished)
    time.sleep(0.2)
    assert finished == settled  # nothing still running once the error reached the caller
    assert not [t for t in threading.enumerate() if t.name.startswith("ordered")]


def test_ordered_map_hands_over_what_came_before_a_source_error():
    source = Taken(list(range(10)), fail_after=4)
    got = []
    with pytest.raises(OSError, match="source failed"):
        for result in ordered_map(slow_square, source, workers=2, ahead=3):
            got.append(result)
    assert got == [0, 1, 4, 9]


def test_ordered_map_closed_early_waits_for_its_running_tasks():
    started, finished = [], []

    def task(item: int) -> int:
        started.append(item)
        time.sleep(0.1)
        finished.append(item)
        return item

    results = ordered_map(task, range(100), workers=2, ahead=4)
    assert next(results) == 0
    results.close()  # the consumer failed (a write error): the running tasks end, the rest never start
    assert sorted(finished) == sorted(started) and len(started) <= 4


def _intake(home_root: Path, batch_bytes: int) -> None:
    home = stage_sample(home_root)
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        register_landed_files(
            home, state, reference.sources, cycle=CYCLE, billing_timezone="America/Chicago",
            batch_bytes=batch_bytes,
        )  # fmt: skip


def _loaded(home_root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ledger (without times and paths) and every file's records, in file and line order as written."""
    with open_state(home_root / "state.duckdb") as state:
        ledger = state.sql(
            "select file_id, source_id, file_name, sha256, status, reason, duplicate_of, records, control_records "
            "from usage_files order by file_id"
        ).pl()
    files = sorted((home_root / "lake" / "usage_records").glob("file_id=*/records.parquet"))
    return ledger, pl.concat([pl.read_parquet(f) for f in files])


def test_intake_killed_between_batches_leaves_no_half_file_and_the_rerun_loads_the_same(tmp_path: Path):
    """Killed after a file's third batch was handed to the writer (more parts being parsed on the other
    threads, the next file being hashed): that file has no ledger row and no records in the lake; the next
    run loads every file as an uninterrupted run does, row for row."""
    _intake(tmp_path / "whole", 1 << 30)
    want_ledger, want_records = _loaded(tmp_path / "whole")

    killed_root = tmp_path / "killed"
    stage_sample(killed_root)
    script = (
        "import sys; from pathlib import Path; from pipeline.home import Home; "
        "from pipeline.intake import register_landed_files; from pipeline.reference import load_reference; "
        "from pipeline.state import open_state; home = Home(Path(sys.argv[1])).ensure(); "
        "sources = load_reference(home.reference).sources; ctx = open_state(home.state_db); state = ctx.__enter__(); "
        f"register_landed_files(home, state, sources, cycle='{CYCLE}', billing_timezone='America/Chicago', "
        f"batch_bytes={SMALL_BATCHES})"
    )
    env = {**os.environ, "CDRBILL_CRASH_AT": "intake.batch_normalised@20"}
    run = subprocess.run([sys.executable, "-c", script, str(killed_root)], env=env, check=False)
    assert run.returncode == -signal.SIGKILL
    with open_state(killed_root / "state.duckdb") as state:
        registered = state.sql("select file_id, status from usage_files order by file_id").fetchall()
        next_id = int(first_row(state, "select coalesce(max(file_id), 0) + 1 from usage_files")[0])
    # the kill came mid-way: the DUF file and its resend registered, the Chicago file being loaded not
    assert 0 < len(registered) < want_ledger.height
    published = {int(p.name.split("=")[1]) for p in (killed_root / "lake" / "usage_records").glob("file_id=*")}
    assert published == {file_id for file_id, status in registered if status == "loaded"}
    assert not partition_dir(killed_root / "lake", "usage_records", file_id=next_id).exists()

    with open_state(killed_root / "state.duckdb") as state:
        reference = load_reference(killed_root / "reference")
        register_landed_files(
            Home(killed_root), state, reference.sources, cycle=CYCLE, billing_timezone="America/Chicago",
            batch_bytes=SMALL_BATCHES,
        )  # fmt: skip
    got_ledger, got_records = _loaded(killed_root)
    assert_frame_equal(got_ledger, want_ledger)
    assert_frame_equal(got_records, want_records)


def test_emi_control_total_mismatch_in_small_batches_quarantines_the_whole_file(tmp_path: Path):
    """An EMI file whose last pack's trailer count is wrong, read in batches of 300 bytes while earlier
    batches are normalised and written on the other threads: quarantined whole — no records of it in the lake,
    no ledger row but its quarantine — and the other files load as they do without it."""
    _intake(tmp_path / "clean", SMALL_BATCHES)
    want_ledger, want_records = _loaded(tmp_path / "clean")

    home = stage_sample(tmp_path / "damaged")
    lines = emi_pack(7, 30) + emi_pack(8, 30)
    lines[-1] = lines[-1][:20] + "0000031" + lines[-1][27:]  # the trailer declares 31 details, the pack has 30
    (home.landing / "ilec-duf" / "DUF-20261101.emi").write_text("\n".join(lines) + "\n", encoding="ascii")
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        report = register_landed_files(
            home, state, reference.sources, cycle=CYCLE, billing_timezone="America/Chicago", batch_bytes=300
        )
    assert [(q["file_name"], q["reason"]) for q in report.quarantined] == [
        ("DUF-20261101.emi", "CONTROL_TOTAL_MISMATCH")
    ]
    file_id = report.quarantined[0]["file_id"]
    assert not partition_dir(home.lake, "usage_records", file_id=file_id).exists()
    assert list(home.quarantine.glob("*/*DUF-20261101.emi"))
    ledger, records = _loaded(home.root)
    assert ledger.filter(pl.col("file_id") == file_id)["status"].to_list() == ["quarantined"]
    assert records.filter(pl.col("file_id") == file_id).is_empty()
    # the damaged file lands between the sample's two DUF files: the others' ids after it move by one
    others = ledger.filter(pl.col("file_id") != file_id).drop("file_id", "duplicate_of")
    assert_frame_equal(others, want_ledger.drop("file_id", "duplicate_of"))
    assert_frame_equal(
        records.filter(pl.col("file_id") != file_id).drop("file_id"), want_records.drop("file_id")
    )
