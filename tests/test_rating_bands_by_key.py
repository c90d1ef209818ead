"""Time bands by the start band: a banded call whose billed time line lies inside the band period it starts in
(policy 'start': every call) is priced whole in its start band, and only the calls that cross a boundary are cut
into pieces (sql/rating.sql ``call_start_bands``). The rule must price every call exactly as cutting every banded
call into pieces does (``rating.WHOLE_CALLS_BY_START_BAND = False``: the whole call is then its one piece)."""

from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import polars as pl
import pytest
import test_rating
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline import rating

# a second band set with boundaries at half and quarter hours and no holiday band (holidays are weekdays there)
HALF_HOUR_BANDS = [
    ("TQ", "weekday", "00:00", "08:30", "offpeak"),
    ("TQ", "weekday", "08:30", "17:45", "peak"),
    ("TQ", "weekday", "17:45", "24:00", "offpeak"),
    ("TQ", "weekend", "00:00", "24:00", "weekend"),
]
BANDS = ["peak", "offpeak", "weekend"]
# the line's states: two zones, Columbus Day a holiday in IL but not in TX; ZZ has no time zone (no band: NO_BAND)
STATES = ["IL", "TX", "NY", "ZZ"]
MONEY = pl.Decimal(18, 6)


@st.composite
def banded_cards(draw: st.DrawFn) -> dict:
    """One banded rate card RC-X: its band set, policy and holidays, its steps (one, or 'first minute then per
    second'), the bands it prices (a band may lack a rate: the rate without a band, else no rate) and its terms."""
    steps = draw(st.sampled_from([[(0, 1, 1)], [(0, 60, 60)], [(0, 30, 6)], [(0, 60, 60), (60, 1, 1)]]))
    bands = draw(st.lists(st.sampled_from([*BANDS, None]), min_size=1, max_size=4, unique=True))
    return {
        "band_set": draw(st.sampled_from(["TB", "TQ"])),
        "policy": draw(st.sampled_from(["split", "start"])),
        "holidays": draw(st.sampled_from(["state", "federal", "none"])),
        "steps": steps,
        "rates": {
            (band, from_second): str(Decimal(draw(st.integers(min_value=0, max_value=200_000))).scaleb(-6))
            for band in bands
            for from_second, _, _ in steps
        },
        "unit": draw(st.sampled_from([1, 60])),
        "fee": str(Decimal(draw(st.integers(min_value=0, max_value=50_000))).scaleb(-6)),
        "minimum": str(Decimal(draw(st.integers(min_value=0, max_value=20_000))).scaleb(-6)),
        "maximum": draw(st.none() | st.integers(min_value=20_000, max_value=5_000_000).map(
            lambda m: str(Decimal(m).scaleb(-6))
        )),
        "method": draw(st.sampled_from(["half_up", "half_even", "up", "down"])),
        "decimals": draw(st.integers(min_value=0, max_value=6)),
        "allowance": draw(st.integers(min_value=0, max_value=600)),
    }  # fmt: skip


# midnights, the DST change (Sunday 2026-11-01), Columbus Day (Monday 2026-10-12), week ends, band boundaries
AROUND = [datetime(2026, 10, 12, 5), datetime(2026, 11, 1, 6), datetime(2026, 11, 2, 13), datetime(2026, 10, 10, 5),
          datetime(2026, 10, 5, 12), datetime(2026, 10, 5, 11), datetime(2026, 10, 5, 13, 30),
          datetime(2026, 10, 5, 22, 45)]  # fmt: skip

# a call that ends a few seconds before, at or after a boundary (a start AROUND, the call that long ± 3 s)
ending_near_a_boundary = st.tuples(
    st.sampled_from(["ACC-X"]),
    st.sampled_from(STATES),
    st.just("+12125550123"),
    st.sampled_from(AROUND),
    st.integers(min_value=0, max_value=7200),
    st.integers(min_value=-3, max_value=3),
).map(lambda c: (*c[:3], max(c[4] + c[5], 0), c[3] - timedelta(seconds=c[4])))

