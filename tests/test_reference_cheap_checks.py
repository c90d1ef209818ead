"""The rate deck's checks on integer codes (``reference.key_codes``, ``_check_rate_steps``, ``_check_unique``,
``_check_periods``) and the money columns typed once per distinct amount (``_typed``) refuse exactly what the
rules refuse, naming the same row with the same message, and give the same values: each is compared, on random
input, with the rule written directly as polars group-bys over the text columns and as a cast of every row (the
code these checks had before they were made cheap)."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.reference import (
    BAND_KEY,
    DESTINATION_COLUMNS,
    KEYS,
    MONEY,
    RATE_KEY,
    ReferenceDataError,
    _check_periods,
    _check_rate_steps,
    _check_unique,
    _typed,
    column_codes,
    combined_codes,
    key_codes,
)

PATH = Path("rate_cards.csv")


def rule_of_rate_steps(path: Path, frame: pl.DataFrame) -> None:
    """The rate-step rules as group-bys and windows over the destination's text columns."""
    rows = frame.with_row_index("_row", offset=2)
    unequal = (
        rows.group_by(RATE_KEY)
        .agg(pl.min("_row"), *[pl.col(c).n_unique() for c in DESTINATION_COLUMNS])
        .filter(pl.any_horizontal([pl.col(c) > 1 for c in DESTINATION_COLUMNS]))
        .sort("_row")
    )
    if unequal.height:
        raise ReferenceDataError(
            path,
            unequal["_row"][0],
            f"the steps of one destination differ in one of {list(DESTINATION_COLUMNS)}",
            "give every step row of a rate card, prefix and jurisdiction the same values in those columns",
        )
    no_start = rows.filter(pl.col("from_second").min().over(BAND_KEY) != 0)
    if no_start.height:
        raise ReferenceDataError(
            path,
            no_start["_row"][0],
            "the destination has no step from second 0",
            "add a rate row with from_second 0 for this rate card, prefix and jurisdiction",
        )
    steps = rows.sort(*BAND_KEY, "from_second", nulls_last=True).with_columns(
        length=pl.col("from_second").shift(-1).over(BAND_KEY) - pl.col("from_second")
    )
    ragged = steps.filter(
        pl.col("length").is_not_null()
        & (
            (pl.col("length") < pl.col("first_increment_seconds"))
            | ((pl.col("length") - pl.col("first_increment_seconds")) % pl.col("increment_seconds") != 0)
        )
    )
    if ragged.height:
        raise ReferenceDataError(
            path,
            ragged["_row"][0],
            "the step ends before its increments do (length is not first increment + whole increments)",
            "move the next step's from_second to a whole increment of this step",
        )
    shapes = steps.group_by(BAND_KEY).agg(
        pl.min("_row"),
        shape=pl.concat_str("from_second", "first_increment_seconds", "increment_seconds", separator="/")
        .sort_by("from_second")
        .str.join(" "),
    )
    uneven = shapes.filter(pl.col("shape").n_unique().over(RATE_KEY) > 1)
    if uneven.height:
        raise ReferenceDataError(
            path,
            uneven.sort("_row", descending=True)["_row"][0],
            "the time bands of one destination have different steps or increments",
            "give every time band of a rate card, prefix and jurisdiction the same from_second and increments",
        )


def rule_of_unique(path: Path, frame: pl.DataFrame, key: tuple[str, ...]) -> None:
    dup = frame.with_row_index("_row", offset=2).filter(~pl.struct(list(key)).is_first_distinct())
    if dup.height:
        row = dup.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["_row"],
            f"duplicate key {tuple(row[k] for k in key)}",
            f"keep one row per {', '.join(key)}",
        )


def rule_of_periods(path: Path, frame: pl.DataFrame, key: str) -> None:
    rows = frame.with_row_index("_row", offset=2)
    backwards = rows.filter(pl.col("valid_to").is_not_null() & (pl.col("valid_to") <= pl.col("valid_from")))
    if backwards.height:
        raise ReferenceDataError(
            path,
            backwards["_row"][0],
            "valid_to is not after valid_from",
            "set valid_to after valid_from, or leave it empty for an open period",
        )
    ordered = rows.sort(key, "valid_from").with_columns(next_from=pl.col("valid_from").shift(-1).over(key))
    overlap = ordered.filter(
        pl.col("next_from").is_not_null()
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("next_from")))
    )
    if overlap.height:
        row = overlap.row(0, named=True)
        raise ReferenceDataError(
            path,
            row["_row"],
            f"{row[key]} has overlapping validity periods",
            "end the earlier period on or before the day the next one starts",
        )


def outcome(check, *args) -> str | None:
    try:
        check(*args)
    except ReferenceDataError as error:
        return str(error)
    return None


