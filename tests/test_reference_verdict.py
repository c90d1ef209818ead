"""Intake's whole-reference check remembered per reference content (``pipeline.reference_verdict``): a broken
table is still caught after a cached good run, whichever file changed."""

from pathlib import Path

import dagster as dg
import pytest

from pipeline.reference import ReferenceDataError, load_reference
from pipeline.reference_verdict import (
    VERDICT_FILE,
    checked_reference,
    checked_usage_reference,
    reference_digest,
)
from pipeline.sources import SourceConfigError
from tests.conftest import SAMPLE_CYCLE, stage_sample
from tests.test_reference_broken import drop_line


def test_a_good_check_is_remembered_and_gives_the_same_sources(tmp_path: Path):
    home = stage_sample(tmp_path / "home")
    verdict = home.root / VERDICT_FILE
    first = checked_usage_reference(home.reference, verdict)
    assert verdict.read_text().strip() == reference_digest(home.reference)
    second = checked_usage_reference(home.reference, verdict)
    assert second.sources.equals(first.sources)
    assert second.sources.equals(load_reference(home.reference).sources)


@pytest.mark.parametrize("edit", ["price_books", "adjustments", "sources"])
def test_a_broken_table_is_caught_after_a_cached_good_run(tmp_path: Path, edit: str):
    home = stage_sample(tmp_path / "home")
    verdict = home.root / VERDICT_FILE
    checked_usage_reference(home.reference, verdict)
    good = verdict.read_text()
    if edit == "price_books":  # a table intake itself never reads
        drop_line("price_books.csv", "PB-RES-STD,")(home.reference)
    elif edit == "adjustments":  # a bill-run table: an adjustment of an unknown account
        with (home.reference / "adjustments.csv").open("a") as f:
            f.write("ADJ-9999,NO-SUCH-ACCOUNT,credit,1.00,test,tests,2026-10-20\n")
    else:  # the source's own settings: a file under sources/
        path = next((home.reference / "sources").glob("*.toml"))
        path.write_text(path.read_text() + "\nno_such_setting = 1\n")
    with pytest.raises((ReferenceDataError, SourceConfigError)):
        checked_usage_reference(home.reference, verdict)
    assert verdict.read_text() == good  # only a good check is remembered


def test_the_remembered_verdict_is_what_skips_the_check(tmp_path: Path):
    """A verdict naming this very content is trusted (the check is skipped); any other digest is not."""
    home = stage_sample(tmp_path / "home")
    verdict = home.root / VERDICT_FILE
    drop_line("price_books.csv", "PB-RES-STD,")(home.reference)
    verdict.write_text("0" * 64 + "\n")
    with pytest.raises(ReferenceDataError):
        checked_usage_reference(home.reference, verdict)
    verdict.write_text(reference_digest(home.reference) + "\n")
    assert checked_usage_reference(home.reference, verdict).sources.height > 0


def test_the_later_stages_read_every_table_and_check_only_new_content(tmp_path: Path):
    """After a good check the stages after intake get every table, equal to a checked load; a broken table
    (content the verdict does not name) is checked again and stops them."""
    home = stage_sample(tmp_path / "home")
    verdict = home.root / VERDICT_FILE
    checked = load_reference(home.reference).tables()
    first = checked_reference(home.reference, verdict)  # no verdict yet: the whole check, then remembered
    assert verdict.read_text().strip() == reference_digest(home.reference)
    read = checked_reference(home.reference, verdict).tables()
    assert read.keys() == checked.keys() == first.tables().keys()
    assert all(read[name].equals(checked[name]) for name in checked)
    drop_line("price_books.csv", "PB-RES-STD,")(home.reference)
    with pytest.raises(ReferenceDataError, match="no price book"):
        checked_reference(home.reference, verdict)


def test_the_dagster_run_still_stops_at_its_first_asset_after_a_cached_good_run(tmp_path: Path):
    from assets.mediation import usage_files
    from assets.resources import CdrbillHome

    home = stage_sample(tmp_path / "home")

    def run() -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [usage_files],
            partition_key=SAMPLE_CYCLE,
            resources={"cdrbill": CdrbillHome(root=str(home.root))},
            raise_on_error=False,
        )

    assert run().success
    assert (home.root / VERDICT_FILE).exists()
    drop_line("price_books.csv", "PB-RES-STD,")(home.reference)
    result = run()
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["usage_files"]
    assert "plan RES-BASIC has no price book" in str(failures[0].step_failure_data.error)
