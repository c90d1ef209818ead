"""A destination's steps read from its rate rows in one place (the table macro ``rating_destination_steps`` of
sql/rating_destination_steps.sql): the rating passes price a call by those steps and the rated event explains
the same steps, for a stepped destination whose later step has only band rates."""

from datetime import datetime
from decimal import Decimal

import pytest
import test_rating

from pipeline.engine import session
from pipeline.sql import read_sql

# RC-SB: from 0 s 0.10 a minute in 60/60 (no band), from 60 s per second at the time band's rate only (no rate
# without a band): peak 0.06, offpeak 0.012, weekend 0.006 a minute; band set TB, the call priced in its start band
STEPPED_BANDED = [
    ("RC-SB", "1", "US stepped", "0.10", 60, 60, 60, "0", "0", "half_up", 4, None, 0, None, None, None),
    *[
        ("RC-SB", "1", "US stepped", rate, 60, 1, 1, "0", "0", "half_up", 4, None, 60, None, band, None)
        for band, rate in [("peak", "0.06"), ("offpeak", "0.012"), ("weekend", "0.006")]
    ],
]


@pytest.fixture
def stepped_banded_deck(monkeypatch):
    """test_rating's reference with the card RC-SB (plan PSB, account ACC-SB, policy start in band set TB)."""
    monkeypatch.setattr(test_rating, "RATES", test_rating.RATES + STEPPED_BANDED)
    monkeypatch.setattr(
        test_rating,
        "RATE_CARD_POLICIES",
        [*test_rating.RATE_CARD_POLICIES, ("RC-SB", "TB", "start", "state")],
    )
    monkeypatch.setattr(
        test_rating, "PRICE_BOOKS", [*test_rating.PRICE_BOOKS, ("PB-SB", None, "PSB", None, "RC-SB")]
    )
    monkeypatch.setattr(test_rating, "ACCOUNTS", [*test_rating.ACCOUNTS, ("ACC-SB", "AG-1", "PSB")])


def test_the_steps_of_a_destination_are_read_once_in_order_with_their_band_rates(stepped_banded_deck):
    with session() as con:
        con.register("rate_cards", test_rating.reference_frames()["rate_cards"])
        con.execute(read_sql("rating_destinations.sql"))
        con.execute(read_sql("rating_destination_steps.sql"))
        rows = con.sql(
            """
            with used_destinations as (
                select destination_no from rating_destinations where rate_card_id = 'RC-SB'
            )
            select
                rate_card_id, prefix, jurisdiction, event_code, steps, destination, unit_seconds, connect_fee,
                minimum_charge, maximum_charge, rounding_method, rounding_decimals
            from rating_destination_steps(used_destinations)
            """
        ).fetchall()
    # one row for the destination, its two steps in order; a step's rate without a band is null when it has only
    # band rates, and a step without band rates has none (null)
    assert rows == [
        ("RC-SB", "1", None, None,
         [{"from_second": 0, "first_increment": 60, "increment": 60, "rate_micros": 100_000, "band_rates": None},
          {"from_second": 60, "first_increment": 1, "increment": 1, "rate_micros": None,
           "band_rates": {"peak": 60_000, "offpeak": 12_000, "weekend": 6_000}}],
         "US stepped", 60, Decimal(0), Decimal(0), None, "half_up", 4),
    ]  # fmt: skip


def test_a_stepped_destination_is_priced_and_explained_by_the_same_steps(stepped_banded_deck):
    rated = test_rating.rate(
        # Monday 2026-10-05 10:00 CDT, peak: 60 s × 0.10 / 60 + 23 s × 0.06 / 60 = 0.1 + 0.023
        ("ACC-SB", "IL", "+12125550123", 83, datetime(2026, 10, 5, 15)),
        # Sunday 2026-10-04 22:00 CDT, weekend: 0.1 + 23 × 0.006 / 60 = 0.1023
        ("ACC-SB", "IL", "+12125550123", 83, datetime(2026, 10, 5, 3)),
        # 40 s: only the first step is billed (60/60 → 60 s), whatever the band: 0.1
        ("ACC-SB", "IL", "+12125550123", 40, datetime(2026, 10, 5, 15)),
    )
    assert rated["charge_amount"].to_list() == [Decimal("0.123"), Decimal("0.1023"), Decimal("0.1")]
    assert rated["time_bands"].to_list() == ["peak 83s", "weekend 83s", "peak 60s"]
    assert rated.select(test_rating.EXPLANATION).unique().rows() == [
        ("1", None, "US stepped", Decimal("0.1"), "from 0s 60/60 @ 0.100000; from 60s 1/1 @ band rates",
         Decimal(0), Decimal(0), None, "half_up:4", None),
    ]  # fmt: skip
