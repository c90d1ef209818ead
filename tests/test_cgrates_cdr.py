"""The CGRateS CDR CSV export (format ``cgrates_cdr``, docs/formats/cgrates_cdr.md): voice, SMS and data
records of the sample accounts through the real intake, mediation and rating; unknown types of record, damaged
lines and re-delivered records each leave by their door."""

import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from pipeline.accounting import MEDIATION_OUTCOMES, record_accounting
from pipeline.engine import session
from pipeline.formats import parse_file
from pipeline.formats.batches import BatchedParse, parse_batches, scan_file
from pipeline.home import SAMPLE_DIR, Home
from pipeline.intake import register_landed_files
from pipeline.mediation import mediate_cycle
from pipeline.rating import rate_cycle
from pipeline.reference import load_reference
from pipeline.state import open_state

CYCLE = "2026-10"
A, B = "+13125550100", "+12125550199"  # A is ACC-0001's number (plan RES-BASIC: SMS by segment, data per MB)
# the columns in an order of the source's own: the parser finds them by name
HEADER = "RunID,CGRID,Usage,ToR,OriginID,Tenant,Account,Subject,Destination,AnswerTime,SetupTime,Cost"


def cdr(cgrid: str, tor: str, usage: str, answer: str = "2026-10-05T14:15:05Z", account: str = A,
        destination: str = B, setup: str = "2026-10-05T14:15:00Z", run: str = "*default") -> str:  # fmt: skip
    return f"{run},{cgrid},{usage},{tor},o-{cgrid},cgrates.org,{account},{account},{destination},{answer},{setup},0.1"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """The sample reference, a CGRateS source, and (the sample cards price voice only) SMS and data price books
    of RES-BASIC: SMS 0.01 a message, data 0.01 a MB (1,048,576 bytes) billed per byte."""
    home = Home(tmp_path / "home").ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    (home.reference / "sources" / "cgrates.toml").write_text(
        'format = "cgrates_cdr"\ntimezone = "UTC"\ndefault_region = "US"\n'
    )
    with (home.reference / "rate_cards.csv").open("a") as cards:
        cards.write("RC-SMS,,,0,SMS,0.0100,1,1,1,0.0000,0.0000,,half_up,4,,\n")
        cards.write("RC-DATA,,,0,Data,0.0100,1048576,1,1,0.0000,0.0000,,half_up,4,,\n")
    with (home.reference / "price_books.csv").open("a") as books:
        books.write("PB-RES-SMS,,RES-BASIC,,sms,RC-SMS,2026-01-01,\n")
        books.write("PB-RES-DATA,,RES-BASIC,,data,RC-DATA,2026-01-01,\n")
    return home


def land(home: Home, name: str, lines: list[str]) -> None:
    folder = home.landing / "cgrates"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join([HEADER, *lines]) + "\n")


def run(home: Home) -> dict[str, pl.DataFrame]:
    with open_state(home.state_db) as state:
        register_landed_files(home, state, load_reference(home.reference).sources, cycle=CYCLE,
                              billing_timezone="America/Chicago")  # fmt: skip
    with session(load_reference(home.reference)) as con:
        mediate_cycle(con, home.lake, CYCLE)
        rate_cycle(con, home.lake, CYCLE)
        accounting = record_accounting(con, home.lake, CYCLE, MEDIATION_OUTCOMES)
        # rated + suspended (by mediation or rating) + duplicate + discarded
        final = record_accounting(con, home.lake, CYCLE)
    mediated = home.lake / "mediated" / f"cycle={CYCLE}"
    streams = ("normalised", "suspended", "duplicate", "discarded")
    out = pl.concat([pl.read_parquet(mediated / f"{s}.parquet") for s in streams], how="diagonal")
    rated = pl.read_parquet(home.lake / "rated" / f"cycle={CYCLE}" / "rated.parquet")
    return {"all": out.sort("file_id", "line_no"), "rated": rated.sort("file_id", "line_no"),
            "accounting": accounting, "final": final}  # fmt: skip