calls = st.lists(
    ending_near_a_boundary
    | st.tuples(
        st.sampled_from(["ACC-X", "ACC-X", "ACC-1"]),  # the banded card's plan (with an allowance), and RC-A
        st.sampled_from(STATES),
        st.sampled_from(test_rating.CALLED),
        st.one_of(
            st.integers(min_value=0, max_value=7200),
            st.integers(min_value=0, max_value=3),
            st.integers(min_value=80_000, max_value=200_000),  # a call over one or two midnights
        ),
        st.one_of(
            st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2026, 11, 28)),
            st.tuples(st.sampled_from(AROUND), st.integers(min_value=-7200, max_value=7200)).map(
                lambda around: around[0] + timedelta(seconds=around[1])
            ),
        ),
    ),
    min_size=1,
    max_size=14,
)


def rate_with_card(
    card: dict,
    events: list[tuple],
    visited_country: str | None,
    whole_by_start_band: bool,
    start_band_step_always: bool = False,
):
    """Rate ``events`` with test_rating's reference plus the banded card RC-X (plan PX, account ACC-X, an
    allowance of the card's size, a roaming surcharge for RC-X), one row per event. ``start_band_step_always``:
    the start-band step runs even when no card has a band set (``START_BANDS_ONLY_WITH_BAND_SETS`` off)."""
    rows = [
        ("RC-X", "1", "US", rate, card["unit"], first, increment, card["fee"], card["minimum"], card["method"],
         card["decimals"], None, from_second, card["maximum"], band, None)
        for from_second, first, increment in card["steps"]
        for (band, step_from), rate in card["rates"].items()
        if step_from == from_second
    ]  # fmt: skip
    original = test_rating.reference_frames

    def frames() -> dict[str, pl.DataFrame]:
        tables = original()
        tables["roaming_surcharges"] = pl.DataFrame(
            {"rate_card_id": ["RC-A", "RC-X"], "zone": ["NA", "NA"], "surcharge_per_unit": ["0.10", "0.02"]}
        ).with_columns(pl.col("surcharge_per_unit").cast(MONEY))
        return tables

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_rating, "RATES", test_rating.RATES + rows)
        patch.setattr(test_rating, "TIME_BANDS", test_rating.TIME_BANDS + HALF_HOUR_BANDS)
        patch.setattr(
            test_rating,
            "RATE_CARD_POLICIES",
            [*test_rating.RATE_CARD_POLICIES, ("RC-X", card["band_set"], card["policy"], card["holidays"])],
        )
        patch.setattr(
            test_rating, "PRICE_BOOKS", [*test_rating.PRICE_BOOKS, ("PB-X", None, "PX", None, "RC-X")]
        )
        patch.setattr(test_rating, "ACCOUNTS", [*test_rating.ACCOUNTS, ("ACC-X", "AG-1", "PX")])
        patch.setattr(
            test_rating,
            "ALLOWANCES",
            [*test_rating.ALLOWANCES, ("AL-X", "PX", "voice", "domestic", card["allowance"])],
        )
        patch.setattr(test_rating, "reference_frames", frames)
        patch.setattr(rating, "WHOLE_CALLS_BY_START_BAND", whole_by_start_band)
        patch.setattr(rating, "START_BANDS_ONLY_WITH_BAND_SETS", not start_band_step_always)
        return test_rating.rate(*events, visited_country=visited_country)


