"""File intake (duplicate files, quarantine, crash recovery) and cycle mediation (account at call time,
duplicate calls across files, the four output streams) on small hand-made files."""

import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from pipeline.accounting import MEDIATION_OUTCOMES, OUTCOMES, checked_record_accounting, record_accounting
from pipeline.engine import session
from pipeline.home import SAMPLE_DIR, Home
from pipeline.intake import register_landed_files
from pipeline.lake import partition_dir, replace_partition
from pipeline.mediation import MEDIATED, STREAMS, mediate_cycle
from pipeline.rating import rate_cycle
from pipeline.reference import load_reference
from pipeline.state import open_state

CYCLE = "2026-10"


def asterisk_line(
    src: str, dst: str, start: str, billsec: int, uniqueid: str, disposition: str = "ANSWERED"
) -> str:
    answer = f'"{start}"' if disposition == "ANSWERED" else ""
    return (
        f'"","{src}","{dst}","from-internal","""Test"" <{src}>","SIP/a","SIP/b","Dial","","{start}",{answer},'
        f'"{start}",{billsec + 5},{billsec},"{disposition}","DOCUMENTATION","{uniqueid}",""\n'
    )


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    return home


def land(home: Home, source: str, name: str, text: str) -> None:
    folder = home.landing / source
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def intake(home: Home):
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        report = register_landed_files(
            home, state, reference.sources, cycle=CYCLE, billing_timezone="America/Chicago"
        )
        ledger = state.sql(
            "select file_id, file_name, status, reason, duplicate_of, records from usage_files"
        ).pl()
    return report, ledger


def mediate(home: Home) -> dict[str, pl.DataFrame]:
    with session(load_reference(home.reference)) as con:
        mediate_cycle(con, home.lake, CYCLE)
        rate_cycle(con, home.lake, CYCLE)
        accounting = record_accounting(con, home.lake, CYCLE)
    folder = home.lake / "mediated" / f"cycle={CYCLE}"
    streams = {
        s: pl.read_parquet(folder / f"{s}.parquet")
        for s in ("normalised", "suspended", "duplicate", "discarded")
    }
    return {**streams, "accounting": accounting}


def test_duplicate_file_unknown_source_and_bad_control_totals(home):
    day1 = asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 83, "1.1")
    land(home, "switch-chi", "Master-a.csv", day1)
    land(home, "switch-chi", "Master-a-again.csv", day1)  # same bytes under another name
    land(home, "mystery-switch", "cdr.csv", day1)
    land(home, "ilec-duf", "broken.emi", "202001" + " " * 169 + "\n")  # header, no trailer
    report, ledger = intake(home)
    assert ledger.sort("file_id").select("file_name", "status", "reason", "duplicate_of").rows() == [
        # landed files are taken in path order: ilec-duf/, mystery-switch/, switch-chi/
        ("broken.emi", "quarantined", "MISSING_PACK_TRAILER", None),
        ("cdr.csv", "quarantined", "UNKNOWN_SOURCE", None),
        ("Master-a-again.csv", "loaded", None, None),
        ("Master-a.csv", "duplicate_file", None, 3),
    ]
    assert not any(home.landing.glob("*/*"))  # every file left landing
    assert len(list(home.quarantine.glob("*/*"))) == 2 and len(list(home.archive.glob("*/*"))) == 2
    # nothing new landed: a second intake registers nothing
    again, ledger_again = intake(home)
    assert (again.loaded, again.duplicate_files, again.quarantined) == ([], [], [])
    assert ledger_again.height == 4


def test_crash_after_the_ledger_write_is_finished_not_reloaded(home):
    land(
        home,
        "switch-chi",
        "Master-a.csv",
        asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 83, "1.1"),
    )
    intake(home)
    archived = next(home.archive.glob("switch-chi/*"))
    shutil.move(archived, home.landing / "switch-chi" / "Master-a.csv")  # as if the move never happened
    report, ledger = intake(home)
    assert report.loaded == [] and report.duplicate_files == []
    assert ledger["status"].to_list() == ["loaded"] and archived.exists()


