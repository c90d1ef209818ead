"""Broken reference data, one catalogue (issue 9): every case stops the run before rating, with an error that
names the file, the row and the fix. Each case edits a copy of the sample reference folder one way."""

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.home import SAMPLE_DIR
from pipeline.reference import ReferenceDataError, load_reference
from pipeline.sources import SourceConfigError
from tests.conftest import materialize_cycle, stage_sample

Edit = Callable[[Path], None]


def replace(file: str, old: str, new: str) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new, 1))

    return edit


def append(file: str, line: str) -> Edit:
    def edit(folder: Path) -> None:
        with (folder / file).open("a") as f:
            f.write(line + "\n")

    return edit


def delete(file: str) -> Edit:
    return lambda folder: (folder / file).unlink()


def drop_line(file: str, start: str) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / file
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith(start)]
        assert len(kept) == len(lines) - 1
        path.write_text("".join(kept))

    return edit


def lines(file: str) -> int:
    return len((SAMPLE_DIR / "reference" / file).read_text().splitlines())


TAX_USF = (SAMPLE_DIR / "reference" / "taxes.csv").read_text().splitlines()[1]

# (id, edit, file named, row named (None: the file as a whole), problem (regex), fix (regex))
CSV_CASES = [
    (
        "overlapping service number periods",
        append("service_numbers.csv", "+13125550100,ACC-0002,IL,2026-01-01,"),
        "service_numbers.csv",
        2,  # ACC-0001 holds +13125550100 from 2025-03-01, open-ended: the earlier period is the one to end
        r"\+13125550100 has overlapping validity periods",
        r"end the earlier period",
    ),
    (
        "service number period that ends before it starts",
        replace(
            "service_numbers.csv",
            "+13125550100,ACC-0001,IL,2025-03-01,",
            "+13125550100,ACC-0001,IL,2025-03-01,2025-01-01",
        ),
        "service_numbers.csv",
        2,
        r"valid_to is not after valid_from",
        r"set valid_to after valid_from",
    ),
    (
        "overlapping price books",
        append("price_books.csv", "PB-RES-NEW,,RES-BASIC,,,RC-STD,2026-06-01,"),
        "price_books.csv",
        # the appended row clashes with PB-RES-STD (row 2), open since 2026-01-01
        lines("price_books.csv") + 1,
        r"price book PB-RES-NEW has the same agent, plan, state and service as PB-RES-STD \(row 2\)",
        r"end one book's validity before the other starts",
    ),
    (
        "overlapping tax periods",
        append("taxes.csv", TAX_USF.replace("36.6", "38.1").replace(",2026-01-01,", ",2026-07-01,")),
        "taxes.csv",
        2,  # FED-USF row 2 is open-ended from 2026-01-01; the appended 2026-07-01 rate overlaps it
        r"FED-USF has overlapping validity periods",
        r"end the earlier period",
    ),
    (
        "missing price book for a plan in use",
        drop_line("price_books.csv", "PB-RES-STD,"),
        "service_numbers.csv",
        2,  # +13125550100 of ACC-0001 (RES-BASIC, agent AG-01, IL); only PB-AG02-TX is left for RES-BASIC
        r"plan RES-BASIC has no price book for \+13125550100 \(account ACC-0001, agent AG-01, state IL\)",
        r"add a row for plan RES-BASIC to price_books.csv",
    ),
    (
        "negative rate",
        replace(
            "rate_cards.csv",
            "RC-STD,1,,0,United States & Canada,0.0200",
            "RC-STD,1,,0,United States & Canada,-0.0200",
        ),
        "rate_cards.csv",
        2,
        r"rate_per_unit='-0.0200' is not a non-negative decimal",
        r"correct rate_per_unit in that row",
    ),
    (
        "negative tax rate",
        replace("taxes.csv", "percent,36.6,", "percent,-36.6,"),
        "taxes.csv",
        2,
        r"rate_percent='-36.6' is not a non-negative decimal",
        r"correct rate_percent in that row",
    ),
    (
        "negative plan charge",
        replace("plans.csv", "19.99", "-19.99"),
        "plans.csv",
        2,
        r"monthly_charge='-19.99' is not a non-negative decimal",
        r"correct monthly_charge in that row",
    ),
    (
        "unknown billing state",
        replace("accounts.csv", "Chicago,IL,60608,IL", "Chicago,XX,60608,IL"),
        "accounts.csv",
        2,
        r"billing_state='XX' is not a two-letter US state code",
        r"correct billing_state in that row",
    ),
    (
        "unknown service state",
        replace("service_numbers.csv", "+12135550101,ACC-0005,CA,", "+12135550101,ACC-0005,Cal,"),
        "service_numbers.csv",
        8,
        r"service_state='Cal' is not a two-letter US state code",
        r"correct service_state in that row",
    ),
    (
        "duplicate plan",
        replace("plans.csv", "RES-PLUS,", "RES-BASIC,"),
        "plans.csv",
        3,
        r"duplicate key \('RES-BASIC',\)",
        r"keep one row per plan_id",
    ),
    (
        "duplicate account",
        append(
            "accounts.csv",
            "ACC-0001,Copy,residential,1 Main St,Chicago,IL,60608,IL,AG-01,RES-BASIC,USD,en,paper,,,2025-01-01,",
        ),
        "accounts.csv",
        lines("accounts.csv") + 1,
        r"duplicate key \('ACC-0001',\)",
        r"keep one row per account_id",
    ),
    (
        "missing file",
        delete("taxes.csv"),
        "taxes.csv",
        None,
        r"file is missing",
        r"provide taxes.csv",
    ),
    (
        "missing column",
        replace("accounts.csv", "billing_state,", "state_of_billing,"),
        "accounts.csv",
        1,  # the header row
        r"columns \['billing_state'\] are missing",
        r"add them to the header row",
    ),
    (
        "service number of an account that does not exist",
        replace("service_numbers.csv", "+13125550100,ACC-0001,", "+13125550100,ACC-9999,"),
        "service_numbers.csv",
        2,
        r"account_id='ACC-9999' is not in accounts.csv",
        r"add it to accounts.csv or correct the value",
    ),
    (
        "price book of a rate card that does not exist",
        replace("price_books.csv", "PB-RES-STD,,RES-BASIC,,,RC-STD,", "PB-RES-STD,,RES-BASIC,,,RC-NONE,"),
        "price_books.csv",
        2,
        r"rate_card_id='RC-NONE' is not in rate_cards.csv",
        r"add it to rate_cards.csv or correct the value",
    ),
    (
        "a time zone the time zone database does not know",
        replace("state_time_zones.csv", "NY,America/New_York", "NY,America/Gotham"),
        "state_time_zones.csv",
        3,
        r"timezone='America/Gotham' is not an IANA time zone",
        r"use e.g. America/Chicago",
    ),
    (
        "a tax base that is not a charge category",
        replace("taxes.csv", "plan|line|voice_interstate|", "plan|lines|voice_interstate|minutes_x|"),
        "taxes.csv",
        2,
        r"base \['lines', 'minutes_x'\] is not a charge category",
        r"use \['",
    ),
    (
        "a date that does not exist",
        replace("accounts.csv", "2025-03-01", "2025-02-30"),
        "accounts.csv",
        2,
        r"activated_on='2025-02-30' is not a date YYYY-MM-DD",
        r"correct activated_on in that row",
    ),
]


