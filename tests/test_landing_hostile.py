"""Hostile landing folders (issue 9): odd and malicious file names, symlinks out of the landing folder,
things that are not files. Each is loaded intact, quarantined with a reason, or refused and reported in
place — never followed, never lost, never a crash."""

import os
import shutil
import unicodedata
from pathlib import Path

import dagster as dg
import pytest

from pipeline.home import SAMPLE_DIR, Home
from pipeline.intake import MAX_NAME_BYTES, complete_files, register_landed_files
from pipeline.reference import load_reference
from pipeline.state import open_state
from tests.test_intake_and_mediation import asterisk_line

CYCLE = "2026-10"
CDR = asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 83, "1.1").encode()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    (home.landing / "switch-chi").mkdir(parents=True, exist_ok=True)
    return home


def land(home: Home, name: bytes, data: bytes = CDR, folder: str = "switch-chi") -> Path:
    """Land a file under a name given as raw bytes (Linux file names are bytes, not text)."""
    path = Path(os.fsdecode(os.fsencode(home.landing / folder) + b"/" + name))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def intake(home: Home):
    with open_state(home.state_db) as state:
        report = register_landed_files(
            home,
            state,
            load_reference(home.reference).sources,
            cycle=CYCLE,
            billing_timezone="America/Chicago",
        )
        ledger = state.sql(
            "select file_name, status, reason, reason_detail, stored_path from usage_files"
        ).pl()
    return report, ledger


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


ACCEPTED = [
    pytest.param(b"CDR 2026-10 day 5.csv", id="spaces"),
    pytest.param("Brontë-北京-📞.csv".encode(), id="unicode"),
    pytest.param(unicodedata.normalize("NFD", "café.csv").encode(), id="unicode-decomposed"),
    pytest.param(b"x..%2F..%2Fetc%2Fpasswd", id="url-encoded-traversal"),
    pytest.param(b"x\\..\\..\\etc\\passwd.csv", id="backslash-traversal"),
    pytest.param(b"-rf --help.csv", id="leading-dash"),
    pytest.param(b"x" * MAX_NAME_BYTES, id="longest-storable-name"),
]


@pytest.mark.parametrize("name", ACCEPTED)
def test_odd_but_harmless_names_are_loaded_and_archived_under_the_same_name(home, name):
    land(home, name)
    report, ledger = intake(home)
    text = os.fsdecode(name)
    assert [f["file_name"] for f in report.loaded] == [text]
    assert ledger["status"].to_list() == ["loaded"]
    stored = Path(ledger["stored_path"][0])
    assert stored == home.archive / "switch-chi" / f"000001-{text}"  # inside the archive: no traversal
    assert stored.read_bytes() == CDR
    assert files_under(home.landing) == []
    assert report.refused == []


def test_a_name_starting_with_a_dot_is_an_upload_in_progress_and_is_left_alone(home):
    """``../`` cannot be inside a file name (``/`` is the separator); ``..x`` and ``.x`` are hidden names, which
    transfer tools use while writing: left in place untouched until renamed."""
    hidden = [
        land(home, b"..%2F..%2Fetc%2Fpasswd"),
        land(home, b"..\\..\\x.csv"),
        land(home, b".Master.csv.Xy12"),
    ]
    report, ledger = intake(home)
    assert ledger.height == 0 and report.refused == []
    assert all(path.read_bytes() == CDR for path in hidden)


BAD_NAMES = [
    pytest.param(b"bad\x1b[31mred.csv", r"bad\x1b[31mred.csv", "control", id="terminal-escape"),
    pytest.param(b"two\nlines.csv", r"two\nlines.csv", "control", id="newline"),
    pytest.param(b"tab\there.csv", r"tab\there.csv", "control", id="tab"),
    pytest.param(b"nul\x7f.csv", r"nul\x7f.csv", "control", id="delete-char"),
    pytest.param(b"caf\xe9.csv", r"caf\xe9.csv", "not valid UTF-8", id="latin-1-bytes"),
    pytest.param(
        "invoice\u202efdp.csv".encode(), r"invoice\u202efdp.csv", "text-direction", id="bidi-override"
    ),
    pytest.param(b"y" * (MAX_NAME_BYTES + 1), "y" * MAX_NAME_BYTES, "bytes long", id="one-byte-too-long"),
    pytest.param(b"z" * 255, "z" * MAX_NAME_BYTES, "255 bytes long", id="255-bytes"),
]


