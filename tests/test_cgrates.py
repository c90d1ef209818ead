"""Importing a small CGRateS v0.10 tariff plan (tests/data/cgrates) into our reference tables, then rating with
our exact semantics: rounded once per call (docs/cgrates.md says where CGRateS differs)."""

import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.cgrates import import_tariff_plan, main
from pipeline.home import SAMPLE_DIR
from pipeline.quote import QuoteRequest, quote
from pipeline.reference import ReferenceDataError, load_reference

PLAN = Path(__file__).parent / "data" / "cgrates"


@pytest.fixture
def imported(tmp_path):
    """The sample reference with the tariff plan imported for RES-PLUS (ACC-0005), validated by the loader."""
    reference = tmp_path / "reference"
    shutil.copytree(SAMPLE_DIR / "reference", reference)
    assert main([str(PLAN), str(reference), "--plan", "RES-PLUS"]) == 0
    return load_reference(reference)


@pytest.mark.parametrize(
    ("called", "start", "seconds", "service", "charge", "bands"),
    [
        # Mon 07:59:29 CDT, 62 s across 08:00 (OFFPEAK_MORNING → PEAK, split):
        # 31 × 0.007/60 + 31 × 0.0125/60 = 0.0036166… + 0.0064583… = 0.010075 → *up to 4 → 0.0101
        (
            "+12125550123",
            datetime(2026, 10, 5, 7, 59, 29),
            62,
            "voice",
            "0.0101",
            "OFFPEAK_MORNING 31s, PEAK 31s",
        ),
        # the UK rows have no timing of their own (*any): the same rate in every band
        # UK mobile: 60 s at 0.25/min, then 1 s increments at 0.005/s (= 0.30/min): 0.25 + 30 × 0.3/60 + 0.05
        ("+447700900123", datetime(2026, 10, 5, 12), 90, "voice", "0.45", "PEAK 90s"),
        # UK fixed: 30 s then 6 s slots (30/6): 31 s → 36 s × 0.09/60 = 0.054 + 0.05 connect
        ("+442079460000", datetime(2026, 10, 5, 12), 31, "voice", "0.104", "PEAK 36s"),
        ("+442079460000", datetime(2026, 10, 5, 12), 1, "sms", "0.01", None),  # RP_SMS: 0.01 per message
    ],
)
def test_an_imported_plan_rates_with_exact_decimals(imported, called, start, seconds, service, charge, bands):
    fields = quote(
        imported, QuoteRequest(called, start, seconds, service=service, account_id="ACC-0005", state="IL")
    )
    assert Decimal(fields["charge"]) == Decimal(charge)
    assert fields.get("time bands") == bands
    assert fields["price book"].startswith("PB-RES-PLUS-RP_")


def test_what_our_model_cannot_express_is_refused(tmp_path):
    plan = tmp_path / "plan"
    shutil.copytree(PLAN, plan)
    timings = plan / "Timings.csv"
    timings.write_text(timings.read_text() + "XMAS,*any,12,25,*any,00:00:00\n")
    with pytest.raises(ReferenceDataError, match=r"Timings.csv, row 6: timing XMAS names dates"):
        import_tariff_plan(plan, "RES-PLUS")
