"""The checked reference kept as typed tables beside its verdict (``pipeline.reference_snapshot``): the stages
after intake read it only while it is a whole snapshot of the reference's very content; a damaged, stale,
half-written or out-of-date snapshot is never used (the CSV files are read again and the snapshot rebuilt)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from pipeline.home import Home
from pipeline.reference import Reference, load_reference
from pipeline.reference_snapshot import SNAPSHOT_FILE, read_snapshot, write_snapshot
from pipeline.reference_verdict import VERDICT_FILE, checked_reference, reference_digest
from tests.conftest import stage_sample

REPO = Path(__file__).resolve().parent.parent


def same_tables(got: Reference, expected: Reference) -> None:
    """Every table there, in the same order, with the same column types and the same rows in the same order."""
    got_tables, expected_tables = got.tables(), expected.tables()
    assert list(got_tables) == list(expected_tables)
    for name, frame in expected_tables.items():
        assert got_tables[name].schema == frame.schema, name
        assert got_tables[name].equals(frame), name


def renamed_account(reference: Reference) -> Reference:
    """The reference with its first account renamed: tables a snapshot can hold that the CSV files do not."""
    tables = reference.tables()
    first = tables["accounts"]["account_id"][0]
    tables["accounts"] = tables["accounts"].with_columns(
        account_name=pl.when(pl.col("account_id") == first).then(pl.lit("KEPT IN THE SNAPSHOT"))
        .otherwise(pl.col("account_name"))
    )  # fmt: skip
    return Reference(tables)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return stage_sample(tmp_path / "home")


def paths(home: Home) -> tuple[Path, Path]:
    return home.root / VERDICT_FILE, home.root / SNAPSHOT_FILE


def test_a_good_check_keeps_the_tables_and_the_next_stage_reads_them(home: Home):
    verdict, snapshot = paths(home)
    checked = load_reference(home.reference)
    same_tables(checked_reference(home.reference, verdict), checked)  # the whole check, then kept
    kept = read_snapshot(snapshot, reference_digest(home.reference))
    assert kept is not None
    same_tables(kept, checked)
    same_tables(checked_reference(home.reference, verdict), checked)
    # what the next stage gets is the snapshot: one naming this content with other rows is what it reads
    write_snapshot(snapshot, reference_digest(home.reference), renamed_account(checked))
    assert "KEPT IN THE SNAPSHOT" in checked_reference(home.reference, verdict).accounts["account_name"]


def test_a_snapshot_of_other_content_is_not_used(home: Home):
    verdict, snapshot = paths(home)
    checked = checked_reference(home.reference, verdict)
    write_snapshot(snapshot, "0" * 64, renamed_account(checked))
    same_tables(checked_reference(home.reference, verdict), load_reference(home.reference))
    rebuilt = read_snapshot(snapshot, reference_digest(home.reference))
    assert rebuilt is not None
    same_tables(rebuilt, load_reference(home.reference))


def test_a_snapshot_without_a_verdict_is_not_trusted(home: Home):
    """A snapshot alone proves nothing: without the verdict the whole check runs (and refuses a broken table)."""
    verdict, snapshot = paths(home)
    checked = checked_reference(home.reference, verdict)
    with (home.reference / "adjustments.csv").open("a") as f:
        f.write("ADJ-9999,NO-SUCH-ACCOUNT,credit,1.00,test,tests,2026-10-20\n")
    write_snapshot(snapshot, reference_digest(home.reference), checked)  # forged for the broken content
    with pytest.raises(ValueError, match="adjustments.csv"):
        checked_reference(home.reference, verdict)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "empty", "not a zip"])
def test_a_damaged_snapshot_is_not_used_and_is_rebuilt(home: Home, damage: str):
    verdict, snapshot = paths(home)
    checked_reference(home.reference, verdict)
    data = bytearray(snapshot.read_bytes())
    if damage == "flipped byte":  # inside the accounts table's bytes: its CRC-32 no longer holds
        at = data.index(b"accounts.arrow") + 400
        data[at] ^= 0xFF
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"account_id,account_name\n" * 10)
    snapshot.write_bytes(bytes(data))
    assert read_snapshot(snapshot, reference_digest(home.reference)) is None
    same_tables(checked_reference(home.reference, verdict), load_reference(home.reference))
    rebuilt = read_snapshot(snapshot, reference_digest(home.reference))
    assert rebuilt is not None
    same_tables(rebuilt, load_reference(home.reference))


def test_a_changed_csv_file_invalidates_the_snapshot(home: Home):
    verdict, snapshot = paths(home)
    checked_reference(home.reference, verdict)
    before = reference_digest(home.reference)
    path = home.reference / "accounts.csv"
    lines = path.read_text().splitlines(keepends=True)
    first = lines[1].split(",")
    lines[1] = ",".join([first[0], "Renamed In The CSV", *first[2:]])
    path.write_text("".join(lines))
    got = checked_reference(home.reference, verdict)
    assert "Renamed In The CSV" in got.accounts["account_name"]
    same_tables(got, load_reference(home.reference))
    assert read_snapshot(snapshot, before) is None  # replaced by the new content's snapshot
    kept = read_snapshot(snapshot, reference_digest(home.reference))
    assert kept is not None
    same_tables(kept, got)


def test_a_snapshot_written_by_a_killed_process_is_not_used(home: Home):
    """A writer killed half way (SIGKILL after its fifth table) leaves the previous snapshot whole and its
    partial file unread; the next stage checks the new content and keeps it."""
    verdict, snapshot = paths(home)
    checked_reference(home.reference, verdict)
    old = snapshot.read_bytes()
    path = home.reference / "agents.csv"
    path.write_text(path.read_text().replace("\n", "\r\n"))  # same tables, another content (and digest)
    script = (
        "import sys; from pathlib import Path; from pipeline.reference_verdict import checked_reference; "
        "checked_reference(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    env = {**os.environ, "CDRBILL_CRASH_AT": "reference_snapshot.table_written@5"}
    run = subprocess.run(
        [sys.executable, "-c", script, str(home.reference), str(verdict)], cwd=REPO, env=env, check=False
    )
    assert run.returncode == -9  # killed at the fail point
    partials = list(home.root.glob(f"{SNAPSHOT_FILE}.*.partial"))
    assert len(partials) == 1 and partials[0].stat().st_size > 0
    assert snapshot.read_bytes() == old  # the previous snapshot, whole, of the previous content
    assert read_snapshot(snapshot, reference_digest(home.reference)) is None
    assert read_snapshot(partials[0], reference_digest(home.reference)) is None  # half a snapshot is none
    same_tables(checked_reference(home.reference, verdict), load_reference(home.reference))
    kept = read_snapshot(snapshot, reference_digest(home.reference))
    assert kept is not None
    same_tables(kept, load_reference(home.reference))


def test_partial_files_of_dead_writers_are_removed_and_a_live_ones_kept(home: Home):
    _, snapshot = paths(home)
    dead = home.root / f"{SNAPSHOT_FILE}.dead.partial"
    live = home.root / f"{SNAPSHOT_FILE}.live.partial"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(dead, (two_hours_ago, two_hours_ago))
    write_snapshot(snapshot, reference_digest(home.reference), load_reference(home.reference))
    assert not dead.exists()
    assert live.exists()