RATE_ROW_FIELDS = {
    "rate_card_id": st.sampled_from(["RC-A", "RC-B"]),
    "prefix": st.sampled_from([None, "1", "01", "44"]),
    "jurisdiction": st.sampled_from([None, "local", "international"]),
    "event_code": st.sampled_from([None, "X"]),
    "time_band": st.sampled_from([None, "peak", "offpeak"]),
    "from_second": st.sampled_from([0, 0, 0, 30, 60, 66, 120]),
    "first_increment_seconds": st.sampled_from([30, 60]),
    "increment_seconds": st.sampled_from([6, 30, 60]),
    "destination": st.sampled_from(["D1", "D1", "D1", "D2"]),
    "unit_seconds": st.sampled_from([60, 60, 60, 1]),
    "connect_fee": st.sampled_from([Decimal("0"), Decimal("0"), Decimal("0.05")]),
    "minimum_charge": st.just(Decimal("0")),
    "maximum_charge": st.sampled_from([None, None, Decimal("9")]),
    "rounding_method": st.sampled_from(["half_up", "half_up", "up"]),
    "rounding_decimals": st.sampled_from([4, 4, 2]),
}
RATE_ROW = st.fixed_dictionaries(RATE_ROW_FIELDS)
SCHEMA = {
    "rate_card_id": pl.String,
    "prefix": pl.String,
    "jurisdiction": pl.String,
    "event_code": pl.String,
    "time_band": pl.String,
    "from_second": pl.Int64,
    "first_increment_seconds": pl.Int64,
    "increment_seconds": pl.Int64,
    "destination": pl.String,
    "unit_seconds": pl.Int64,
    "connect_fee": MONEY,
    "minimum_charge": MONEY,
    "maximum_charge": MONEY,
    "rounding_method": pl.String,
    "rounding_decimals": pl.Int64,
}


@st.composite
def destinations(draw) -> list[dict]:
    """A deck built as destinations whose bands and steps mostly agree, every rule broken now and then: a step
    not from 0, a step that ends between increments, a band with other steps, a step with another fee."""
    rare = st.integers(0, 7).map(lambda n: n == 0)
    rows = []
    keys = st.tuples(*(RATE_ROW_FIELDS[c] for c in RATE_KEY))
    for key in draw(st.lists(keys, min_size=1, max_size=4, unique=True)):
        common = {**draw(RATE_ROW), **dict(zip(RATE_KEY, key, strict=True))}
        starts = draw(
            st.lists(st.sampled_from([0, 30, 60, 66, 90, 120]), min_size=1, max_size=3, unique=True)
        )
        if 0 not in starts and not draw(rare):
            starts = [0, *starts]
        increments = draw(st.sampled_from([(30, 6), (30, 30), (60, 60), (60, 6)]))
        for band in draw(st.lists(RATE_ROW_FIELDS["time_band"], min_size=1, max_size=3, unique=True)):
            band_starts = (
                starts
                if not draw(rare)
                else draw(st.lists(st.sampled_from([0, 30, 60]), min_size=1, max_size=2, unique=True))
            )
            for start in band_starts:
                first, step = increments if not draw(rare) else draw(st.sampled_from([(30, 6), (60, 60)]))
                row = {**common, "time_band": band, "from_second": start}
                row |= {"first_increment_seconds": first, "increment_seconds": step}
                if draw(st.integers(0, 40)) == 0:
                    row["connect_fee"] = Decimal("0.07")
                rows.append(row)
    return draw(st.permutations(rows))


def deck(rows: list[dict]) -> pl.DataFrame:
    """Rows with a unique key (as ``_check_unique`` leaves the deck before the step rules run)."""
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    return frame.filter(pl.struct(KEYS["rate_cards"]).is_first_distinct())


@settings(max_examples=400, deadline=None)
@given(st.lists(RATE_ROW, max_size=30))
def test_rate_steps_refuse_what_the_rules_refuse_naming_the_same_row(rows):
    frame = deck(rows)
    assert outcome(_check_rate_steps, PATH, frame) == outcome(rule_of_rate_steps, PATH, frame)


@settings(max_examples=500, deadline=None)
@given(destinations())
def test_rate_steps_of_banded_destinations_refuse_what_the_rules_refuse(rows):
    frame = deck(rows)
    assert outcome(_check_rate_steps, PATH, frame) == outcome(rule_of_rate_steps, PATH, frame)


@settings(max_examples=200, deadline=None)
@given(st.lists(RATE_ROW, min_size=1, max_size=12), st.data())
def test_bands_of_one_destination_in_the_same_steps_pass(rows, data):
    # every destination gets the same well-formed steps in every band: the deck passes both ways
    base = [{**row, "time_band": None} for row in deck(rows).unique(RATE_KEY, keep="first").to_dicts()]
    steps = data.draw(st.lists(st.sampled_from([30, 60, 90]), max_size=3, unique=True))
    full = [
        {
            **row,
            "time_band": band,
            "from_second": start,
            "first_increment_seconds": 30,
            "increment_seconds": 30,
        }
        for row in base
        for band in ("peak", "offpeak")
        for start in [0, *steps]
    ]
    frame = pl.DataFrame(full, schema=SCHEMA, orient="row")
    assert outcome(_check_rate_steps, PATH, frame) is None
    assert outcome(rule_of_rate_steps, PATH, frame) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(RATE_ROW, max_size=25))
