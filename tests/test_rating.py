"""Rating rules on small, hand-checked events: billing increments, longest prefix, price book resolution,
connect fees, minimums, rounding methods, and suspense for what cannot be priced."""

from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

import polars as pl
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pipeline import rating
from pipeline.engine import session
from pipeline.rating import rate_events
from pipeline.sql import read_sql

RATE_COLUMNS = [
    "rate_card_id", "prefix", "destination", "rate_per_unit", "unit_seconds", "first_increment_seconds",
    "increment_seconds", "connect_fee", "minimum_charge", "rounding_method", "rounding_decimals",
    "jurisdiction", "from_second", "maximum_charge", "time_band", "event_code",
]  # fmt: skip
RATES = [
    ("RC-A", "1", "US & Canada", "0.02", 60, 6, 6, "0", "0", "half_up", 4),
    ("RC-A", "1876", "Jamaica", "0.35", 60, 60, 60, "0", "0", "half_up", 4),
    ("RC-A", "44", "UK", "0.09", 60, 30, 6, "0.05", "0", "half_up", 4),
    ("RC-A", "447", "UK mobile", "0.25", 60, 30, 6, "0.05", "0", "half_up", 4),
    ("RC-B", "1", "US & Canada", "0.01", 60, 60, 60, "0", "0.10", "up", 2),
    ("RC-C", "1", "US & Canada", "0.0125", 60, 1, 1, "0", "0", "half_even", 4),
    ("RC-C", "44", "UK", "0.0125", 60, 1, 1, "0", "0", "down", 4),
    # RC-D prices by jurisdiction, with steps: the first minute at 0.10, then 0.02 per minute per second
    ("RC-D", None, "Local", "0.0000", 60, 60, 60, "0", "0", "half_up", 4, "local"),
    ("RC-D", None, "Intrastate", "0.1000", 60, 60, 60, "0", "0", "half_up", 4, "intrastate"),
    ("RC-D", None, "Intrastate", "0.0200", 60, 1, 1, "0", "0", "half_up", 4, "intrastate", 60),
    ("RC-D", None, "Interstate", "0.0400", 60, 6, 6, "0", "0", "half_up", 4, "interstate", 0, "0.50"),
    ("RC-D", None, "Toll-free", "0", 60, 1, 1, "0", "0", "half_up", 4, "toll_free"),
    ("RC-D", None, "Premium", "1.9900", 60, 60, 60, "0.50", "0", "half_up", 4, "premium"),
    ("RC-D", None, "Service code", "0", 60, 1, 1, "0", "0", "half_up", 4, "n11"),
    ("RC-D", "44", "UK", "0.0900", 60, 30, 6, "0", "0", "half_up", 4),
    ("RC-D", None, "Rest of world", "0.9000", 60, 60, 60, "0", "0", "half_up", 4, "international"),
    ("RC-D", None, "Anywhere else", "0.0700", 60, 60, 60, "0", "0", "half_up", 4),
]
# RC-E / RC-F price by time band (band set TB, the line's state's holidays), per second: peak 0.06/min,
# offpeak 0.012/min, weekend (and holidays) 0.006/min; RC-E splits a call at band boundaries, RC-F does not
for card in ("RC-E", "RC-F"):
    RATES += [
        (card, "1", "US", rate, 60, 1, 1, "0", "0", "half_up", 6, None, 0, None, band)
        for band, rate in [("peak", "0.06"), ("offpeak", "0.012"), ("weekend", "0.006")]
    ]
