"""Reference data is validated before anything is rated; errors name the file, the row and the fix."""

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


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_sample_reference_loads(reference_dir):
    reference = load_reference(reference_dir)
    assert reference.accounts.height == 50
    assert str(reference.plans.schema["monthly_charge"]).startswith("Decimal")


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("plans.csv", "19.99", "19.99x", r"plans.csv, row 2: monthly_charge='19.99x'"),
        ("accounts.csv", "2025-03-01", "2025-02-30", r"accounts.csv, row 2: activated_on"),
        (
            "accounts.csv",
            ",AG-01,RES-BASIC,",
            ",AG-99,RES-BASIC,",
            r"accounts.csv, row 2: agent_id='AG-99' is not in agents.csv",
        ),
        (
            "accounts.csv",
            "Chicago,IL,60608,IL",
            "Chicago,XX,60608,IL",
            r"billing_state='XX' is not a two-letter US state",
        ),
        (
            "rate_cards.csv",
            "RC-STD,1876,",
            "RC-STD,1,",
            r"rate_cards.csv, row \d+: duplicate key \('RC-STD', '1', None",
        ),
        ("plans.csv", "RES-PLUS,", "RES-BASIC,", r"plans.csv, row 3: duplicate key"),
    ],
)
def test_bad_rows_are_named(reference_dir, file, old, new, message):
    edit(reference_dir / file, old, new)
    with pytest.raises(ReferenceDataError, match=message) as error:
        load_reference(reference_dir)
    assert "Fix:" in str(error.value)


def test_overlapping_number_periods_are_refused(reference_dir):
    path = reference_dir / "service_numbers.csv"
    with path.open("a") as f:
        f.write("+13125550100,ACC-0002,IL,2026-01-01,\n")
    with pytest.raises(ReferenceDataError, match="overlapping validity periods"):
        load_reference(reference_dir)


def test_a_missing_table_says_which(reference_dir):
    (reference_dir / "taxes.csv").unlink()
    with pytest.raises(ReferenceDataError, match="taxes.csv: file is missing"):
        load_reference(reference_dir)


def test_accounts_plans_and_price_books_agree_on_the_currency(reference_dir):
    # a price book file without the (later, optional) currency column still loads: its plan's currency
    assert load_reference(reference_dir).price_books["currency"].null_count() == load_reference(
        reference_dir
    ).price_books.height
    edit(reference_dir / "accounts.csv", "RES-BASIC,USD,es", "RES-BASIC,XYZ,es")
    with pytest.raises(ReferenceDataError, match=r"accounts.csv, row 2: currency='XYZ' is not an ISO 4217"):
        load_reference(reference_dir)
    edit(reference_dir / "accounts.csv", "RES-BASIC,XYZ,es", "RES-BASIC,JPY,es")
    with pytest.raises(ReferenceDataError, match=r"plans.csv, row 2: plan RES-BASIC is priced in USD but account "
                                                 r"ACC-0001 on it is billed in JPY"):  # fmt: skip
        load_reference(reference_dir)
    edit(reference_dir / "accounts.csv", "RES-BASIC,JPY,es", "RES-BASIC,USD,es")
    books = reference_dir / "price_books.csv"
    lines = books.read_text().splitlines()
    books.write_text("\n".join([lines[0] + ",currency", lines[1] + ",CAD", *(f"{x}," for x in lines[2:])]) + "\n")
    with pytest.raises(ReferenceDataError, match=r"price_books.csv, row 2: price book PB-RES-STD is priced in CAD "
                                                 r"but account ACC-\d+ using it \(plan RES-BASIC\)"):  # fmt: skip
        load_reference(reference_dir)
    books.write_text(books.read_text().replace(",CAD\n", ",USD\n", 1))
    assert load_reference(reference_dir).price_books["currency"].to_list()[0] == "USD"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("411,vas,DA,\n411,vas,DA2,\n", r"service_codes.csv, row 3"),  # one code, one event
        ("411,voice,DA,\n", r"service_codes.csv, row 2: service='voice'"),
        ("411,vas,,\n", r"service_codes.csv, row 2: event_code"),
    ],
)
def test_service_codes_are_optional_and_checked(reference_dir, rows, message):
    assert load_reference(reference_dir).tables()["service_codes"]["called_number"].to_list() == ["411", "*69"]
    (reference_dir / "service_codes.csv").unlink()
    assert load_reference(reference_dir).tables()["service_codes"].height == 0  # absent: every call is voice
    (reference_dir / "service_codes.csv").write_text("called_number,service,event_code,description\n" + rows)
    with pytest.raises(ReferenceDataError, match=message):
        load_reference(reference_dir)