@pytest.mark.parametrize(("name", "shown", "problem"), BAD_NAMES)
def test_names_that_cannot_be_stored_are_quarantined_whole_with_a_printable_name(home, name, shown, problem):
    land(home, name)
    report, ledger = intake(home)
    assert report.loaded == []
    assert [(q["reason"], q["file_name"]) for q in report.quarantined] == [("BAD_FILE_NAME", shown)]
    assert problem in report.quarantined[0]["detail"] and "rename it" in report.quarantined[0]["detail"]
    assert ledger["status"].to_list() == ["quarantined"]
    assert not any(unicodedata.category(c) == "Cc" for c in ledger["file_name"][0] + ledger["stored_path"][0])
    stored = Path(ledger["stored_path"][0])
    assert stored == home.quarantine / "switch-chi" / f"000001-{shown}"
    assert stored.read_bytes() == CDR  # the raw bytes, kept whole
    assert files_under(home.landing) == []
    assert intake(home)[1].height == 1  # the next run finds nothing to do


def test_a_symlink_to_a_file_outside_landing_is_refused_in_place_and_never_read(home, tmp_path):
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_bytes(CDR)  # a readable CDR: following the link would load it
    link = home.landing / "switch-chi" / "Master-20261005.csv"
    link.symlink_to(secret)
    (home.landing / "switch-chi" / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    report, ledger = intake(home)
    assert ledger.height == 0 and report.loaded == [] and report.quarantined == []
    assert [(r["path"], r["reason"]) for r in report.refused] == [
        ("switch-chi/Master-20261005.csv", "SYMLINK"),
        ("switch-chi/dangling.csv", "SYMLINK"),
    ]
    assert "never followed" in report.refused[0]["detail"]
    assert link.is_symlink() and secret.read_bytes() == CDR  # both left as they were
    assert not (home.lake / "usage_records").exists()
    assert [r["reason"] for r in intake(home)[0].refused] == ["SYMLINK", "SYMLINK"]  # reported on every run


def test_a_symlinked_source_folder_is_refused_and_what_it_points_to_is_not_moved(home, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "Master-20261005.csv").write_bytes(CDR)
    (home.landing / "switch-nyc").symlink_to(outside, target_is_directory=True)
    report, ledger = intake(home)
    assert ledger.height == 0
    assert [(r["path"], r["reason"]) for r in report.refused] == [("switch-nyc", "SYMLINK")]
    assert (outside / "Master-20261005.csv").read_bytes() == CDR  # not moved into the archive
    assert files_under(home.archive) == []


def test_things_that_are_not_landed_files_are_refused_in_place(home):
    stray = land(home, b"stray.csv", folder="")  # directly in landing/, no source folder
    nested = land(home, b"inner.csv", folder="switch-chi/sub")
    fifo = home.landing / "switch-chi" / "pipe.csv"
    os.mkfifo(fifo)  # reading it would block the run forever
    good = land(home, b"Master-20261005.csv")
    report, ledger = intake(home)
    assert [f["file_name"] for f in report.loaded] == [good.name]
    assert sorted((r["path"], r["reason"]) for r in report.refused) == [
        ("stray.csv", "NOT_IN_A_SOURCE_FOLDER"),
        ("switch-chi/pipe.csv", "NOT_A_REGULAR_FILE"),
        ("switch-chi/sub", "NESTED_FOLDER"),
    ]
    assert stray.exists() and nested.read_bytes() == CDR and fifo.exists()
    assert ledger["status"].to_list() == ["loaded"]


def test_the_landing_sensor_scan_skips_what_intake_refuses(home, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_bytes(CDR)
    (home.landing / "switch-chi" / "link.csv").symlink_to(secret)
    good = land(home, b"Master-20261005.csv")
    first, scan = complete_files(home.landing, {}, {})
    second, _ = complete_files(home.landing, {}, scan)
    assert first == [] and second == [good]


def test_every_hostile_entry_is_accounted_for_and_reported_by_the_dagster_asset(tmp_path):
    """A landing folder with all of the above at once, through the real ``usage_files`` asset: every entry
    ends archived, quarantined or refused-in-place, and the run metadata counts the refused ones."""
    from assets.definitions import defs
    from assets.resources import CdrbillHome

    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    names = [b"ok one.csv", "ünï.csv".encode(), b"esc\x1b.csv", b"caf\xe9.csv", b"w" * 255]
    for number, name in enumerate(names):
        land(
            home,
            name,
            asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 60, f"{number}.1").encode(),
        )
    secret = tmp_path / "secret.csv"
    secret.write_bytes(CDR)
    (home.landing / "switch-chi" / "link.csv").symlink_to(secret)
    result = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=["usage_files"],
        partition_key=CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    metadata = result.asset_materializations_for_node("usage_files")[0].metadata
    assert metadata["files_loaded"].value == 2
    assert metadata["files_quarantined"].value == 3
    assert metadata["landing_entries_refused"].value == 1
    assert "link.csv" in metadata["refused_in_landing"].value
    assert len(files_under(home.archive)) == 2 and len(files_under(home.quarantine)) == 3
    assert files_under(home.landing) == [home.landing / "switch-chi" / "link.csv"]
    assert secret.read_bytes() == CDR