# services, each on its own card chosen by a service price book: SMS 0.01 per message (UK 0.05), MMS 0.25,
# data 0.01 per MB (1,048,576 bytes) per byte, value-added events flat by event code
RATES += [
    ("RC-SMS", None, "SMS", "0.01", 1, 1, 1, "0", "0", "half_up", 4),
    ("RC-SMS", "44", "SMS UK", "0.05", 1, 1, 1, "0", "0", "half_up", 4),
    ("RC-MMS", None, "MMS", "0.25", 1, 1, 1, "0", "0", "half_up", 4),
    ("RC-MMS0", None, "MMS (tiered)", "0", 1, 1, 1, "0", "0", "half_up", 4),
    ("RC-DATA", None, "Data", "0.01", 1048576, 1, 1, "0", "0", "half_up", 4),
    ("RC-VAS", None, "Horoscope", "0.99", 1, 1, 1, "0", "0", "half_up", 2, None, 0, None, None, "HOROSCOPE"),
    ("RC-VAS", None, "Caller tune", "1.49", 1, 1, 1, "0", "0", "half_up", 2, None, 0, None, None, "TUNE"),
]
RATES = [(*r, *(None, 0, None, None, None)[len(r) - 11 :]) for r in RATES]
PLAN_USAGE_SETTINGS = [("P5", "message", "session", "MB"), ("P6", "segment", "session", "KB")]
RATE_CARD_POLICIES = [("RC-E", "TB", "split", "state"), ("RC-F", "TB", "start", "state")]
TIME_BANDS = [
    ("TB", "weekday", "00:00", "07:00", "offpeak"),
    ("TB", "weekday", "07:00", "19:00", "peak"),
    ("TB", "weekday", "19:00", "24:00", "offpeak"),
    ("TB", "weekend", "00:00", "24:00", "weekend"),
    ("TB", "holiday", "00:00", "24:00", "weekend"),
]
STATE_TIME_ZONES = [("IL", "America/Chicago"), ("TX", "America/Chicago"), ("NY", "America/New_York")]
PRICE_BOOKS = [
    # price_book_id, agent_id, plan_id, state, rate_card_id
    ("PB-PLAN", None, "P1", None, "RC-A"),
    ("PB-PLAN-TX", None, "P1", "TX", "RC-B"),
    ("PB-AGENT-PLAN-TX", "AG-2", "P1", "TX", "RC-C"),
    ("PB-JUR", None, "P2", None, "RC-D"),
    ("PB-JUR-NY", None, "P2", "NY", "RC-A"),
    ("PB-SPLIT", None, "P3", None, "RC-E"),
    ("PB-START", None, "P4", None, "RC-F"),
    *[
        (f"PB-{plan}-{service}", None, plan, None, f"RC-{service.upper()}", service)
        for plan in ("P5", "P6")
        for service in ("sms", "mms", "data", "vas")
    ],
    ("PB-P7", None, "P7", None, "RC-C"),
    ("PB-P8-MMS", None, "P8", None, "RC-MMS0", "mms"),
    ("PB-P10-MMS", None, "P10", None, "RC-MMS0", "mms"),
]
# the tier table: from 0 @ 0.10, from 1,000 @ 0.05, from 10,000 @ 0.01 — graduated on P8, volume on P10
TIERS = [
    (tier, plan, "mms", mode, start, price)
    for tier, plan, mode in [("T-GRAD", "P8", "graduated"), ("T-VOL", "P10", "volume")]
    for start, price in [(0, "0.10"), (1000, "0.05"), (10000, "0.01")]
]
NPA_NXX = [
    ("312", None, "US", "IL", "Chicago"),
    ("773", None, "US", "IL", "Chicago"),
    ("217", None, "US", "IL", "Springfield"),
    ("212", None, "US", "NY", "New York"),
    ("212", "999", "US", "NJ", "Hoboken"),  # an NPA-NXX row wins over its NPA's row
    ("876", None, "JM", None, None),
]
ACCOUNTS = [
    ("ACC-1", "AG-1", "P1"),
    ("ACC-2", "AG-2", "P1"),
    ("ACC-3", "AG-1", "P9"),
    ("ACC-4", "AG-1", "P2"),
    ("ACC-5", "AG-1", "P3"),
    ("ACC-6", "AG-1", "P4"),
    ("ACC-7", "AG-1", "P5"),
    ("ACC-8", "AG-1", "P6"),
    ("ACC-9", "AG-1", "P7"),
    ("ACC-10", "AG-1", "P7"),  # activated 2026-10-16: 16 of October's 31 days
    ("ACC-11", "AG-1", "P8"),
    ("ACC-12", "AG-1", "P10"),
]
ALLOWANCES = [("AL-P7-VOICE", "P7", "voice", "domestic", 100)]  # 100 s of domestic calls


def reference_frames() -> dict[str, pl.DataFrame]:
    money = pl.Decimal(18, 6)
    rates = pl.DataFrame(RATES, schema=RATE_COLUMNS, orient="row").with_columns(
        pl.col("rate_per_unit", "connect_fee", "minimum_charge", "maximum_charge").cast(money)
    )
    books = pl.DataFrame(
        [(*b, None)[:6] for b in PRICE_BOOKS],
        schema=["price_book_id", "agent_id", "plan_id", "state", "rate_card_id", "service"],
        orient="row",
    ).with_columns(valid_from=pl.lit(date(2026, 1, 1)), valid_to=pl.lit(None, pl.Date))
    accounts = pl.DataFrame(
        ACCOUNTS, schema=["account_id", "agent_id", "plan_id"], orient="row"
    ).with_columns(
        activated_on=pl.when(pl.col("account_id") == "ACC-10")
        .then(pl.lit(date(2026, 10, 16)))
        .otherwise(pl.lit(date(2025, 1, 1))),
        deactivated_on=pl.lit(None, pl.Date),
    )
    npa_nxx = pl.DataFrame(
        NPA_NXX,
        schema=["npa", "nxx", "country", "state", "local_area"],
        orient="row",
        infer_schema_length=None,
    )
    return {
        "rate_cards": rates,
        "price_books": books,
        "accounts": accounts,
        "npa_nxx": npa_nxx,
        "rate_card_policies": pl.DataFrame(
            RATE_CARD_POLICIES, schema=["rate_card_id", "band_set", "band_policy", "holidays"], orient="row"
        ),
        "time_bands": pl.DataFrame(
            TIME_BANDS, schema=["band_set", "day_type", "start_time", "end_time", "time_band"], orient="row"
        ),
        "state_time_zones": pl.DataFrame(STATE_TIME_ZONES, schema=["state", "timezone"], orient="row"),
        "roaming_zones": pl.DataFrame({"country": ["MX"], "zone": ["NA"]}),
        "roaming_surcharges": pl.DataFrame(
            {"rate_card_id": ["RC-A"], "zone": ["NA"], "surcharge_per_unit": ["0.10"]}
        ).with_columns(pl.col("surcharge_per_unit").cast(money)),
        "tiers": pl.DataFrame(
            TIERS,
            schema=["tier_id", "plan_id", "service", "mode", "from_units", "price_per_unit"],
            orient="row",
        ).with_columns(pl.col("price_per_unit").cast(money)),
        "allowances": pl.DataFrame(
            ALLOWANCES, schema=["allowance_id", "plan_id", "service", "zone", "included_units"], orient="row"
        ),
        "plan_usage_settings": pl.DataFrame(
            PLAN_USAGE_SETTINGS,
            schema=["plan_id", "sms_charging", "data_rounding", "data_unit"],
            orient="row",
        ),
    }


