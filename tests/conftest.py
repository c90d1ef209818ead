"""Shared fixtures: a home directory holding the sample month, and one real run of the sample cycle."""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipeline.home import SAMPLE_DIR, Home

SAMPLE_CYCLE = "2026-10"


def _shared_samples() -> Path:
    """The real public switch files used as fixtures (not redistributed with cdrbill): $CDRBILL_SAMPLES, else the
    workplace's shared folder beside the checkout, else /work/shared/samples."""
    candidates = [Path(p) for p in [os.environ.get("CDRBILL_SAMPLES", "")] if p] + [
        Path(__file__).resolve().parents[2] / "shared" / "samples",
        Path("/work/shared/samples"),
    ]
    return next((path for path in candidates if path.is_dir()), candidates[-1])


SHARED_SAMPLES = _shared_samples()


def stage_sample(root: Path) -> Home:
    """A fresh home with the sample reference data and landing files."""
    home = Home(root).ensure()
    shutil.copytree(SAMPLE_DIR / "reference", home.reference, dirs_exist_ok=True)
    shutil.copytree(SAMPLE_DIR / "landing", home.landing, dirs_exist_ok=True)
    return home


def materialize_cycle(
    home: Home, cycle: str = SAMPLE_CYCLE, approved_by: str | None = "tests"
) -> dg.ExecuteInProcessResult:
    """Materialise every asset of the flow (with its checks) for one cycle, through Dagster itself. The one way
    tests approve delivery: ``approved_by`` (the asset ``cycle_approval``'s run config) approves the cycle in
    the same run once its blocking checks pass; None leaves it waiting at the gate, as the schedule does."""
    from assets.cli import approval_run_config
    from assets.definitions import defs
    from assets.resources import CdrbillHome

    assets = list(defs.assets or [])
    return dg.materialize(
        assets,  # type: ignore[arg-type]
        partition_key=cycle,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
        raise_on_error=False,
        run_config=approval_run_config(approved_by),
    )


@pytest.fixture
def sample_home(tmp_path: Path) -> Home:
    return stage_sample(tmp_path / "home")


@pytest.fixture(scope="session")
def sample_cycle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, dg.ExecuteInProcessResult]:
    """The sample cycle materialised once for all end-to-end tests (they only read it, or republish the
    warehouse from it, which gives the same tables)."""
    home = stage_sample(tmp_path_factory.mktemp("cycle") / "home")
    result = materialize_cycle(home)
    return home, result


@pytest.fixture(scope="session")
def waiting_cycle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, dg.ExecuteInProcessResult]:
    """The sample cycle billed and rendered but not approved: nothing delivered (as the schedule leaves it).
    Tests copy its home (delivery_fixtures.copy_home) before delivering."""
    home = stage_sample(tmp_path_factory.mktemp("waiting") / "home")
    result = materialize_cycle(home, approved_by=None)
    assert result.success
    return home, result