@pytest.fixture
def reference_dir(tmp_path: Path) -> Path:
    target = tmp_path / "reference"
    shutil.copytree(SAMPLE_DIR / "reference", target)
    return target


@pytest.mark.parametrize(
    ("edit", "file", "row", "problem", "fix"),
    [pytest.param(*case[1:], id=case[0]) for case in CSV_CASES],
)
def test_broken_reference_csv_is_refused_naming_file_row_and_fix(
    reference_dir, edit, file, row, problem, fix
):
    edit(reference_dir)
    with pytest.raises(ReferenceDataError) as caught:
        load_reference(reference_dir)
    error = caught.value
    assert error.file == reference_dir / file
    assert error.row == row
    assert re.search(problem, error.problem), error.problem
    assert re.search(fix, error.fix), error.fix
    where = f"{reference_dir / file}" + (f", row {row}:" if row is not None else ":")
    assert str(error).startswith(where) and "Fix: " in str(error)


def test_a_table_saved_with_a_byte_order_mark_and_crlf_still_loads(reference_dir):
    """Spreadsheet exports (UTF-8 BOM, CRLF line ends) are not broken data: they load as the plain file does."""
    path = reference_dir / "plans.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_reference(reference_dir).plans.equals(load_reference(SAMPLE_DIR / "reference").plans)


