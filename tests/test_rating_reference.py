"""Rating reference data is refused at load when it cannot price unambiguously: two equally specific price
books, steps without a start, steps that end between increments, steps that disagree about the destination."""

import shutil
from pathlib import Path

import pytest

from pipeline.home import SAMPLE_DIR
from pipeline.reference import ReferenceDataError, load_reference


@pytest.fixture
def reference_dir(tmp_path: Path) -> Path:
    target = tmp_path / "reference"
    shutil.copytree(SAMPLE_DIR / "reference", target)
    return target


def append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")


def test_two_equally_specific_price_books_are_refused(reference_dir):
    # PB-BIZ-NY is (any agent, BIZ-PRO, NY, any service) from 2026-01-01; a second book of that scope overlaps
    append(reference_dir / "price_books.csv", "PB-BIZ-NY-2,,BIZ-PRO,NY,,RC-BIZ,2026-06-01,")
    with pytest.raises(
        ReferenceDataError, match=r"price_books.csv, row 7: price book PB-BIZ-NY-2 .* PB-BIZ-NY"
    ):
        load_reference(reference_dir)


def test_consecutive_or_narrower_price_books_are_accepted(reference_dir):
    append(reference_dir / "price_books.csv", "PB-BIZ-NY-VOICE,,BIZ-PRO,NY,voice,RC-BIZ,2026-01-01,")
    append(reference_dir / "price_books.csv", "PB-PLUS-2027,,RES-PLUS,,,RC-BIZ,2027-01-01,")
    text = (reference_dir / "price_books.csv").read_text()
    (reference_dir / "price_books.csv").write_text(
        text.replace(
            "PB-PLUS-STD,,RES-PLUS,,,RC-STD,2026-01-01,",
            "PB-PLUS-STD,,RES-PLUS,,,RC-STD,2026-01-01,2027-01-01",
        )
    )
    assert load_reference(reference_dir).price_books.height == 7


@pytest.mark.parametrize(
    ("row", "message"),
    [
        # a step from 60 s for a destination with no step from 0
        ("RC-STD,,premium,60,Premium,1.0000,60,60,60,0.0000,0.0000,,half_up,4,,", "no step from second 0"),
        # UK 30/6 from 0, next step from 40: 40 − 30 = 10 is not whole 6 s increments
        (
            "RC-STD,44,,40,United Kingdom,0.0500,60,30,6,0.0500,0.0000,,half_up,4,,",
            "step ends before its increments",
        ),
        # a step with another connect fee than the destination's first step
        (
            "RC-STD,44,,60,United Kingdom,0.0500,60,30,6,0.0900,0.0000,,half_up,4,,",
            "steps of one destination differ",
        ),
    ],
)
def test_bad_rate_steps_are_refused(reference_dir, row, message):
    append(reference_dir / "rate_cards.csv", row)
    with pytest.raises(ReferenceDataError, match=rf"rate_cards.csv, row \d+: .*{message}") as error:
        load_reference(reference_dir)
    assert "Fix:" in str(error.value)


def test_time_bands_must_cover_the_day(reference_dir):
    path = reference_dir / "time_bands.csv"
    path.write_text(
        path.read_text().replace("US-PEAK,weekday,07:00,19:00,peak", "US-PEAK,weekday,07:00,18:00,peak")
    )
    with pytest.raises(
        ReferenceDataError, match=r"time_bands.csv, row \d+: band set US-PEAK \(weekday\) has a gap"
    ):
        load_reference(reference_dir)


def test_a_rate_for_a_band_the_card_does_not_have_is_refused(reference_dir):
    append(
        reference_dir / "rate_cards.csv",
        "RC-STD,1,,0,United States & Canada,0.0100,60,6,6,0.0000,0.0000,,half_up,4,night,",
    )
    with pytest.raises(ReferenceDataError, match=r"time_band='night' is not a band of rate card RC-STD"):
        load_reference(reference_dir)