def rate(
    *events: tuple,
    charged: str = "+13125550100",
    service: str = "voice",
    units: int | None = None,
    sms_chars: int | None = None,
    event_code: str | None = None,
    visited_country: str | None = None,
    tiers: bool = False,
    slice_events: int = 500_000,
) -> pl.DataFrame:
    """Rate (account_id, service_state, called_number, billsec[, start_utc]) events; one output row per event."""
    normalised = pl.DataFrame(
        [
            {
                "file_id": 1,
                "line_no": i,
                "cycle": "2026-10",
                "source_id": "s",
                "status": "normalised",
                "reason": None,
                "raw": "",
                "source_record_id": None,
                "account_id": account,
                "service_state": state,
                "charged_number": charged,
                "calling_number": charged,
                "called_number": called,
                "start_utc": start,
                "call_date": start.date(),
                "billsec": billsec,
                "service": service,
                "units": units,
                "sms_chars": sms_chars,
                "event_code": event_code,
                "visited_country": visited_country,
                "disposition": "ANSWERED",
            }  # fmt: skip
            for i, (account, state, called, billsec, start) in enumerate(
                (e if len(e) == 5 else (*e, datetime(2026, 10, 5, 12)) for e in events), start=1
            )
        ]
    )
    with session() as con:
        for name, frame in {**reference_frames(), "normalised": normalised}.items():
            con.register(name, frame)
        rated = rate_events(con, slice_events).pl().sort("line_no")
        # the rating passes turn a DuckDB optimizer off for their own statements only
        assert con.execute("select current_setting('disabled_optimizers')").fetchall() == [("",)]
        return con.sql(read_sql("tiers.sql")).pl().sort("account_id") if tiers else rated


@pytest.mark.parametrize(
    ("called", "billsec", "billed", "charge"),
    [
        ("+12125550199", 8, 12, "0.004000"),  # 6/6 bills 8 s as 12 s: 12 × 0.02 / 60
        ("+12125550199", 83, 84, "0.028000"),
        ("+442079460000", 10, 30, "0.095000"),  # 30/6 bills 10 s as 30 s, + 0.05 connect
        ("+442079460000", 31, 36, "0.104000"),  # 30/6 bills 31 s as 36 s: 0.054 + 0.05
        ("+18765550123", 83, 120, "0.700000"),  # 60/60 bills 83 s as 120 s at the Jamaica rate
        ("+447700900123", 31, 36, "0.200000"),  # "447" is longer than "44": the mobile rate wins
    ],
)
def test_increments_prefixes_and_connect_fees(called, billsec, billed, charge):
    row = rate(("ACC-1", "IL", called, billsec)).row(0, named=True)
    assert (row["billed_seconds"], row["charge_amount"]) == (billed, Decimal(charge))
    assert row["rating_reason"] is None and row["price_book_id"] == "PB-PLAN"


def test_price_book_by_agent_plan_and_state():
    rated = rate(
        ("ACC-1", "IL", "+12125550199", 83),  # plan default → RC-A
        ("ACC-1", "TX", "+12125550199", 83),  # plan + state → RC-B
        ("ACC-2", "TX", "+12125550199", 83),  # agent + plan + state → RC-C
    )
    assert rated["price_book_id"].to_list() == ["PB-PLAN", "PB-PLAN-TX", "PB-AGENT-PLAN-TX"]
    # RC-B: 60/60, 0.01/min, minimum 0.10, rounded up to 2 decimals: 120 s → 0.02 → minimum 0.10
    # RC-C: per second, 0.0125/min: 83 × 0.0125 / 60 = 0.017291666… → half_even at 4 → 0.0173
    assert rated["charge_amount"].to_list() == [Decimal("0.028"), Decimal("0.10"), Decimal("0.0173")]


def test_rounding_is_applied_once_per_event_by_the_rates_method():
    # RC-C UK rounds down: 83 × 0.0125 / 60 = 0.0172916… → 0.0172 (down), where half_even gives 0.0173
    rated = rate(("ACC-2", "TX", "+442079460000", 83), ("ACC-2", "TX", "+12125550199", 83))
    assert rated["charge_amount"].to_list() == [Decimal("0.0172"), Decimal("0.0173")]
    # half_even on an exact half: 24 s × 0.0125 / 60 = 0.005 exactly → stays 0.0050
    assert rate(("ACC-2", "TX", "+12125550199", 24))["charge_amount"][0] == Decimal("0.005")


def test_what_cannot_be_priced_goes_to_suspense_with_a_reason():
    rated = rate(
        ("ACC-3", "IL", "+12125550199", 60),  # plan P9 has no price book
        ("ACC-1", "IL", "+33142685300", 60),  # France: no prefix in RC-A
    )
    assert rated["rating_reason"].to_list() == ["NO_PRICE_BOOK", "NO_RATE"]
    assert rated["charge_amount"].to_list() == [None, None]


def test_a_book_without_a_service_prices_calls_and_events_but_not_messages_or_data():
    # ACC-1's plan has only books that name no service (RC-A: per minute, by prefix). Read as seconds, its
    # card would price an SMS as a 1-second call and a 1.5 MB session as 1,500,000 seconds: those need a book
    # of their own service
    called = "+12125550199"
    rated = [
        rate(("ACC-1", "IL", called, 60)),
        rate(("ACC-1", "IL", None, 0), service="vas", units=1, event_code="HOROSCOPE"),  # booked; no such row
        rate(("ACC-1", "IL", called, 0), service="sms", units=1, sms_chars=20),
        rate(("ACC-1", "IL", called, 0), service="mms", units=1),
        rate(("ACC-1", "IL", None, 0), service="data", units=1_500_000),
    ]
    assert [r["rating_reason"][0] for r in rated] == [None, "NO_RATE", "NO_PRICE_BOOK", "NO_PRICE_BOOK",
                                                       "NO_PRICE_BOOK"]  # fmt: skip
    assert rated[0]["charge_amount"][0] > 0


