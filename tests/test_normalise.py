"""Normalisation rules: E.164 numbers from NANP dial strings, local switch time to UTC across DST, and the
written rules that suspend or discard a record."""

from datetime import date, datetime

import phonenumbers
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.formats.common import RAW_SCHEMA
from pipeline.normalise import (
    DISCARD_REASONS,
    disposition_rule,
    e164_lookup,
    e164_numbers,
    international_e164,
    local_to_utc,
    normalise,
    spreadsheet_damaged,
    to_e164,
)


def e164(values: list[str | None]) -> list[str | None]:
    lookup = e164_lookup(pl.Series(values, dtype=pl.String), "US")
    return [None if v is None else lookup[v] for v in values]


def test_nanp_dial_strings():
    assert e164(["3125550100", "13125550100", "+1 (312) 555-0100", "011442079460000", "911", "", None]) == [
        "+13125550100", "+13125550100", "+13125550100", "+442079460000", "911", None, None,
    ]  # fmt: skip
    assert e164(["1125550100", "31255501"]) == [None, None]  # NPA cannot start with 1; 8 digits is no number
    assert e164(["s", "gonzalo@parzee.com", "4", "9.12678E+11"]) == [None] * 4  # not dial strings
    # Mexico's legacy mobile '1' is still dialled: kept for the rate card; an unknown country code is not
    assert e164(["0115215555553801", "+2921234567"]) == ["+5215555553801", None]


@given(
    npa=st.integers(200, 999).filter(lambda n: n % 100 != 11),
    nxx=st.integers(200, 999),
    line=st.integers(0, 9999),
    dialled_with_1=st.booleans(),
)
def test_nanp_numbers_agree_with_phonenumbers(npa, nxx, line, dialled_with_1):
    dialled = f"{'1' if dialled_with_1 else ''}{npa}{nxx}{line:04d}"
    expected = phonenumbers.format_number(
        phonenumbers.parse(dialled, "US"), phonenumbers.PhoneNumberFormat.E164
    )
    assert e164([dialled]) == [expected]