# a source TOML has no rows: the line (syntax) or the setting is its "row"
TOML_CASES = [
    ("not TOML", 'format = "asterisk_csv"\ntimezone = America/Chicago\n', r"not valid TOML \(.*line 2", r"correct the syntax"),
    ("unknown format", 'format = "csv"\ntimezone = "America/Chicago"\ndefault_region = "US"\n',
     r"format 'csv' is unknown", r"use one of "),
    ("setting misspelt", 'format = "asterisk_csv"\ntimezone = "America/Chicago"\ndefault_region = "US"\nlandng = "x"\n',
     r"unknown setting 'landng'", r"use only format"),
    ("missing setting", 'format = "asterisk_csv"\ndefault_region = "US"\n', r"timezone is missing", r"add timezone ="),
    ("unknown time zone", 'format = "asterisk_csv"\ntimezone = "Chicago"\ndefault_region = "US"\n',
     r"timezone 'Chicago' is unknown", r"IANA time zone"),
    ("landing out of the landing folder",
     'format = "asterisk_csv"\ntimezone = "America/Chicago"\ndefault_region = "US"\nlanding = "../etc"\n',
     r"landing '../etc' is not a plain folder name", r"use a folder name"),
    ("not UTF-8", b'format = "asterisk_csv"\n# caf\xe9\n'.decode("latin-1"), r"not valid TOML", r"correct the syntax"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "problem", "fix"), [pytest.param(*c[1:], id=c[0]) for c in TOML_CASES])
def test_broken_source_toml_is_refused_naming_file_setting_and_fix(reference_dir, text, problem, fix):
    path = reference_dir / "sources" / "switch-chi.toml"
    path.write_bytes(text.encode("latin-1") if "caf" in text else text.encode())
    with pytest.raises(SourceConfigError) as caught:
        load_reference(reference_dir)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    found, _, fixed = message.partition(". Fix: ")
    assert re.search(problem, found), message
    assert re.search(fix, fixed), message


def test_a_broken_reference_stops_the_dagster_run_at_its_first_asset(tmp_path):
    """The whole flow through Dagster: the first asset fails with the message, nothing is registered, rated or
    billed, and every landed file is still in landing/ for the run after the fix."""
    home = stage_sample(tmp_path / "home")
    drop_line("price_books.csv", "PB-RES-STD,")(home.reference)
    landed = sorted(p.relative_to(home.landing) for p in home.landing.rglob("*") if p.is_file())
    result = materialize_cycle(home)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["usage_files"]
    message = str(failures[0].step_failure_data.error)
    assert f"{home.reference / 'service_numbers.csv'}, row 2: plan RES-BASIC has no price book" in message
    assert "Fix: add a row for plan RES-BASIC to price_books.csv" in message
    assert not result.get_asset_materialization_events()
    assert sorted(p.relative_to(home.landing) for p in home.landing.rglob("*") if p.is_file()) == landed
    assert not list((home.lake).rglob("*.parquet"))