def test_unpriced_events_keep_their_reason_beside_the_priced_events_of_their_account():
    # a pass writes the events it priced, then rates the ones it could not price alone, for their reasons
    # (pipeline/rating.py): reasons and neighbours are what one pass over all the events gives
    rated = rate(
        ("ACC-1", "IL", "+33142685300", 60, datetime(2026, 10, 5, 11)),  # France: no prefix in RC-A
        ("ACC-1", "IL", "+12125550199", 8, datetime(2026, 10, 5, 12)),
        ("ACC-3", "IL", "+12125550199", 60, datetime(2026, 10, 5, 13)),  # plan P9 has no price book
        ("ACC-1", "IL", "+12125550199", 83, datetime(2026, 10, 5, 14)),
    )
    assert rated["rating_reason"].to_list() == ["NO_RATE", None, "NO_PRICE_BOOK", None]
    # 6/6 at 0.02 a minute: 8 s → 12 s = 0.004; 83 s → 84 s = 84 × 0.02 / 60 = 0.028
    assert rated["charge_amount"].to_list() == [None, Decimal("0.004000"), None, Decimal("0.028000")]
    assert rated["jurisdiction"].to_list() == ["international", "interstate", "interstate", "interstate"]
    unpriced = rated.filter(pl.col("rating_reason").is_not_null())
    assert unpriced["price_book_id"].to_list() == [None, None]  # how it would have been priced: nothing


EXPLANATION = ["prefix", "rate_jurisdiction", "destination", "rate_per_unit", "billing_increment", "connect_fee",
               "minimum_charge", "maximum_charge", "rounding_rule", "rate_event_code"]  # fmt: skip


@pytest.mark.parametrize("slice_events", [500_000, 1])
def test_each_event_is_explained_by_its_destination_in_every_slice(slice_events):
    # the passes carry the destination by number; its explanation is joined once per run (pipeline/rating.py),
    # whatever slice priced the event, and an event that could not be priced has none
    rated = rate(
        ("ACC-1", "IL", "+447700900123", 31),  # RC-A 447 UK mobile
        ("ACC-2", "TX", "+442079460000", 83),  # RC-C 44 UK
        ("ACC-1", "IL", "+33142685300", 60),  # France: no prefix in RC-A
        ("ACC-4", "IL", "+12125550123", 900),  # RC-D interstate: a jurisdiction row with a maximum
        slice_events=slice_events,
    )
    assert rated.select(EXPLANATION).rows() == [
        ("447", None, "UK mobile", Decimal("0.25"), "30/6", Decimal("0.05"), Decimal(0), None, "half_up:4", None),
        ("44", None, "UK", Decimal("0.0125"), "1/1", Decimal(0), Decimal(0), None, "down:4", None),
        (None,) * len(EXPLANATION),
        (None, "interstate", "Interstate", Decimal("0.04"), "6/6", Decimal(0), Decimal(0), Decimal("0.5"),
         "half_up:4", None),
    ]  # fmt: skip
    # the outcome columns keep the rated fact's order: the explanation sits where the fact has always had it
    outcome = rated.columns[rated.columns.index("agent_id") :]
    assert outcome[outcome.index("rate_card_id") + 1 : outcome.index("rounding_rule") + 1] == [
        "prefix", "rate_jurisdiction", "destination", "rate_per_unit", "unit_seconds", "billing_increment",
        "connect_fee", "minimum_charge", "maximum_charge", "rounding_rule",
    ]  # fmt: skip
    assert outcome[outcome.index("charged_units") + 1] == "rate_event_code"


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=7200), st.integers(min_value=0, max_value=600))
def test_a_longer_call_never_costs_less(billsec, extra):
    rated = rate(("ACC-1", "IL", "+447700900123", billsec), ("ACC-1", "IL", "+447700900123", billsec + extra))
    shorter, longer = rated["charge_amount"].to_list()
    assert longer >= shorter
    assert rated["billed_seconds"][0] >= billsec


def test_steps_inside_a_call_first_minute_then_per_second():
    # RC-D intrastate (IL → IL, other local area): from 0 s 0.10/min in 60/60, from 60 s 0.02/min in 1/1
    rated = rate(
        ("ACC-4", "IL", "+12175550123", 10),  # 60 s × 0.10 / 60 = 0.1000
        ("ACC-4", "IL", "+12175550123", 83),  # 60 × 0.10/60 + 23 × 0.02/60 = 0.1 + 0.0076666… → 0.1077
        ("ACC-4", "IL", "+12175550123", 120),  # 0.1 + 60 × 0.02/60 = 0.1200
    )
    assert rated["billed_seconds"].to_list() == [60, 83, 120]
    assert rated["charge_amount"].to_list() == [Decimal("0.1"), Decimal("0.1077"), Decimal("0.12")]
    assert rated["billing_increment"][0] == "from 0s 60/60 @ 0.100000; from 60s 1/1 @ 0.020000"
    # rounded once: the exact 0.107666666667 is shown beside the charge
    assert rated["unrounded_charge"][1] == Decimal("0.107666666667")


def test_maximum_charge_caps_a_call():
    # RC-D interstate: 6/6 at 0.04/min, at most 0.50: 600 s → 0.40; 900 s → 0.60 → capped at 0.50
    rated = rate(("ACC-4", "IL", "+12125550123", 600), ("ACC-4", "IL", "+12125550123", 900))
    assert rated["charge_amount"].to_list() == [Decimal("0.4"), Decimal("0.5")]
    assert rated["charge_limit"].to_list() == [None, "maximum"]