def test_mediation_streams_and_accounting(home):
    land(home, "switch-chi", "Master-a.csv", "".join([
        asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 83, "1.1"),
        asterisk_line("3125550100", "2125550199", "2026-10-06 09:15:00", 0, "1.2", "BUSY"),
        asterisk_line("3125559999", "2125550199", "2026-10-06 10:00:00", 30, "1.3"),  # nobody's number
        asterisk_line("2145550300", "2145550111", "2026-10-10 10:00:00", 45, "1.4"),  # before its service date
    ]))  # fmt: skip
    land(home, "switch-chi", "Master-b.csv", "".join([
        asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 83, "1.1"),  # same call, same id
        asterisk_line("2145550300", "2145550111", "2026-10-20 10:00:00", 45, "1.5"),
    ]))  # fmt: skip
    # the same call as 1.1 seen by the other switch, under its own id: a duplicate by content
    land(
        home,
        "switch-nyc",
        "Master.csv",
        asterisk_line("3125550100", "2125550199", "2026-10-05 10:15:00", 83, "9.9"),
    )
    intake(home)
    out = mediate(home)
    assert out["normalised"].select("line_no", "account_id").rows() == [(1, "ACC-0001"), (2, "ACC-0003")]
    assert dict(out["suspended"].select("reason", "line_no").rows()) == {
        "UNKNOWN_SUBSCRIBER": 3,
        "NOT_IN_SERVICE": 4,
    }
    assert out["discarded"]["reason"].to_list() == ["BUSY"]  # disposition BUSY: discarded by its rule
    assert out["duplicate"].select("file_id", "reason", "duplicate_of_file_id", "duplicate_of_line_no").sort(
        "file_id"
    ).rows() == [
        (2, "DUPLICATE_SOURCE_ID", 1, 1),
        (3, "DUPLICATE_CONTENT", 1, 1),
    ]
    accounting = out["accounting"]
    assert accounting.select("file_id", "records_in", "rated").rows() == [(1, 4, 1), (2, 2, 1), (3, 1, 0)]
    assert accounting["balanced"].all()


def test_the_accounting_check_in_its_own_bounded_session_gives_the_same_table(home):
    """The blocking check's own session (the stage's memory limit, spilling into the home's tmp/) finds what
    record_accounting finds in the session of the stage, file by file."""
    land(home, "switch-chi", "Master-a.csv", "".join(
        asterisk_line("3125550100", "2125550199", f"2026-10-{day:02d} 09:15:00", 60 + day, f"1.{day}")
        for day in range(1, 29)
    ))  # fmt: skip
    land(home, "switch-nyc", "Master.csv", "".join([
        asterisk_line("3125550100", "2125550199", "2026-10-05 10:15:00", 65, "9.9"),  # 1.5 again: a duplicate
        asterisk_line("3125559999", "2125550199", "2026-10-06 10:00:00", 30, "9.8"),  # nobody's number
    ]))  # fmt: skip
    intake(home)
    expected = mediate(home)["accounting"]
    spill = home.root / "check-spill"
    table = checked_record_accounting(home.lake, CYCLE, OUTCOMES, memory_limit="64MB", spill_dir=spill)
    assert table.equals(expected)
    assert table.select("file_id", "records_in", "rated", "suspended", "duplicate").rows() == [
        (1, 28, 28, 0, 0),
        (2, 2, 0, 1, 1),
    ]
    assert table["balanced"].all()
    assert spill.is_dir()  # the session spills into the given folder, not the working directory's .tmp


@pytest.mark.parametrize(
    ("doctored_line", "counted_twice", "unmatched"),
    [
        (2, 1, 1),  # line 1's outcome is line 2's again: line 2 counted twice, line 1 in no stream
        (1 + 65536, 0, 2),  # an outcome of a line the file does not have (another block): line 1 in none
    ],
)
def test_the_accounting_finds_a_record_in_two_streams_though_the_counts_add_up(
    home, doctored_line, counted_twice, unmatched
):
    """In = the sum of the outcomes is not enough: the records and the outcomes must match line for line.
    The duplicate stream's one record is doctored to another key, so every count still adds up."""
    land(home, "switch-chi", "Master-a.csv", asterisk_line("3125550100", "2125550199", "2026-10-05 09:15:00", 65, "1.5"))
    land(home, "switch-nyc", "Master.csv", "".join([
        asterisk_line("3125550100", "2125550199", "2026-10-05 10:15:00", 65, "9.9"),  # line 1: the same call
        asterisk_line("3125559999", "2125550199", "2026-10-06 10:00:00", 30, "9.8"),  # line 2: suspended
    ]))  # fmt: skip
    intake(home)
    before = mediate(home)["accounting"]
    assert before["balanced"].all() and before["unmatched"].sum() == before["counted_twice"].sum() == 0

    folder = partition_dir(home.lake, MEDIATED, cycle=CYCLE)
    streams = {name: pl.read_parquet(folder / f"{name}.parquet") for name in STREAMS}
    assert streams["duplicate"].select("file_id", "line_no").rows() == [(2, 1)]
    streams["duplicate"] = streams["duplicate"].with_columns(pl.lit(doctored_line, pl.UInt32).alias("line_no"))
    replace_partition(home.lake, folder, streams)

    with session() as con:
        after = record_accounting(con, home.lake, CYCLE, MEDIATION_OUTCOMES)
    assert after.select("file_id", "records_in", "suspended", "duplicate", "counted_twice", "unmatched",
                        "balanced").rows() == [  # fmt: skip
        (1, 1, 0, 0, 0, 0, True),
        (2, 2, 1, 1, counted_twice, unmatched, False),
    ]