DIAL_STRINGS = st.one_of(
    st.none(),
    st.from_regex(r"1?[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True),  # plain NANP: converted where it stands
    st.from_regex(r"[0-9]{9,12}|011[0-9]{8,14}|\+[0-9 ()-]{8,16}|[0-9]{2,6}|\*[0-9]{2}", fullmatch=True),
    st.sampled_from(["9.12678E+11", "", " 3125550100", "1125550100", "s"]),
)


@settings(deadline=None)
@given(st.lists(st.tuples(DIAL_STRINGS, DIAL_STRINGS), max_size=30), st.sampled_from(["US", "GB"]))
def test_numbers_converted_in_place_equal_the_distinct_table(rows, region):
    """``e164_numbers`` (plain NANP numbers written where they stand, the rest through the table) gives every
    row the number ``e164_table`` gives its raw value, in any region, nulls and repeats included."""
    charged = pl.Series([row[0] for row in rows], dtype=pl.String)
    called = pl.Series([row[1] for row in rows], dtype=pl.String)
    converted, _ = e164_numbers({"charged": charged, "called": called}, region)
    lookup = e164_lookup(pl.concat([charged, called]), region)
    for raw, e164_column in ((charged, converted["charged"]), (called, converted["called"])):
        assert e164_column.to_list() == [None if value is None else lookup[value] for value in raw.to_list()]


COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@settings(deadline=None)  # a country's metadata is loaded on its first number
@given(
    code=st.one_of(st.sampled_from(COUNTRY_CODES), st.integers(0, 999)),
    national=st.text(alphabet="0123456789", max_size=20),
    prefix=st.sampled_from(["011", "011", "01", "0011", "+", ""]),
)
def test_international_numbers_agree_with_phonenumbers(code, national, prefix):
    """The vectorised 011 path (``international_e164``) and the careful path give the same number for any
    dial string of that shape: every country (national-prefix rules, +1, +7…), too short, too long, a
    national number starting with the country's prefix, short codes, an unknown code."""
    dialled = f"{prefix}{code}{national}"
    assert e164([dialled]) == [to_e164(dialled, "US")]
    decided = international_e164(pl.Series([dialled]), "US").filter("decided")
    if decided.height:
        assert decided["e164"].to_list() == [to_e164(dialled, "US")]


def test_international_numbers_of_the_usual_countries_are_decided_without_phonenumbers():
    """The foreign numbers the sample and bench months dial (Mexico, India, the UK) take the vectorised path;
    a national number the country's prefix rule matches (Russia's 8) is left to phonenumbers."""
    numbers = ["0115215555558231", "011525555559938", "011911123455775", "011442079460661", "0117812345678901"]
    table = international_e164(pl.Series(numbers), "US")
    assert table["decided"].to_list() == [True, True, True, True, False]
    assert table["e164"].to_list()[:4] == ["+5215555558231", "+525555559938", "+911123455775", "+442079460661"]
    assert e164(numbers) == [to_e164(n, "US") for n in numbers]


def test_local_time_to_utc_across_dst():
    frame = pl.DataFrame(
        {"t": ["2026-07-01 12:00:00", "2026-11-01 01:30:00", "2026-03-08 02:30:00", "2026-13-01 00:00:00"]}
    )
    utc = frame.select(local_to_utc(pl.col("t"), "America/Chicago").alias("t"))["t"].to_list()
    assert utc == [
        datetime(2026, 7, 1, 17, 0),  # CDT, UTC-5
        datetime(2026, 11, 1, 6, 30),  # ambiguous fall-back hour: its first occurrence (CDT)
        None,  # inside the spring-forward gap: does not exist → suspense
        None,  # not a date
    ]


def raw(**values: str) -> dict:
    base = {name: None for name in RAW_SCHEMA}
    base.update(line_no=1, raw="x", charged_raw="3125550100", calling_raw="3125550100",
                called_raw="2125550199", start_local_raw="2026-10-31 23:30:00",
                answer_local_raw="2026-10-31 23:30:00", billsec_raw="60", disposition="ANSWERED")  # fmt: skip
    base.update(values)
    return base


def test_statuses_reasons_and_cycle():
    records = pl.DataFrame(
        [
            raw(),
            raw(disposition="NO ANSWER", billsec_raw="0"),
            raw(billsec_raw="abc"),
            raw(billsec_raw="-5"),
            raw(start_local_raw="yesterday"),
            raw(called_raw="12"),
            raw(charged_raw="555"),
            raw(parse_error="UNPARSEABLE"),
        ],
        schema=RAW_SCHEMA,
    )
    out = normalise(records, file_id=7, source_id="switch-nyc", timezone="America/New_York",
                    billing_timezone="America/Chicago", registered_cycle="2026-11")  # fmt: skip
    assert out["status"].to_list() == ["ok", "discarded"] + ["suspended"] * 3 + ["ok", "ok", "suspended"]
    assert out["reason"].to_list() == [
        None, "NOT_ANSWERED", "BAD_DURATION", "NEGATIVE_DURATION", "BAD_TIMESTAMP", None, None, "UNPARSEABLE",
    ]  # fmt: skip
    # 23:30 in New York on 31 October is 22:30 in Chicago: still the October cycle
    assert out["cycle"][0] == "2026-10"
    # a record without a usable time belongs to the cycle that registered its file
    assert out["cycle"][4] == "2026-11"
    assert out["start_utc"][0] == datetime(2026, 11, 1, 3, 30)
    assert out["file_id"].unique().to_list() == [7]


def test_the_answer_time_is_read_by_the_start_rule_and_suspends_nothing():
    records = pl.DataFrame(
        [
            raw(answer_local_raw="2026-10-31 23:30:09"),
            raw(answer_local_raw=""),  # Asterisk writes none for some answered calls
            raw(answer_local_raw="2026-03-08 02:30:00"),  # inside the spring-forward gap
            raw(answer_local_raw="soon"),
        ],
        schema=RAW_SCHEMA,
    )
    out = normalise(records, file_id=7, source_id="switch-nyc", timezone="America/New_York",
                    billing_timezone="America/Chicago", registered_cycle="2026-10")  # fmt: skip
    assert out["answer_utc"].to_list() == [datetime(2026, 11, 1, 3, 30, 9), None, None, None]
    assert out["status"].to_list() == ["ok"] * 4  # a missing answer time is not a reason to suspend
    # a source whose answer time is its start (EMI): the same instant, converted once
    same = normalise(pl.DataFrame([raw()], schema=RAW_SCHEMA), file_id=7, source_id="ilec-duf",
                     timezone="America/New_York", billing_timezone="America/Chicago",
                     registered_cycle="2026-10")  # fmt: skip
    assert same["answer_utc"].to_list() == same["start_utc"].to_list() == [datetime(2026, 11, 1, 3, 30)]


def test_numbers_follow_the_source_region_numbering_plan():
    lookup = e164_lookup(pl.Series(["020 7946 0000", "+1 312 555 0100", "999"]), "GB")
    assert lookup == {"020 7946 0000": "+442079460000", "+1 312 555 0100": "+13125550100", "999": "999"}


def test_durations_future_calls_and_the_billing_window():
    records = pl.DataFrame(
        [
            raw(billsec_raw="86401"),  # a day and a second
            raw(start_local_raw="2026-12-02 10:00:00"),  # received 2026-11-05: after 2026-11-30 + 1 day
            raw(start_local_raw="2026-12-01 10:00:00"),  # within a day of the cycle's end: kept
            raw(start_local_raw="2026-05-04 10:00:00"),  # 181 days before 2026-11-01
            raw(start_local_raw="2026-05-05 10:00:00"),  # 180 days before: still billable
        ],
        schema=RAW_SCHEMA,
    )
    out = normalise(records, file_id=1, source_id="s", timezone="America/Chicago", billing_timezone="America/Chicago",
                    registered_cycle="2026-11", received_on=date(2026, 11, 5))  # fmt: skip
    assert out["reason"].to_list() == ["ABSURD_DURATION", "FUTURE_CALL", None, "OUTSIDE_BILLING_WINDOW", None]


_NUMBERS = st.one_of(
    st.none(),
    st.sampled_from(["3125550100", "13125550100", "2125550199", "555", "911", "01144207946000", "+1 312 555 0100"]),
    st.from_regex(r"\s?[0-9]{1,2}(\.[0-9]{1,5})?[Ee][+-]?[0-9]{1,2}\s?", fullmatch=True),  # spreadsheet damage
    st.from_regex(r"[0-9+() .eE-]{0,14}", fullmatch=True),
)
_STARTS = st.one_of(
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31)).map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S")),
    st.sampled_from(["2026-03-08 02:30:00", "2026-11-01 01:30:00", "2026-10-31 23:30:00", "", "yesterday"]),
)