@pytest.mark.parametrize(
    ("charged", "called", "jurisdiction", "destination"),
    [
        ("+13125550100", "+17735550123", "local", "Local"),  # 312 and 773 are both Chicago
        ("+13125550100", "+12175550123", "intrastate", "Intrastate"),  # IL → IL, Springfield
        ("+13125550100", "+12125550123", "interstate", "Interstate"),  # IL → NY
        ("+12125550100", "+12129995555", "interstate", "Interstate"),  # 212-999 is NJ, not NY
        ("+13125550100", "+18005550123", "toll_free", "Toll-free"),
        ("+13125550100", "+19005550123", "premium", "Premium"),
        ("+13125550100", "411", "n11", "Service code"),
        ("+13125550100", "+18765550123", "international", "Rest of world"),  # NANP but Jamaica
        ("+13125550100", "+33142685300", "international", "Rest of world"),
        ("+13125550100", "+442079460000", "international", "UK"),  # a longer prefix beats the jurisdiction
        ("+13125550100", "+16175550123", None, "Anywhere else"),  # NPA not in npa_nxx: the explicit fallback
    ],
)
def test_jurisdiction_of_a_voice_call_and_rates_by_jurisdiction(charged, called, jurisdiction, destination):
    row = rate(("ACC-4", "IL", called, 60), charged=charged).row(0, named=True)
    assert (row["jurisdiction"], row["destination"]) == (jurisdiction, destination)


def test_jurisdiction_classified_once_per_number_compares_each_call_s_own_ends():
    # numbers are classified once (sql/jurisdiction.sql) and each call compares its own two ends: the same called
    # number from lines in two states, a charged number whose NPA is unknown (its state: the line's service
    # state), that number called itself, and a Chicago number called from it (no local area at the calling end)
    rated = rate(
        ("ACC-4", "IL", "+12175550123", 60),
        ("ACC-4", "NY", "+12175550123", 60),
        ("ACC-4", "IL", "+16175550100", 60),
        ("ACC-4", "IL", "+17735550123", 60),
        ("ACC-4", "NY", "+12125550123", 60),
        charged="+16175550100",
    )
    assert rated["jurisdiction"].to_list() == ["intrastate", "interstate", None, "intrastate", "intrastate"]
    # an SMS has no jurisdiction, whatever its numbers
    assert rate(("ACC-4", "IL", "+12175550123", 60), service="sms")["jurisdiction"].to_list() == [None]


def test_the_same_call_costs_differently_by_the_lines_state():
    # ACC-4, 120 s to +12125550123: an IL line → PB-JUR (RC-D interstate 0.04/min: 0.0800);
    # an NY line → PB-JUR-NY (plan+state, RC-A US 0.02/min 6/6: 0.0400); the state is the line's, not the call's
    rated = rate(("ACC-4", "IL", "+12125550123", 120), ("ACC-4", "NY", "+12125550123", 120))
    assert rated["price_book_id"].to_list() == ["PB-JUR", "PB-JUR-NY"]
    assert rated["price_book_level"].to_list() == ["plan", "plan+state"]
    assert rated["charge_amount"].to_list() == [Decimal("0.08"), Decimal("0.04")]


@settings(max_examples=20, deadline=None)
@given(st.from_regex(r"\A(1876|44|447|1|9)[0-9]{6,10}\Z", fullmatch=True))
def test_the_longest_matching_prefix_always_wins(digits):
    row = rate(("ACC-1", "IL", "+" + digits, 60)).row(0, named=True)
    prefixes = [r[1] for r in RATES if r[0] == "RC-A" and digits.startswith(r[1])]
    if prefixes:
        assert row["prefix"] == max(prefixes, key=len)
    else:
        assert row["rating_reason"] == "NO_RATE"


# Central time: CDT (UTC−5) until 2026-11-01 02:00, then CST (UTC−6); peak is 07:00–19:00 local on weekdays
@pytest.mark.parametrize(
    ("account", "state", "start_utc", "billsec", "bands", "charge"),
    [
        # Mon 2026-10-05 06:59 CDT, 120 s across 07:00: 60 s × 0.012/60 + 60 s × 0.06/60 = 0.012 + 0.06
        ("ACC-5", "IL", datetime(2026, 10, 5, 11, 59), 120, "offpeak 60s, peak 60s", "0.072"),
        # the same call on the start-band card: 120 s × 0.012/60 = 0.024
        ("ACC-6", "IL", datetime(2026, 10, 5, 11, 59), 120, "offpeak 120s", "0.024"),
        # Fri 2026-10-09 23:59:30 CDT, 60 s across midnight into Saturday: 30 × 0.012/60 + 30 × 0.006/60
        ("ACC-5", "IL", datetime(2026, 10, 10, 4, 59, 30), 60, "offpeak 30s, weekend 30s", "0.009"),
        # Mon 2026-11-02 06:59:30 CST (after the DST change peak starts at 13:00 UTC, not 12:00):
        # 30 × 0.012/60 + 30 × 0.06/60 = 0.006 + 0.03
        ("ACC-5", "IL", datetime(2026, 11, 2, 12, 59, 30), 60, "offpeak 30s, peak 30s", "0.036"),
        # Mon 2026-10-12 12:00 CDT is Columbus Day, a holiday in Illinois: weekend band 60 × 0.006/60
        ("ACC-5", "IL", datetime(2026, 10, 12, 17), 60, "weekend 60s", "0.006"),
        # … but not in Texas: peak 60 × 0.06/60
        ("ACC-5", "TX", datetime(2026, 10, 12, 17), 60, "peak 60s", "0.06"),
    ],
)
def test_time_bands_in_the_lines_local_time(account, state, start_utc, billsec, bands, charge):
    row = rate((account, state, "+12125550123", billsec, start_utc)).row(0, named=True)
    assert (row["time_bands"], row["charge_amount"]) == (bands, Decimal(charge))


@settings(max_examples=20, deadline=None)
@given(
    st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2026, 11, 28)),
    st.integers(min_value=1, max_value=86400),
)
def test_splitting_at_band_boundaries_conserves_billed_seconds(start_utc, billsec):
    start_utc = start_utc.replace(microsecond=0)
    split, start_band = rate(
        ("ACC-5", "IL", "+12125550123", billsec, start_utc),
        ("ACC-6", "IL", "+12125550123", billsec, start_utc),
    ).iter_rows(named=True)
    pieces = [int(piece.split()[1].rstrip("s")) for piece in split["time_bands"].split(", ")]
    assert sum(pieces) == split["billed_seconds"] == start_band["billed_seconds"] == billsec
    # per second at 0.006–0.06 a minute: the split charge lies between the cheapest and dearest band
    assert Decimal("0.0001") * billsec <= split["charge_amount"] <= Decimal("0.001") * billsec