def test_duplicate_keys_are_found_at_the_same_row(rows):
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    key = KEYS["rate_cards"]
    assert outcome(_check_unique, PATH, frame, key) == outcome(rule_of_unique, PATH, frame, key)
    single = ("prefix",)
    assert outcome(_check_unique, PATH, frame, single) == outcome(rule_of_unique, PATH, frame, single)


PERIOD = st.tuples(
    st.sampled_from(["+13125550100", "+13125550101"]),
    st.dates(date(2026, 1, 1), date(2026, 1, 20)),
    st.one_of(st.none(), st.integers(1, 15)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(PERIOD, max_size=12))
def test_overlapping_periods_are_found_at_the_same_row(periods):
    rows = [
        {"service_number": number, "valid_from": start, "valid_to": None if days is None else date.fromordinal(
            start.toordinal() + days)}
        for number, start, days in periods
    ]  # fmt: skip
    frame = pl.DataFrame(
        rows, schema={"service_number": pl.String, "valid_from": pl.Date, "valid_to": pl.Date}, orient="row"
    ).unique(["service_number", "valid_from"], keep="first", maintain_order=True)
    path = Path("service_numbers.csv")
    assert outcome(_check_periods, path, frame, "service_number") == outcome(
        rule_of_periods, path, frame, "service_number"
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(RATE_ROW, max_size=25))
def test_key_codes_are_equal_exactly_for_equal_keys(rows):
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    columns = [*BAND_KEY, "from_second", "connect_fee", "maximum_charge"]
    codes = key_codes(frame, columns).to_list()
    # radixes declared far above the codes force the ranked form (the product would not fit in 62 bits)
    ranked = combined_codes(
        [(code, 2**40) for code, _ in column_codes(frame, columns)], frame.height
    ).to_list()
    keys = frame.select(columns).rows()
    for i in range(len(keys)):
        for j in range(len(keys)):
            assert (codes[i] == codes[j]) == (keys[i] == keys[j])
            assert (ranked[i] == ranked[j]) == (keys[i] == keys[j])


@pytest.mark.parametrize("band", [None, "peak"])
def test_a_band_with_other_steps_is_named_by_its_first_row(band):
    # the destination's peak band bills 0/30/6 from 0 and 60; its offpeak band only from 0
    common = {**{k: None for k in SCHEMA}, "rate_card_id": "RC-A", "prefix": "44", "destination": "UK"}
    common |= {"unit_seconds": 60, "connect_fee": Decimal(0), "minimum_charge": Decimal(0)}
    common |= {"rounding_method": "half_up", "rounding_decimals": 4, "first_increment_seconds": 30}
    rows = [
        {**common, "time_band": band, "from_second": 0, "increment_seconds": 6},
        {**common, "time_band": band, "from_second": 60, "increment_seconds": 6},
        {**common, "time_band": "offpeak", "from_second": 0, "increment_seconds": 6},
    ]
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    with pytest.raises(ReferenceDataError, match=r"rate_cards.csv, row 4: the time bands of one destination"):
        _check_rate_steps(PATH, frame)
    assert outcome(_check_rate_steps, PATH, frame) == outcome(rule_of_rate_steps, PATH, frame)


def rule_of_money(path: Path, text: pl.DataFrame, column: str, kind: str) -> pl.Series:
    """A money column cast row by row: the first bad value raises with its row number."""
    raw = text[column].str.strip_chars()
    optional = kind.endswith("?")
    empty = raw.is_null() | (raw == "")
    value = raw.cast(MONEY, strict=False)
    bad = ~raw.str.contains(r"^\d+(\.\d{1,6})?$") | value.is_null()
    bad = (bad & ~empty) | (empty & (not optional))
    if bad.any():
        index = bad.arg_true()[0]
        raise ReferenceDataError(
            path,
            int(text["_row"][index]),
            f"{column}={raw[index]!r} is not a non-negative decimal with at most 6 decimals, e.g. 19.99",
            f"correct {column} in that row",
        )
    return value.alias(column).set(empty, None) if optional else value.alias(column)


AMOUNTS = [
    "0.0125",
    "0.0125",
    " 0.0125 ",
    "1",
    "19.99",
    "0.000001",
    None,
    "",
    "  ",
    "1.1234567",
    "-1",
    "1e3",
    "x",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(AMOUNTS), min_size=1, max_size=60),
    st.sampled_from(["money", "money?"]),
    st.sampled_from([0, 5000]),  # a deck's thousands of rows (typed per distinct amount) or a small table
)
def test_money_typed_once_per_amount_is_typed_as_every_row(texts, kind, deck_rows):
    column = [AMOUNTS[i % 5] for i in range(deck_rows)] + texts
    text = pl.DataFrame({"amount": column}, schema={"amount": pl.String}).with_row_index("_row", offset=2)
    try:
        expected: pl.Series | str = rule_of_money(PATH, text, "amount", kind)
    except ReferenceDataError as error:
        expected = str(error)
    try:
        got: pl.Series | str = _typed(PATH, text, "amount", kind)
    except ReferenceDataError as error:
        got = str(error)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert isinstance(got, pl.Series) and got.dtype == expected.dtype and got.equals(expected)
