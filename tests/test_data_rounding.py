"""Data rounded per cycle (issue 4): a plan's data sessions are rated on their exact bytes and the cycle's
charged bytes of a service number (per price) are rounded up once to the plan's unit — a data rounding line on
the bill (``sql/data_rounding.sql``). The real rating engine and bill run on test_rating's reference, with a
1.00-per-MB data card and two plans that differ only by their data rounding."""

import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import test_rating
from billrun_fixtures import account, amounts, bill, plan, table
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.engine import session
from pipeline.explanation import explanation, find_events
from pipeline.lake import partition_dir
from pipeline.quote import QuoteRequest, quote
from pipeline.rating import RATED, rate_events
from pipeline.reference import ReferenceDataError, load_reference
from pipeline.rerating import EMPTY_SUSPENDED, account_deltas, compare_ratings, cycle_level_charges
from pipeline.sql import read_sql

D = Decimal
KB, MB = 1024, 1_048_576
NUMBER, OTHER_NUMBER = "+13125550100", "+13125550101"
# RC-DATA1: 1.00 per MB (1,048,576 bytes), per byte (1/1 increments), half_up to 6 decimals
DATA_CARD = ("RC-DATA1", None, "Data", "1.00", MB, 1, 1, "0", "0", "half_up", 6, None, 0, None, None, None)
# P12 rounds per cycle to the MB, P13 per session to the MB; ACC-13 / ACC-14 are on them
PLANS = [("P12", "message", "cycle", "MB"), ("P13", "message", "session", "MB")]


def patched(monkeypatch: pytest.MonkeyPatch, allowances: list[tuple] | None = None) -> None:
    """test_rating's reference plus the data card, the two plans, their accounts and price books."""
    monkeypatch.setattr(test_rating, "RATES", [*test_rating.RATES, DATA_CARD])
    monkeypatch.setattr(test_rating, "PLAN_USAGE_SETTINGS", [*test_rating.PLAN_USAGE_SETTINGS, *PLANS])
    monkeypatch.setattr(test_rating, "ACCOUNTS", [*test_rating.ACCOUNTS, ("ACC-13", "AG-1", "P12"),
                                                  ("ACC-14", "AG-1", "P13")])  # fmt: skip
    monkeypatch.setattr(test_rating, "PRICE_BOOKS", [*test_rating.PRICE_BOOKS,
                                                     ("PB-P12-DATA", None, "P12", None, "RC-DATA1", "data"),
                                                     ("PB-P13-DATA", None, "P13", None, "RC-DATA1", "data")])  # fmt: skip
    monkeypatch.setattr(test_rating, "ALLOWANCES", allowances or [])