@pytest.mark.parametrize(
    ("account", "service", "units", "sms_chars", "event_code", "billed_units", "charge"),
    [
        ("ACC-7", "sms", 1, 300, None, 1, "0.01"),  # per message: 300 characters are one message
        ("ACC-8", "sms", 1, 160, None, 1, "0.01"),  # per segment: up to 160 characters is one segment
        ("ACC-8", "sms", 1, 161, None, 2, "0.02"),  # 161 → ceil(161 / 153) = 2 segments
        ("ACC-8", "sms", 1, 307, None, 3, "0.03"),  # 307 → ceil(307 / 153) = 3 segments
        ("ACC-7", "mms", 2, None, None, 2, "0.50"),  # 2 messages × 0.25
        # data per session to the MB: 1,500,000 bytes → 2 MB = 2,097,152 bytes × 0.01 / 1,048,576 = 0.02
        ("ACC-7", "data", 1_500_000, None, None, 2_097_152, "0.02"),
        # to the KB: ceil(1,500,000 / 1024) = 1465 KB = 1,500,160 bytes × 0.01 / 1,048,576 = 0.01430… → 0.0143
        ("ACC-8", "data", 1_500_000, None, None, 1_500_160, "0.0143"),
        ("ACC-7", "vas", 1, None, "HOROSCOPE", 1, "0.99"),  # flat per event code
        ("ACC-7", "vas", 1, None, "TUNE", 1, "1.49"),
    ],
)
def test_services_are_priced_in_their_own_units(
    account, service, units, sms_chars, event_code, billed_units, charge
):
    called = None if service in ("data", "vas") else "+13125550111"
    row = rate(
        (account, "IL", called, 0), service=service, units=units, sms_chars=sms_chars, event_code=event_code
    ).row(0, named=True)
    assert row["rating_reason"] is None, row
    assert (row["billed_units"], row["charge_amount"], row["billed_seconds"]) == (
        billed_units,
        Decimal(charge),
        None,
    )


def test_an_unknown_event_code_has_no_rate_and_an_international_sms_its_own():
    assert (
        rate(("ACC-7", "IL", None, 0), service="vas", units=1, event_code="NOPE")["rating_reason"][0]
        == "NO_RATE"
    )
    sms_uk = rate(("ACC-7", "IL", "+447700900123", 0), service="sms", units=1, sms_chars=20)
    assert sms_uk["charge_amount"][0] == Decimal("0.05")


def test_an_allowance_is_consumed_in_call_order_and_the_crossing_call_is_split():
    # RC-C per second at 0.0125/min, half_even to 4; 100 s included. Given out of order, consumed by start:
    rated = rate(
        (
            "ACC-9",
            "IL",
            "+12125550123",
            30,
            datetime(2026, 10, 3, 12),
        ),  # 3rd: all 30 s charged: 0.00625 → 0.0062
        ("ACC-9", "IL", "+12125550123", 60, datetime(2026, 10, 1, 12)),  # 1st: 60 s included → 0
        (
            "ACC-9",
            "IL",
            "+12125550123",
            60,
            datetime(2026, 10, 2, 12),
        ),  # 2nd: 40 included, 20 × 0.0125/60 → 0.0042
        (
            "ACC-9",
            "IL",
            "+442079460000",
            60,
            datetime(2026, 10, 2, 13),
        ),  # international: not in the allowance
    )
    assert rated["included_units"].to_list() == [0, 60, 40, 0]
    assert rated["charged_units"].to_list() == [30, 0, 20, 60]
    assert rated["charge_amount"].to_list() == [
        Decimal("0.0062"),
        Decimal("0"),
        Decimal("0.0042"),
        Decimal("0.0125"),
    ]
    assert rated["allowance_id"].to_list() == ["AL-P7-VOICE"] * 3 + [None]


def test_an_allowance_is_prorated_for_a_partial_cycle():
    # activated 2026-10-16: 100 × 16 / 31 = 51.6… → 51 s (rounded down); a 60 s call: 51 included, 9 charged:
    # 9 × 0.0125 / 60 = 0.001875 → half_even to 4 → 0.0019
    row = rate(("ACC-10", "IL", "+12125550123", 60, datetime(2026, 10, 20, 12))).row(0, named=True)
    assert (row["included_units"], row["charged_units"], row["charge_amount"]) == (51, 9, Decimal("0.0019"))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=6))
def test_allowance_plus_charged_units_are_the_billed_units(durations):
    rated = rate(
        *[("ACC-9", "IL", "+12125550123", d, datetime(2026, 10, 1 + i, 12)) for i, d in enumerate(durations)]
    )
    assert (rated["included_units"] + rated["charged_units"] == rated["billed_units"]).all()
    assert rated["included_units"].sum() == min(100, sum(durations))


def test_graduated_and_volume_tiers_on_cycle_totals():
    # 15,000 MMS in the cycle (two events of 7,500) for each account:
    # graduated: 1,000 × 0.10 + 9,000 × 0.05 + 5,000 × 0.01 = 100 + 450 + 50 = 600.00
    # volume: the total reaches the 10,000 tier, so all 15,000 × 0.01 = 150.00
    events = [(account, "IL", "+13125550111", 0) for account in ("ACC-11", "ACC-12")]
    charges = rate(*events, service="mms", units=10000, tiers=True)
    assert charges["total_units"].to_list() == [10000, 10000]
    charges = rate(*events, *events[:1], *events[1:], service="mms", units=7500, tiers=True)
    assert charges.select("tier_id", "total_units", "charge_amount").rows() == [
        ("T-GRAD", 15000, Decimal("600.00")),
        ("T-VOL", 15000, Decimal("150.00")),
    ]
    assert charges["tier_breakdown"][0] == "1000 × 0.100000 + 9000 × 0.050000 + 5000 × 0.010000"


