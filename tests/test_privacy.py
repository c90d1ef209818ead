"""Personal data stays private: no tax id / SSN of the sample accounts anywhere the sample cycle writes (lake,
state, warehouse, documents, e-mails, print files, Dagster metadata), and the folders holding personal data are
the owner's alone."""

import stat
from pathlib import Path

import polars as pl
import pytest

from pipeline.home import SAMPLE_DIR

pytestmark = pytest.mark.slow


def _tax_ids() -> list[str]:
    ids = pl.read_csv(SAMPLE_DIR / "reference" / "accounts.csv", infer_schema=False)["tax_id"].drop_nulls()
    assert ids.len() >= 40  # the scan below means something only if the sample has them
    return ids.to_list()


def _outputs(root: Path) -> list[Path]:
    """Every file the cycle wrote; the reference folder (the input that holds tax ids) and the raw usage files
    are the only places they may live."""
    inputs = {root / "reference", root / "landing", root / "archive", root / "quarantine"}
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not any(parent in inputs for parent in path.parents)
    ]


def test_no_tax_id_in_any_output_or_metadata(sample_cycle):
    home, result = sample_cycle
    tax_ids = [t.encode() for t in _tax_ids()]
    digits_only = [t.replace(b"-", b"") for t in tax_ids]
    files = _outputs(home.root)
    kinds = {path.suffix for path in files}
    assert {".parquet", ".pdf", ".duckdb"} <= kinds, kinds  # the scan covers lake, documents and databases
    leaks = [
        (str(path.relative_to(home.root)), needle.decode())
        for path in files
        for data in [path.read_bytes()]
        for needle in tax_ids + digits_only
        if needle in data
    ]
    assert leaks == []
    events = "\n".join(str(event) for event in result.all_events)
    assert not [t for t in _tax_ids() if t in events or t.replace("-", "") in events]


def test_personal_data_is_owner_only(sample_cycle):
    home, _ = sample_cycle
    for folder in (home.root, home.documents, home.outbox, home.print_dir, home.lake, home.archive):
        mode = stat.S_IMODE(folder.stat().st_mode)
        assert mode & 0o077 == 0, f"{folder} is {oct(mode)}"
    assert stat.S_IMODE(home.state_db.stat().st_mode) == 0o600