def rate_sessions(account_id: str, *sessions: tuple[str, int]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rate (service number, bytes) data sessions of one account, one a day from 2026-10-01 in the given order;
    returns the rated events (in session order) and the cycle's data rounding."""
    normalised = pl.DataFrame(
        [
            {"file_id": 1, "line_no": i, "cycle": "2026-10", "source_id": "s", "status": "normalised",
             "reason": None, "raw": "", "source_record_id": None, "account_id": account_id, "service_state": "IL",
             "charged_number": number, "calling_number": number, "called_number": None,
             "start_utc": datetime(2026, 10, 1, 12) + timedelta(days=i), "call_date": None, "billsec": 0,
             "service": "data", "units": units, "sms_chars": None, "event_code": None, "visited_country": None,
             "disposition": "ANSWERED"}  # fmt: skip
            for i, (number, units) in enumerate(sessions, start=1)
        ]
    ).with_columns(pl.col("start_utc").dt.date().alias("call_date"))
    with session() as con:
        for name, frame in {**test_rating.reference_frames(), "normalised": normalised}.items():
            con.register(name, frame)
        rated = rate_events(con).pl().sort("line_no")
        return rated, con.sql(read_sql("data_rounding.sql")).pl().sort("charged_number")


def test_three_sessions_bill_three_megabytes_per_session_and_two_per_cycle(monkeypatch):
    patched(monkeypatch)
    sessions = [(NUMBER, 300 * KB), (NUMBER, 500 * KB), (NUMBER, 250 * KB), (OTHER_NUMBER, MB)]
    per_session, none = rate_sessions("ACC-14", *sessions)
    # per session: each of the three rounds up to 1 MB: 3 × 1,048,576 bytes × 1.00 / MB = 3.00
    assert per_session["billed_units"].to_list() == [MB, MB, MB, MB] and none.is_empty()
    assert sum(per_session["charge_amount"][:3]) == D("3")
    per_cycle, rounding = rate_sessions("ACC-13", *sessions)
    # per cycle: rated on exact bytes: 307,200 / 1,048,576 = 0.29296875 → 0.292969 (half_up, 6 decimals);
    # 512,000 / 1,048,576 = 0.48828125 → 0.488281; 256,000 / 1,048,576 = 0.244140625 → 0.244141
    assert per_cycle["billed_units"].to_list() == [307_200, 512_000, 256_000, MB]
    assert per_cycle["charge_amount"].to_list() == [D("0.292969"), D("0.488281"), D("0.244141"), D("1")]
    # 300 + 500 + 250 = 1,050 KB = 1,075,200 bytes → rounded up once to 2 MB = 2,097,152 bytes: 1,021,952 bytes
    # (998 KB) added, × 1.00 / 1,048,576 = 0.974609375 → 0.97 (half_up, cents). The other number's 1 MB is whole:
    # nothing added (its row says so, and the bill has no line for it)
    assert rounding.select(
        "account_id", "charged_number", "sessions", "charged_bytes", "rounded_bytes", "rounding_bytes",
        "charge_amount",
    ).rows() == [("ACC-13", NUMBER, 3, 1_075_200, 2 * MB, 1_021_952, D("0.97")),
               ("ACC-13", OTHER_NUMBER, 1, MB, MB, 0, D("0"))]  # fmt: skip
    # on the bill: the sessions' usage line 0.292969 + 0.488281 + 0.244141 = 1.025391 → 1.03 (half_up), the
    # rounding line 0.97: 2.00 for NUMBER's 2 MB; OTHER_NUMBER 1.00; total usage 3.00; plan 10.00
    lines = bill(
        {"accounts": table("accounts", account("ACC-13", plan="P12")), "plans": table("plans", plan("P12", "10.00"))},
        per_cycle.filter(pl.col("rating_reason").is_null()),
        data_rounding=rounding,
    )  # fmt: skip
    assert amounts(lines) == [("recurring", "P12", D("10.00")), ("usage", "RC-DATA1", D("0.97")),
                              ("usage", None, D("1.03")), ("usage", None, D("1.00"))]  # fmt: skip
    assert sum(lines["amount"]) == D("13.00")
    rounding_line = lines.filter(pl.col("category") == "data_rounding").row(0, named=True)
    assert (rounding_line["service_number"], rounding_line["tax_category"], rounding_line["description"]) == (
        NUMBER,
        "data",
        "Data rounding from +1 312-555-0100 (Data): 1075200 bytes charged this cycle rounded up once to 2 MB, "
        "1021952 bytes added",
    )


def test_the_allowance_is_consumed_in_session_order_before_the_cycle_rounding(monkeypatch):
    patched(monkeypatch, allowances=[("AL-P12-DATA", "P12", "data", "any", MB)])
    rated, rounding = rate_sessions("ACC-13", (NUMBER, 600 * KB), (NUMBER, 600 * KB), (NUMBER, 100 * KB))
    # 1 MB included, consumed in session order on exact bytes: 600 KB included; 424 KB included + 176 KB charged;
    # 100 KB charged
    assert rated["included_units"].to_list() == [600 * KB, 424 * KB, 0]
    assert rated["charged_units"].to_list() == [0, 176 * KB, 100 * KB]
    # charged 176 + 100 = 276 KB = 282,624 bytes → 1 MB: 748 KB = 765,952 bytes added × 1.00 / MB = 0.73046875
    # → 0.73; with the sessions' 0.171875 + 0.097656 = 0.269531 → 0.27 the charged MB costs 1.00
    assert rounding.select("charged_bytes", "rounding_bytes", "charge_amount").rows() == [
        (282_624, 765_952, D("0.73"))
    ]
    assert rated["charge_amount"].to_list() == [D("0"), D("0.171875"), D("0.097656")]


def test_a_cycle_wholly_inside_the_allowance_adds_no_rounding(monkeypatch):
    patched(monkeypatch, allowances=[("AL-P12-DATA", "P12", "data", "any", 5 * 1024 * MB)])  # 5 GB included
    rated, rounding = rate_sessions("ACC-13", (NUMBER, 300 * KB), (NUMBER, 500 * KB))
    assert rated["charged_units"].to_list() == [0, 0]
    assert rounding.select("charged_bytes", "rounding_bytes", "charge_amount").rows() == [(0, 0, D("0"))]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3 * MB), min_size=1, max_size=6))
def test_per_cycle_billed_bytes_lie_between_the_exact_and_the_per_session_bytes(sizes):
    with pytest.MonkeyPatch.context() as monkeypatch:
        patched(monkeypatch)
        sessions = [(NUMBER, size) for size in sizes]
        per_session, _ = rate_sessions("ACC-14", *sessions)
        per_cycle, rounding = rate_sessions("ACC-13", *sessions)
    exact = sum(sizes)
    cycle_billed = int(per_cycle["billed_units"].sum()) + int(rounding["rounding_bytes"].sum())
    assert int(per_cycle["billed_units"].sum()) == exact  # sessions rated on their exact bytes
    assert exact <= cycle_billed <= int(per_session["billed_units"].sum())
    assert cycle_billed < exact + MB and cycle_billed % MB == 0


