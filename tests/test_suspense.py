"""The suspense reason catalogue is complete and documented, and suspense is summarised by reason and age."""

import re
from datetime import date
from pathlib import Path

import polars as pl

from pipeline import late_usage, normalise
from pipeline.suspense import QUARANTINE_REASONS, catalogue, suspense_by_reason_and_age

DOCS = Path(__file__).resolve().parents[1] / "docs" / "suspense.md"


def test_every_reason_the_code_sets_is_in_the_catalogue_and_the_docs():
    codes = set(catalogue()["code"])
    set_by_code = {
        normalise.BAD_TIMESTAMP, normalise.BAD_DURATION, normalise.NEGATIVE_DURATION, normalise.ABSURD_DURATION,
        normalise.FUTURE_CALL, normalise.OUTSIDE_BILLING_WINDOW, normalise.DAMAGED_NUMBER,
        normalise.BAD_CHARGED_NUMBER, normalise.BAD_CALLED_NUMBER, normalise.UNKNOWN_SERVICE_TYPE, "UNPARSEABLE", "BAD_RECORD_LENGTH",
        "UNKNOWN_RECORD_TYPE", "UNKNOWN_SUBSCRIBER", "NOT_IN_SERVICE", "NO_PRICE_BOOK", "NO_RATE",
        late_usage.LATE_USAGE_TOO_OLD,
    }  # fmt: skip
    assert set_by_code == codes
    documented = re.findall(r"^\| `([A-Z_]+)` \|", DOCS.read_text(), flags=re.MULTILINE)
    assert documented == [*catalogue()["code"], *(code for code, _, _ in QUARANTINE_REASONS)]
    assert catalogue().filter(pl.col("fix").str.len_chars() == 0).height == 0


def test_suspense_by_reason_and_age():
    suspended = pl.DataFrame(
        {
            "reason": ["UNKNOWN_SUBSCRIBER"] * 3 + ["BAD_TIMESTAMP"],
            "call_date": [date(2026, 11, 20), date(2026, 10, 1), date(2026, 7, 1), None],
        }
    )
    summary = suspense_by_reason_and_age(suspended, today=date(2026, 11, 26))
    # ages: 6 days, 56 days, 148 days; the bad timestamp has no date
    assert summary.rows() == [
        ("UNKNOWN_SUBSCRIBER", 3, date(2026, 7, 1), 1, 1, 0, 1, 0),
        ("BAD_TIMESTAMP", 1, None, 0, 0, 0, 0, 1),
    ]
