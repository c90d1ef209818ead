"""Helpers for delivery tests: copy the waiting sample cycle (conftest ``waiting_cycle``), approve and deliver it."""

import shutil
from pathlib import Path

import dagster as dg
from conftest import SAMPLE_CYCLE

from pipeline.home import Home


def copy_home(home: Home, root: Path) -> Home:
    """An independent copy of a home (ledgers, lake, documents) to deliver in one test. The lake's partitions
    are absolute symlinks into ``lake/.versions``: they are pointed at the copy, never at the original."""
    shutil.copytree(home.root, root, symlinks=True)
    old = str(home.root)
    for link in [p for p in root.rglob("*") if p.is_symlink()]:
        target = str(link.readlink())
        if target.startswith(old + "/"):
            link.unlink()
            link.symlink_to(str(root) + target[len(old) :])
    return Home(root)


def deliver(
    home: Home, approved_by: str = "tests", cycle: str = SAMPLE_CYCLE, as_of: str = ""
) -> dg.ExecuteInProcessResult:
    """Run the ``approve_cycle`` job's assets (approval, then every delivery) through Dagster; ``as_of`` is the
    day payment reminders are decided for (default: the cycle's issue date)."""
    from assets.cli import approval_run_config
    from assets.definitions import defs
    from assets.resources import CdrbillHome

    return dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=dg.AssetSelection.assets("cycle_approval").downstream(),
        partition_key=cycle,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
        run_config={
            "ops": {
                **approval_run_config(approved_by).get("ops", {}),
                "payment_reminders": {"config": {"as_of": as_of}},
            }
        },
        raise_on_error=False,
    )


def asset_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata values of an asset's materialisation in a run."""
    [event] = result.asset_materializations_for_node(asset)
    return {key: getattr(value, "value", value) for key, value in event.metadata.items()}