def test_roaming_pays_the_visited_zones_surcharge():
    # RC-A US 0.02/min 6/6, abroad in MX (zone NA, RC-A surcharge 0.10/min): 60 × 0.02/60 + 60 × 0.10/60 = 0.12
    row = rate(("ACC-1", "IL", "+12125550199", 60), visited_country="MX").row(0, named=True)
    assert (row["charge_amount"], row["roaming_zone"], row["roaming_surcharge"]) == (
        Decimal("0.12"), "NA", Decimal("0.1")
    )  # fmt: skip
    # a country in no zone of the card: suspense, not a silent home price
    assert (
        rate(("ACC-1", "IL", "+12125550199", 60), visited_country="JP")["rating_reason"][0]
        == "NO_ROAMING_RATE"
    )


def test_rating_in_account_slices_gives_the_same_outcomes():
    # a large cycle is rated in account slices (bounded memory); allowances are per account, so slices of
    # 2 events (here 4 slices, accounts hashed apart) must give exactly the one-pass result, suspense included
    events = [
        ("ACC-9", "IL", "+12125550123", 30, datetime(2026, 10, 3, 12)),
        ("ACC-9", "IL", "+12125550123", 60, datetime(2026, 10, 1, 12)),
        ("ACC-9", "IL", "+12125550123", 60, datetime(2026, 10, 2, 12)),
        ("ACC-9", "IL", "+442079460000", 60, datetime(2026, 10, 2, 13)),
        ("ACC-10", "IL", "+12125550123", 60, datetime(2026, 10, 20, 12)),
        ("ACC-1", "IL", "+447700900123", 31, datetime(2026, 10, 5, 12)),
        ("ACC-1", "IL", "+18765550123", 83, datetime(2026, 10, 5, 13)),
        ("ACC-UNKNOWN", "IL", "+12125550199", 8, datetime(2026, 10, 5, 14)),
    ]
    whole = rate(*events)
    sliced = rate(*events, slice_events=2)
    assert sliced.columns == whole.columns
    assert sliced.to_dicts() == whole.to_dicts()
    assert whole["included_units"].to_list()[:3] == [0, 60, 40]  # the allowance still runs in call order


def test_the_reasons_of_events_unpriced_in_several_slices_are_found_after_the_last_slice():
    # the events a slice cannot price are kept and rated for their reasons after the last slice, themselves in
    # slices when more than a slice's size fail (here 7 of 10 events with slices of 2: 5 pricing passes, then 4
    # reason passes): each event keeps its own reason, the priced ones their charge, as in one pass
    events = [
        ("ACC-1", "IL", "+33142685300", 60),  # no prefix for France in RC-A
        ("ACC-1", "IL", "+447700900123", 31),  # priced: 0.20
        ("ACC-3", "IL", "+12125550123", 60),  # plan P9 has no price book
        ("ACC-5", "ZZ", "+12125550123", 60),  # RC-E is banded and ZZ has no time zone
        ("ACC-9", "IL", "+33142685300", 60),  # no prefix for France in RC-C
        ("ACC-UNKNOWN", "IL", "+12125550199", 8),  # an account unknown to rating
        ("ACC-4", "IL", "+12125550123", 600),  # priced: RC-D interstate 0.40
        ("ACC-2", "TX", "+33142685300", 60),  # no prefix for France in RC-C
        ("ACC-3", "TX", "+442079460000", 60),  # plan P9 has no price book
        ("ACC-9", "IL", "+12125550123", 60),  # priced, inside the allowance: 0
    ]
    whole = rate(*events)
    sliced = rate(*events, slice_events=2)
    assert sliced.to_dicts() == whole.to_dicts()
    assert sliced["rating_reason"].to_list() == [
        "NO_RATE", None, "NO_PRICE_BOOK", "NO_BAND", "NO_RATE", "NO_PRICE_BOOK", None, "NO_RATE", "NO_PRICE_BOOK",
        None,
    ]  # fmt: skip
    assert sliced["charge_amount"].to_list() == [
        None, Decimal("0.2"), None, None, None, None, Decimal("0.4"), None, None, Decimal(0)
    ]  # fmt: skip


CALLED = ["+12125550123", "+12125550199", "+442079460000", "+447700900123", "+18765550123", "+13125550111"]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ACC-1", "ACC-2", "ACC-4", "ACC-5", "ACC-6", "ACC-9", "ACC-10", "ACC-UNKNOWN"]),
            st.sampled_from(["IL", "TX", "NY"]),
            st.sampled_from(CALLED),
            st.integers(min_value=0, max_value=7200),
            # October and November 2026: the DST change (Nov 1), Columbus Day, weekends, midnights
            st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2026, 11, 28)),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([None, "MX", "JP"]),
)
def test_the_rating_plan_does_not_change_the_outcomes(events, visited_country):
    # the rating passes run without DuckDB's build-side optimizer (the joins build on the side written second);
    # DuckDB's own choice of build sides must price every event alike: bands split at boundaries or at the
    # start, steps, allowances, roaming, suspense
    events = [(*event[:4], event[4].replace(microsecond=0)) for event in events]
    ours = rate(*events, visited_country=visited_country)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rating, "RATING_DISABLED_OPTIMIZERS", "")
        duckdbs = rate(*events, visited_country=visited_country)
    assert ours.columns == duckdbs.columns
    assert ours.to_dicts() == duckdbs.to_dicts()