def test_voice_sms_and_data_are_rated_each_in_its_unit_and_every_line_is_accounted_for(home):
    land(home, "cdrs-1.csv", [
        cdr("v1", "*voice", "90500000000"),  # 90.5 s in nanoseconds → 91 s
        cdr("s1", "*sms", "1", answer="2026-10-05T14:20:00Z"),  # one message
        cdr("d1", "*data", "1500000", destination="1002", answer="2026-10-05T15:00:00Z"),  # 1.5 MB
        cdr("v2", "*voice", "1m30s", setup="2026-10-06T09:00:00-05:00", answer="2026-10-06T09:00:10-05:00"),
        cdr("v3", "*voice", "0", answer="0001-01-01T00:00:00Z"),  # never answered (Go's zero time)
        cdr("s2", "*sms", "0", answer="2026-10-05T14:25:00Z"),  # no message delivered
        cdr("g1", "*generic", "5", answer="2026-10-05T14:30:00Z"),  # a type of record we do not bill
        'broken,"unterminated,*voice',  # a damaged line
        cdr("v4", "*voice", "90"),  # a seconds count, not nanoseconds: unreadable, not a 1-second call
        cdr("s3", "*sms", "", answer="2026-10-05T14:40:00Z"),  # a message without a count: one
        cdr("v5", " ", "30000000000", answer="2026-10-05T14:50:00Z"),  # no type of record: voice, as CGRateS
    ])  # fmt: skip
    out = run(home)
    assert out["all"].select(
        "line_no", "status", "reason", "service", "units", "billsec", "called_number"
    ).rows() == [  # fmt: skip
        (2, "normalised", None, "voice", 91, 91, B),
        (3, "normalised", None, "sms", 1, 0, B),
        (4, "normalised", None, "data", 1_500_000, 0, None),  # a data session has no called number (1002)
        (5, "normalised", None, "voice", 90, 90, B),
        (6, "discarded", "NOT_ANSWERED", "voice", 0, 0, B),
        (7, "discarded", "NOT_ANSWERED", "sms", 0, 0, B),
        (8, "suspended", "UNKNOWN_SERVICE_TYPE", None, 5, 0, B),
        (9, "suspended", "UNPARSEABLE", "voice", None, None, None),
        (10, "suspended", "BAD_DURATION", "voice", None, None, B),
        (11, "normalised", None, "sms", 1, 0, B),
        (12, "normalised", None, "voice", 30, 30, B),
    ]
    # the sample card: voice 0.02/min in 6 s increments; the test's SMS and data cards
    assert out["rated"].select("line_no", "destination", "billed_units", "charge_amount").rows() == [
        (2, "United States & Canada", 96, Decimal("0.032000")),  # 91 s → 96 s × 0.02 / 60
        (3, "SMS", 1, Decimal("0.010000")),
        (4, "Data", 2_097_152, Decimal("0.020000")),  # per session to the MB: 2 MB × 0.01
        (5, "United States & Canada", 90, Decimal("0.030000")),
        (11, "SMS", 1, Decimal("0.010000")),
        (12, "United States & Canada", 30, Decimal("0.010000")),
    ]
    # every line after the header leaves by one door: in = normalised + suspended + duplicate + discarded
    accounting = out["accounting"]
    assert accounting.select(
        "records_in", "normalised", "suspended", "duplicate", "discarded", "balanced"
    ).rows() == [(11, 6, 3, 0, 2, True)]
    assert out["final"].select("records_in", "rated", "balanced").rows() == [(11, 6, True)]


def test_a_re_delivered_record_is_a_duplicate_and_a_second_run_of_one_session_another_record(home):
    land(home, "cdrs-1.csv", [cdr("v1", "*voice", "60000000000"), cdr("s1", "*sms", "1")])
    land(home, "cdrs-2.csv", [
        cdr("v1", "*voice", "60000000000"),  # the same CDR again (CGRID and run) in the next file
        cdr("s1", "*sms", "1", run="supplier", destination="+13125550111"),  # another run of s1: its own id
    ])  # fmt: skip
    out = run(home)["all"]
    assert out.select("file_id", "line_no", "status", "reason", "source_record_id").rows() == [
        (1, 2, "normalised", None, "v1:*default"),
        (1, 3, "normalised", None, "s1:*default"),
        (2, 2, "duplicate", "DUPLICATE_SOURCE_ID", "v1:*default"),
        (2, 3, "normalised", None, "s1:supplier"),
    ]


def test_the_header_is_required_and_every_line_after_it_is_one_record(tmp_path):
    from pipeline.formats.common import FileRejected

    with pytest.raises(FileRejected, match="MISSING_HEADER"):
        parse_file("cgrates_cdr", (cdr("v1", "*voice", "1s") + "\n").encode())
    # no ToR column: every record is voice; no RunID: the CGRID alone is the record id
    parsed = parse_file("cgrates_cdr", b"CGRID,Account,Destination,SetupTime,AnswerTime,Usage\r\n"
                        b"c1,3125550100,2125550199,2026-10-05T14:15:00Z,2026-10-05T14:15:00Z,2m3.5s\r\n")  # fmt: skip
    assert parsed.records.select(
        "line_no", "source_record_id", "service_raw", "billsec_raw", "units_raw"
    ).rows() == [(2, "c1", None, "124", None)]
    assert (parsed.control_records, parsed.timezone) == (1, "UTC")
    # read in batches (the header given again to each), the records are those of one read of the whole file
    path = tmp_path / "cdrs.csv"
    path.write_text("\n".join([HEADER, *(cdr(f"c{i}", "*sms", str(i % 3)) for i in range(200))]) + "\n")
    summary = BatchedParse()
    batches = list(parse_batches("cgrates_cdr", path, scan_file(path), None, summary, batch_bytes=1000))
    assert len(batches) > 5 and summary.control_records == 1
    assert pl.concat(batches).equals(parse_file("cgrates_cdr", path.read_bytes()).records)


def test_two_data_sessions_at_one_instant_are_two_events_and_a_copy_of_one_a_duplicate(home):
    """Data sessions bill no seconds: the content key tells two sessions of one line at one instant apart by
    their bytes (units), while the same session from a second exporter (another id) is still its duplicate."""
    at = "2026-10-05T15:00:00Z"
    land(home, "cdrs-1.csv", [
        cdr("d1", "*data", "1500000", destination="*any", answer=at, setup=at),
        cdr("d2", "*data", "3000000", destination="*any", answer=at, setup=at),  # another session, same instant
    ])  # fmt: skip
    land(home, "cdrs-2.csv", [cdr("x9", "*data", "3000000", destination="*any", answer=at, setup=at)])
    out = run(home)["all"]
    assert out.select("file_id", "line_no", "status", "reason", "units").rows() == [
        (1, 2, "normalised", None, 1_500_000),
        (1, 3, "normalised", None, 3_000_000),
        (2, 2, "duplicate", "DUPLICATE_CONTENT", 3_000_000),
    ]
