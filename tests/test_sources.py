"""Sources are configured one TOML file each; a bad file stops the run with an error naming it and the fix;
intake takes only complete files, by the folder each source claims, and refuses conflicting resends."""

import shutil
from pathlib import Path

import pytest

from pipeline.home import SAMPLE_DIR, Home
from pipeline.intake import register_landed_files, sequence_gaps
from pipeline.reference import load_reference
from pipeline.sources import SourceConfigError, load_sources
from pipeline.state import open_state
from tests.test_format_parsers import emi_pack
from tests.test_intake_and_mediation import asterisk_line

CALL = asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 83, "1.1")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    return home


def write_source(home: Home, source_id: str, text: str) -> Path:
    path = home.reference / "sources" / f"{source_id}.toml"
    path.write_text(text)
    return path


def land(home: Home, folder: str, name: str, data: str | bytes) -> Path:
    path = home.landing / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def intake(home: Home):
    with open_state(home.state_db) as state:
        report = register_landed_files(home, state, load_reference(home.reference).sources, cycle="2026-10",
                                       billing_timezone="America/Chicago")  # fmt: skip
        ledger = state.sql("select file_name, status, reason from usage_files order by file_id").pl()
        gaps = sequence_gaps(state)
    return report, ledger, gaps


def test_the_sample_sources_load_with_their_defaults(home):
    sources = load_reference(home.reference).sources
    assert sources.select("source_id", "format", "landing").rows() == [
        ("ilec-duf", "emi_duf", "ilec-duf"),
        ("switch-chi", "asterisk_csv", "switch-chi"),
        ("switch-nyc", "asterisk_csv", "switch-nyc"),
    ]
    assert sources["template"].null_count() == 3


BASE = 'format = "freeswitch_csv"\ntimezone = "America/Denver"\ndefault_region = "US"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + 'template = "example"\n', None),
        (BASE + 'templat = "example"\n', "unknown setting 'templat'"),
        ('format = "freeswitch_csv"\ndefault_region = "US"\n', "timezone is missing. Fix: add timezone"),
        (BASE.replace("freeswitch_csv", "genband"), "format 'genband' is unknown"),
        (BASE + 'template = "custom"\n', "template 'custom' is not a layout of freeswitch_csv"),
        (BASE.replace("America/Denver", "Mars/Olympus"), "timezone 'Mars/Olympus' is unknown"),
        (BASE.replace('"US"', '"XX"'), "default_region 'XX' is unknown"),
        (
            BASE + 'landing = "switch-chi"\n',
            "landing folder 'switch-chi' is already used by source 'switch-chi'",
        ),
        (BASE + 'file_sequence = "no group"\n', "file_sequence needs exactly one (group)"),
        (BASE + "timezone = \n", "not valid TOML"),
        (BASE + "marker_suffix = 3\n", "marker_suffix must be a non-empty text"),
    ],
)
def test_a_bad_source_file_names_itself_and_the_fix(home, text, message):
    path = write_source(home, "switch-den", text)
    if message is None:
        assert load_sources(path.parent).filter(source_id="switch-den")["template"].to_list() == ["example"]
        return
    with pytest.raises(SourceConfigError, match="switch-den.toml") as error:
        load_reference(home.reference)
    assert message in str(error.value) and "Fix:" in str(error.value)


def test_landing_folder_marker_files_and_unclaimed_folders(home):
    write_source(home, "switch-den", BASE + 'landing = "denver"\nmarker_suffix = ".done"\n')
    fs_line = ('"Ann","3125550100","2125550199","default","2026-10-05 09:15:00","2026-10-05 09:15:05",'
               '"2026-10-05 09:16:05","65","60","NORMAL_CLEARING","a-uuid","b-uuid","acct"\n')  # fmt: skip
    land(home, "denver", "a.csv", fs_line)  # no marker yet: still being written
    land(home, "switch-den", "b.csv", fs_line)  # the source id is not its folder: nobody claims it
    report, ledger, _ = intake(home)
    assert ledger.rows() == [("b.csv", "quarantined", "UNKNOWN_SOURCE")]
    assert (home.landing / "denver" / "a.csv").exists()
    land(home, "denver", "a.csv.done", "")
    report, ledger, _ = intake(home)
    assert ledger.rows()[1:] == [("a.csv", "loaded", None)]
    assert report.loaded[0]["source_id"] == "switch-den" and report.loaded[0]["status_ok"] == 1
    assert not any((home.landing / "denver").iterdir())  # the marker went with its file


def test_conflicting_resend_by_file_name_and_emi_pack_gaps(home):
    edit = home.reference / "sources" / "switch-chi.toml"
    edit.write_text(edit.read_text() + 'file_sequence = "Master-(\\\\d+)\\\\.csv"\n')
    land(home, "switch-chi", "Master-0007.csv", CALL)
    land(home, "ilec-duf", "DUF-1.emi", "\n".join(emi_pack(1, 2) + emi_pack(2, 1)) + "\n")
    land(home, "ilec-duf", "DUF-2.emi", "\n".join(emi_pack(5, 1)) + "\n")
    intake(home)
    # the same sequence numbers again, other content: for a person to decide
    land(home, "switch-chi", "Master-0007.csv", CALL.replace("83,", "84,"))
    land(home, "ilec-duf", "DUF-2-fixed.emi", "\n".join(emi_pack(5, 2)) + "\n")
    report, ledger, gaps = intake(home)
    assert ledger.rows() == [
        ("DUF-1.emi", "loaded", None),
        ("DUF-2.emi", "loaded", None),
        ("Master-0007.csv", "loaded", None),
        ("DUF-2-fixed.emi", "quarantined", "CONFLICTING_RESEND"),
        ("Master-0007.csv", "quarantined", "CONFLICTING_RESEND"),
    ]
    assert "already loaded from file 2" in report.quarantined[0]["detail"]
    # packs 1, 2 and 5 of 2026-10-31 loaded: 3 and 4 are missing
    assert gaps.select("source_id", "kind", "first_missing", "last_missing", "missing").rows() == [
        ("ilec-duf", "pack", 3, 4, 2)
    ]


def test_a_legacy_sources_csv_still_loads_when_there_is_no_sources_folder(home):
    shutil.rmtree(home.reference / "sources")
    (home.reference / "sources.csv").write_text(
        "source_id,format,timezone,default_region,description\nswitch-chi,asterisk_csv,America/Chicago,US,x\n"
    )
    sources = load_reference(home.reference).sources
    assert sources.select("source_id", "landing", "template").rows() == [("switch-chi", "switch-chi", None)]