@settings(max_examples=60, deadline=None)
@given(banded_cards(), calls, st.sampled_from([None, None, "MX", "JP"]), st.booleans())
# a split call that crosses 07:00 local, one inside a band, a 0 s call on a boundary, one over two midnights
@example(
    {"band_set": "TB", "policy": "split", "holidays": "state", "steps": [(0, 60, 60), (60, 1, 1)],
     "rates": {("peak", 0): "0.06", ("peak", 60): "0.02", ("offpeak", 0): "0.012", ("offpeak", 60): "0.004"},
     "unit": 60, "fee": "0.01", "minimum": "0", "maximum": None, "method": "half_up", "decimals": 4,
     "allowance": 90},
    [("ACC-X", "IL", "+12125550123", 120, datetime(2026, 10, 5, 11, 59)),
     ("ACC-X", "IL", "+12125550123", 300, datetime(2026, 10, 5, 14)),
     ("ACC-X", "TX", "+12125550123", 0, datetime(2026, 10, 5, 12)),
     ("ACC-X", "NY", "+12125550123", 150_000, datetime(2026, 10, 9, 23, 30))],
    None,
    False,
)  # fmt: skip
def test_whole_calls_by_start_band_price_like_every_call_cut_into_pieces(
    card, events, visited_country, micros
):
    # band split and start policies, two band sets, holidays by state / federal / none, DST, midnights, week ends,
    # one or two steps, a band without a rate, the allowance crossing, roaming, minimum, maximum, every rounding
    if not micros:
        events = [(*event[:4], event[4].replace(microsecond=0)) for event in events]
    by_start_band = rate_with_card(card, events, visited_country, whole_by_start_band=True)
    all_pieces = rate_with_card(card, events, visited_country, whole_by_start_band=False)
    assert by_start_band.columns == all_pieces.columns
    assert by_start_band.to_dicts() == all_pieces.to_dicts()


def test_the_card_of_the_property_test_prices_by_band_and_crosses_boundaries():
    # the property above compares two paths; this pins what both give on a split card: a call inside the peak
    # band whole, a call across 07:00 CDT in two pieces, a start-band call whole in its start band, NO_BAND
    card = {
        "band_set": "TB", "policy": "split", "holidays": "state", "steps": [(0, 1, 1)],
        "rates": {("peak", 0): "0.06", ("offpeak", 0): "0.012"}, "unit": 60, "fee": "0", "minimum": "0",
        "maximum": None, "method": "half_up", "decimals": 6, "allowance": 0,
    }  # fmt: skip
    events = [
        ("ACC-X", "IL", "+12125550123", 60, datetime(2026, 10, 5, 17)),  # Mon 12:00 CDT, peak
        ("ACC-X", "IL", "+12125550123", 120, datetime(2026, 10, 5, 11, 59)),  # 06:59 CDT, across 07:00
        ("ACC-X", "ZZ", "+12125550123", 60, datetime(2026, 10, 5, 17)),  # no time zone: no band
    ]
    for whole in (True, False):
        rows = rate_with_card(card, events, None, whole_by_start_band=whole).to_dicts()
        assert [(r["time_bands"], r["charge_amount"], r["rating_reason"]) for r in rows] == [
            ("peak 60s", Decimal("0.06"), None),
            ("offpeak 60s, peak 60s", Decimal("0.072"), None),
            (None, None, "NO_BAND"),
        ]


@settings(max_examples=40, deadline=None)
@given(banded_cards(), calls, st.sampled_from([None, None, "MX", "JP"]))
def test_an_unbanded_deck_prices_without_the_start_band_step_as_with_it(card, events, visited_country):
    # no card of the deck has a band set (RC-X's band rates become its rates without a band, test_rating's banded
    # cards lose their band set): every call is priced whole without the start-band step, as with it
    card = {
        **card,
        "band_set": None,
        "rates": {(None, step): rate for (_, step), rate in card["rates"].items()},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_rating, "RATE_CARD_POLICIES", [])
        without_step = rate_with_card(card, events, visited_country, whole_by_start_band=True)
        with_step = rate_with_card(
            card, events, visited_country, whole_by_start_band=True, start_band_step_always=True
        )
    assert without_step.columns == with_step.columns
    assert without_step.to_dicts() == with_step.to_dicts()
    assert without_step["time_bands"].is_null().all()
    assert "NO_BAND" not in without_step["rating_reason"].to_list()


def test_the_start_band_step_is_planned_away_only_without_band_sets():
    # the switch the unbanded test above compares: a deck without band sets runs no start-band join (the macro
    # is false), a deck with one does
    con = duckdb.connect()
    tables = test_rating.reference_frames()
    con.register("rate_card_policies", tables["rate_card_policies"])
    assert rating._has_band_sets(con)
    con.register("rate_card_policies", tables["rate_card_policies"].clear())
    assert not rating._has_band_sets(con)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rating, "START_BANDS_ONLY_WITH_BAND_SETS", False)
        assert rating._has_band_sets(con)