ROUNDINGS = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "up": ROUND_UP, "down": ROUND_DOWN}
BOUND = rating.BIGINT_NUMERATOR_BOUND
MICROS_BELOW = 10**12


@st.composite
def big_calls(draw: st.DrawFn) -> dict:
    """One card's terms and a call whose charge numerator (micro-units × the rate's unit) is anywhere, or within a
    few units of the BIGINT bound on either side."""
    unit = draw(st.sampled_from([1, 60, 1048576]))
    first, increment = draw(st.sampled_from([(1, 1), (60, 60), (30, 6)]))
    fee = draw(st.integers(min_value=0, max_value=10**9))
    billsec = draw(st.integers(min_value=0, max_value=10**6))
    billed = 0 if billsec <= 0 else max(first, first + -(-(billsec - first) // increment) * increment)
    # amounts below 10^6 a unit (the reference's decimal(18, 6) in micro-units stays inside decimal(18, 0))
    rate_micros = draw(st.integers(min_value=0, max_value=MICROS_BELOW - 1))
    if draw(st.booleans()) and billed and fee * unit < BOUND:
        # aim the numerator at the bound: fee × unit + billed × rate within ±2 of it
        aimed = (BOUND - fee * unit) // billed + draw(st.integers(min_value=-2, max_value=2))
        rate_micros = aimed if 0 <= aimed < MICROS_BELOW else rate_micros
    return {
        "unit": unit, "first": first, "increment": increment, "fee": fee, "billsec": billsec, "billed": billed,
        "rate": rate_micros, "minimum": draw(st.integers(min_value=0, max_value=10**8)),
        "maximum": draw(st.none() | st.integers(min_value=10**8, max_value=MICROS_BELOW - 1)),
        "method": draw(st.sampled_from(sorted(ROUNDINGS))), "decimals": draw(st.integers(min_value=0, max_value=6)),
        "abroad": draw(st.booleans()),
    }  # fmt: skip


def expected_charge(call: dict) -> tuple[Decimal, Decimal, str | None]:
    """The charge of one call by the rules, in Python's exact Decimal: (charge, unrounded charge, limit applied)."""
    surcharge = 100_000 if call["abroad"] else 0  # RC-A's roaming surcharge in zone NA: 0.10 per unit
    numerator = call["fee"] * call["unit"] + call["billed"] * (call["rate"] + surcharge)
    quantum = 10 ** (6 - call["decimals"])
    rounded = (Decimal(numerator) / (call["unit"] * quantum)).quantize(Decimal(1), ROUNDINGS[call["method"]])
    rounded *= quantum
    cap = rounded if call["maximum"] is None else Decimal(call["maximum"])
    charge = Decimal(max(min(rounded, cap), call["minimum"]))
    limit = "minimum" if charge > rounded else "maximum" if charge < rounded else None
    unrounded = (Decimal(numerator) * 10**6 / call["unit"]).quantize(Decimal(1), ROUND_HALF_EVEN)
    return charge.scaleb(-6), unrounded.scaleb(-12), limit


@settings(max_examples=40, deadline=None)
@given(big_calls())
# an everyday call (BIGINT, a remainder to round); the numerator 2 + 5 × 922,337,203,685 is the bound itself (BIGINT), one more takes the HUGEINT path
@example({"unit": 60, "first": 30, "increment": 6, "fee": 50000, "billsec": 83, "billed": 84, "rate": 12345,
          "minimum": 0, "maximum": None, "method": "half_up", "decimals": 4, "abroad": True})  # fmt: skip
@example({"unit": 1, "first": 1, "increment": 1, "fee": 2, "billsec": 5, "billed": 5, "rate": BOUND // 5,
          "minimum": 0, "maximum": None, "method": "half_even", "decimals": 6, "abroad": False})  # fmt: skip
@example({"unit": 1, "first": 1, "increment": 1, "fee": 3, "billsec": 5, "billed": 5, "rate": BOUND // 5,
          "minimum": 0, "maximum": 10**9, "method": "up", "decimals": 2, "abroad": False})  # fmt: skip
def test_bigint_money_prices_like_hugeint_near_the_64_bit_bound(call):
    # the charge is divided in BIGINT when its numerator fits (pipeline/rating.BIGINT_NUMERATOR_BOUND), in HUGEINT
    # above: a call on either side of the bound costs what Python's exact Decimal says, and what the HUGEINT path
    # alone (no numerator fits) gives — every rounding method and decimals, connect fee, minimum, maximum, roaming
    charge, unrounded, limit = expected_charge(call)
    assume(charge < 10**12)  # a charge must fit the rated fact's decimal(18, 6)
    card = [("RC-A", None, "Anywhere", str(Decimal(call["rate"]).scaleb(-6)), call["unit"], call["first"],
             call["increment"], str(Decimal(call["fee"]).scaleb(-6)), str(Decimal(call["minimum"]).scaleb(-6)),
             call["method"], call["decimals"], None, 0,
             None if call["maximum"] is None else str(Decimal(call["maximum"]).scaleb(-6)), None, None)]  # fmt: skip
    event = ("ACC-1", "IL", "+12125550199", call["billsec"])
    abroad = "MX" if call["abroad"] else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(globals(), "RATES", [r for r in RATES if r[0] != "RC-A"] + card)
        ours = rate(event, visited_country=abroad)
        patch.setattr(rating, "BIGINT_NUMERATOR_BOUND", -1)  # every numerator on the HUGEINT path
        hugeint = rate(event, visited_country=abroad)
    assert ours.to_dicts() == hugeint.to_dicts()
    row = ours.row(0, named=True)
    assert row["billed_units"] == call["billed"]
    assert (row["charge_amount"], row["unrounded_charge"], row["charge_limit"]) == (charge, unrounded, limit)