def test_the_reference_accepts_cycle_and_refuses_other_values(tmp_path: Path):
    sample = Path(__file__).parents[1] / "data_samples" / "sample" / "reference"
    for value, ok in (("cycle", True), ("month", False)):
        folder = shutil.copytree(sample, tmp_path / value)
        settings_csv = folder / "plan_usage_settings.csv"
        settings_csv.write_text(
            settings_csv.read_text().replace("RES-PLUS,message,session", f"RES-PLUS,message,{value}")
        )
        if ok:
            assert load_reference(folder).plan_usage_settings.filter(pl.col("plan_id") == "RES-PLUS")[
                "data_rounding"
            ].to_list() == ["cycle"]
        else:
            with pytest.raises(ReferenceDataError, match="data_rounding"):
                load_reference(folder)


def test_explain_shows_a_sessions_cycle_rounding(monkeypatch, tmp_path: Path):
    patched(monkeypatch)
    rated, rounding = rate_sessions("ACC-13", (NUMBER, 300 * KB), (NUMBER, 500 * KB), (NUMBER, 250 * KB))
    folder = partition_dir(tmp_path, RATED, cycle="2026-10")
    folder.mkdir(parents=True)
    rated.filter(pl.col("rating_reason").is_null()).drop("rating_reason").write_parquet(folder / "rated.parquet")
    rated.clear().drop("rating_reason").write_parquet(folder / "suspended.parquet")
    rounding.write_parquet(folder / "data_rounding.parquet")
    events = find_events(tmp_path, "2026-10", file_id=1, line_no=2)
    fields = explanation(events.row(0, named=True))
    # 500 KB = 512,000 bytes at 1.00 per MB: 0.48828125 → 0.488281; the number's 1,075,200 bytes → 2 MB
    assert (fields["billed units"], fields["charge"]) == ("512000", "0.488281")
    assert fields["data rounding"] == (
        "per cycle: this session is rated on its exact bytes; 1075200 bytes charged this cycle (3 sessions of "
        "+13125550100 at this price) are rounded up once to 2 MB: 1021952 bytes added, 0.97 on the invoice's data "
        "rounding line"
    )
    voice = explanation({"file_id": 1, "line_no": 9, "service": "voice", "charge_amount": D("0.1")})
    assert "data rounding" not in voice


def test_a_quote_of_a_session_rounds_it_alone(tmp_path: Path):
    folder = shutil.copytree(Path(__file__).parents[1] / "data_samples" / "sample" / "reference", tmp_path / "ref")
    with (folder / "rate_cards.csv").open("a") as cards:
        cards.write("RC-DATA1,,,0,Data,1.0000,1048576,1,1,0.0000,0.0000,,half_up,6,,\n")
    with (folder / "price_books.csv").open("a") as books:
        books.write("PB-PLUS-DATA,,RES-PLUS,,data,RC-DATA1,2026-01-01,\n")
    settings_csv = folder / "plan_usage_settings.csv"
    settings_csv.write_text(settings_csv.read_text().replace("RES-PLUS,message,session", "RES-PLUS,message,cycle"))
    reference = load_reference(folder)
    account_id = reference.accounts.filter(pl.col("plan_id") == "RES-PLUS")["account_id"][0]
    fields = quote(
        reference,
        QuoteRequest(None, datetime(2026, 10, 12, 20, 10), 300 * KB, service="data", account_id=account_id),
    )
    # 300 KB = 307,200 bytes × 1.00 / 1,048,576 = 0.29296875 → 0.292969; alone it rounds up to 1 MB:
    # 741,376 bytes added × 1.00 / 1,048,576 = 0.70703125 → 0.71 (half_up, cents)
    assert (fields["billed units"], fields["charge"]) == ("307200", "0.292969")
    assert fields["data rounding"].endswith("rounded up once to 1 MB: 741376 bytes added, 0.71 on the invoice's "
                                            "data rounding line")  # fmt: skip


def test_a_rerate_counts_the_data_rounding_line_as_invoiced_usage(monkeypatch, tmp_path: Path):
    patched(monkeypatch)
    rated, rounding = rate_sessions("ACC-13", (NUMBER, 300 * KB), (NUMBER, 500 * KB), (NUMBER, 250 * KB))
    folder = partition_dir(tmp_path, RATED, cycle="2026-10")
    folder.mkdir(parents=True)
    rounding.write_parquet(folder / "data_rounding.parquet")
    with session() as con:
        con.register("previous_fact", rated.drop("rating_reason"))
        con.execute(f"create view previous_suspended as {EMPTY_SUSPENDED}")
        con.register("rating_outcomes", rated)
        compare_ratings(con)
        deltas = account_deltas(con, cycle_level_charges(folder))
    # nothing changed: delta 0; billed usage as the invoice carries it: the sessions' line 1.025391 → 1.03 plus
    # the data rounding line 0.97 = 2.00 (without the rounding line a rerate would post −0.97)
    assert deltas.select("account_id", "delta", "new_usage_billed").rows() == [("ACC-13", D("0"), D("2.00"))]