def test_a_reassigned_number_bills_the_account_that_held_it_on_the_call_date(home):
    """Numbers are reassigned: +1 312 555 0100 leaves ACC-0001 (IL) and goes to ACC-0003 (TX) on 16 October
    (``valid_to`` is the first day no longer held). Each call goes to the account that held the number on its
    date in the billing time zone (America/Chicago), not on its UTC date: the call at 22:30 on the 15th is
    already the 16th in UTC and still ACC-0001's. Each call is priced for the account it goes to."""
    numbers = home.reference / "service_numbers.csv"
    text = numbers.read_text().replace(
        "+13125550100,ACC-0001,IL,2025-03-01,\n",
        "+13125550100,ACC-0001,IL,2025-03-01,2026-10-16\n+13125550100,ACC-0003,TX,2026-10-16,\n",
    )
    assert text != numbers.read_text()
    numbers.write_text(text)
    land(home, "switch-chi", "Master-a.csv", "".join([
        asterisk_line("3125550100", "2125550199", "2026-10-15 22:30:00", 60, "7.1"),  # 16th 03:30 UTC
        asterisk_line("3125550100", "2125550199", "2026-10-16 00:30:00", 60, "7.2"),
        asterisk_line("3125550100", "2125550199", "2026-10-25 12:00:00", 60, "7.3"),
    ]))  # fmt: skip
    intake(home)
    out = mediate(home)
    assert out["normalised"].sort("line_no").select("line_no", "account_id").rows() == [
        (1, "ACC-0001"),
        (2, "ACC-0003"),
        (3, "ACC-0003"),
    ]
    rated = pl.read_parquet(home.lake / "rated" / f"cycle={CYCLE}" / "rated.parquet")
    # and each is priced by its account's agent and state: ACC-0001's standard book, ACC-0003's agent's Texas book
    assert rated.sort("line_no").select("line_no", "agent_id", "price_book_id", "charge_amount").rows() == [
        (1, "AG-01", "PB-RES-STD", Decimal("0.020000")),
        (2, "AG-02", "PB-AG02-TX", Decimal("0.010000")),
        (3, "AG-02", "PB-AG02-TX", Decimal("0.010000")),
    ]


def test_a_service_code_makes_a_voice_record_a_value_added_event_billed_per_use(home):
    """Reference ``service_codes``: a call to 411 is directory assistance and a dialled *69 is call return, each
    a value-added event of one unit priced by its event code whatever it lasted; other calls stay voice."""
    # the sample reference lists 411 (DA) and *69 (CALL_RETURN), priced 1.99 and 0.75 on every card
    assert "*69,vas,CALL_RETURN" in (home.reference / "service_codes.csv").read_text()
    land(home, "switch-chi", "Master-a.csv", "".join([
        asterisk_line("3125550100", "411", "2026-10-05 09:15:00", 95, "8.1"),
        asterisk_line("3125550100", "*69", "2026-10-05 09:20:00", 12, "8.2"),
        asterisk_line("3125550100", "2125550199", "2026-10-05 09:25:00", 60, "8.3"),
        asterisk_line("3125550100", "*70", "2026-10-05 09:30:00", 5, "8.4"),  # a code nobody listed: voice
    ]))  # fmt: skip
    intake(home)
    out = mediate(home)
    assert out["normalised"].sort("line_no").select("line_no", "called_number", "service", "event_code",
                                                    "units", "billsec").rows() == [  # fmt: skip
        (1, "411", "vas", "DA", 1, 95),
        (2, "*69", "vas", "CALL_RETURN", 1, 12),
        (3, "+12125550199", "voice", None, 60, 60),
        (4, "*70", "voice", None, 5, 5),
    ]
    rated = pl.read_parquet(home.lake / "rated" / f"cycle={CYCLE}" / "rated.parquet").sort("line_no")
    assert rated.select("line_no", "destination", "billed_units", "charge_amount").rows() == [
        (1, "Directory assistance", 1, Decimal("1.990000")),
        (2, "Call return", 1, Decimal("0.750000")),
        (3, "United States & Canada", 60, Decimal("0.020000")),
    ]
    # *70 is no destination of the card: suspended by rating, not lost
    suspended = pl.read_parquet(home.lake / "rated" / f"cycle={CYCLE}" / "suspended.parquet")
    assert suspended.select("line_no", "reason").rows() == [(4, "NO_RATE")]