_DISPOSITIONS = st.one_of(
    st.sampled_from([" answered", "ANSWERED", "Busy ", "no answer", "ınbound", "ſomething", "FAILED", "congestion"]),
    st.text(alphabet=" aAbBnNsSıſ\t", max_size=9),
)


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.tuples(_NUMBERS, _NUMBERS, _NUMBERS, _STARTS, _DISPOSITIONS), min_size=1, max_size=40),
    st.sampled_from(["calling is charged", "calling is called", "all three apart"]),
)
def test_numbers_damage_and_cycle_are_each_records_own(rows, shape):
    """Looked up once per distinct number (and once per column holding the same values), judged for spreadsheet
    damage once per distinct number, the cycle taken from the billing date: each record gets what its own
    numbers and time give, whichever columns share their values."""
    zone = "America/New_York"
    records = []
    for line_no, (charged, calling, called, start, disposition) in enumerate(rows, start=1):
        calling = {"calling is charged": charged, "calling is called": called}.get(shape, calling)
        records.append(raw(line_no=line_no, charged_raw=charged, calling_raw=calling, called_raw=called,
                           start_local_raw=start, disposition=disposition))  # fmt: skip
    frame = pl.DataFrame(records, schema=RAW_SCHEMA)
    out = normalise(frame, file_id=1, source_id="s", timezone=zone, billing_timezone="America/Chicago",
                    registered_cycle="2026-11", received_on=date(2026, 11, 5))  # fmt: skip
    for column in ("charged", "calling", "called"):
        assert out[f"{column}_number"].to_list() == e164(frame[f"{column}_raw"].to_list())
    # spreadsheet damage judged on each record's own two numbers
    either = spreadsheet_damaged(pl.col("charged_raw")) | spreadsheet_damaged(pl.col("called_raw"))
    damaged = frame.select(either).to_series().to_list()
    reasons = out["reason"].to_list()
    for is_damaged, reason, status in zip(damaged, reasons, out["status"].to_list(), strict=True):
        # damage is judged after the time and duration rules and before the number rules
        if reason in (None, "DAMAGED_NUMBER", "BAD_CHARGED_NUMBER", "BAD_CALLED_NUMBER"):
            assert (reason == "DAMAGED_NUMBER") == is_damaged
        assert status == ("ok" if reason is None else "discarded" if reason in DISCARD_REASONS else "suspended")
    # the discard rule on the disposition as the switch wrote it, where the time was usable (billsec is 60)
    rules = frame.select(disposition_rule(pl.col("disposition"), pl.lit(60)), out["start_utc"].is_not_null())
    for rule, timed, reason in zip(*rules.get_columns(), reasons, strict=True):
        if timed and rule is not None:
            assert reason == rule
    start_utc = local_to_utc(pl.col("start_local_raw"), zone)
    billing = frame.select(start_utc.dt.replace_time_zone("UTC").dt.convert_time_zone("America/Chicago"))
    # the billing zone's year and month by Python's own formatting; no usable time: the registering cycle
    expected = [f"{t:%Y-%m}" if t is not None else "2026-11" for t in billing.to_series().to_list()]
    assert out["cycle"].to_list() == expected
