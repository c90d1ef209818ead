"""The cdrbill home as a Dagster resource: where every stage finds its inputs, ledgers and outputs. A run holds
the home's lock from its start to its end (a second run of any cycle waits), and on start it closes the runs
that a crash left marked as running. With the in-process executor the run's one process holds it; with the
multiprocess executor the run's orchestrating process holds it (assets/executors.py) and the run's step
processes see it held for their run and go on."""

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from pipeline.cycles import BillCycle
from pipeline.home import Home
from pipeline.locks import HOME_LOCK, held_by, hold, is_held
from pipeline.reference import Reference, load_usage_reference
from pipeline.reference_verdict import VERDICT_FILE, checked_reference, checked_usage_reference
from pipeline.settings import Settings, load_settings

EXECUTOR_ENV = "CDRBILL_EXECUTOR"  # k8s: every step its own pod (assets/executors.py, deploy/README.md)
HOME_TAG = (
    "cdrbill/home"  # on every cycle job: the run queue lets one run per home at a time (deploy/dagster.yaml)
)
UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


class CdrbillHome(dg.ConfigurableResource):
    """The home directory (``CDRBILL_HOME``; empty means the environment's or the default)."""

    root: str = ""
    _locks: contextlib.ExitStack = PrivateAttr(default_factory=contextlib.ExitStack)

    def home(self) -> Home:
        return (Home(Path(self.root)) if self.root else Home.from_env()).ensure()

    def reference(self) -> Reference:
        """Every reference table, checked unless this content passed the checks before (``checked_reference``)."""
        home = self.home()
        return checked_reference(home.reference, home.root / VERDICT_FILE)

    def usage_reference(self) -> Reference:
        """Mediation's tables only (sources, accounts, service numbers): see ``load_usage_reference``."""
        return load_usage_reference(self.home().reference)

    def intake_reference(self) -> Reference:
        """The run's first check of the whole reference, remembered per content (``checked_usage_reference``):
        a broken table stops the run before any file is registered."""
        home = self.home()
        return checked_usage_reference(home.reference, home.root / VERDICT_FILE)

    def settings(self) -> Settings:
        return load_settings(self.home().reference)

    def cycle(self, partition_key: str) -> BillCycle:
        return BillCycle.parse(partition_key, self.settings().billing_timezone)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run_id = context.run_id
        if run_id is None:  # a sensor or schedule looking at the home: it writes nothing
            return
        if os.environ.get(EXECUTOR_ENV) == "k8s":
            # each step is its own pod, maybe on another node: the run queue's limit of one run per home
            # (tag cdrbill/home) is the lock; a flock per pod would make the shards' pods wait on each other
            return
        locks = self.home().root / "locks"
        if held_by(
            locks / HOME_LOCK, run_holder(run_id)
        ):  # a step of a run whose orchestrator holds the home
            return
        log = context.log
        self._locks.enter_context(
            hold_home_for_run(locks, run_id, context.instance, log.info if log else None)
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._locks.close()


def run_holder(run_id: str) -> str:
    """How a run names itself in the lock files it holds."""
    return f"run {run_id}"


@contextlib.contextmanager
def hold_home_for_run(
    locks: Path, run_id: str, instance: dg.DagsterInstance | None, log: Callable[[str], None] | None
) -> Iterator[None]:
    """Hold the run's own lock (it is alive) and then the home lock (one run per home) for the block, waiting
    while another run holds the home; then close the runs a crash left marked as running."""

    def waiting(holder: str) -> None:
        if log:
            log(f"waiting for the home to be free: held by {holder}")

    run_lock = locks / f"run-{run_id}.lock"
    with contextlib.ExitStack() as stack:
        stack.enter_context(hold(run_lock, run_holder(run_id)))  # first: a waiting run is alive too
        stack.callback(run_lock.unlink, missing_ok=True)
        stack.enter_context(hold(locks / HOME_LOCK, run_holder(run_id), waiting))
        if instance is not None:
            close_dead_runs(instance, locks, run_id)
        yield


def home_tag(environ: Mapping[str, str] = os.environ) -> str:
    """The value of the ``cdrbill/home`` tag of this code location's runs: its home directory."""
    return environ.get("CDRBILL_HOME", "") or "default"


def run_home(run_config: Mapping[str, Any]) -> Home:
    """The home a run works on, from its run config (``resources.cdrbill.config.root``), else the environment's."""
    root = ((run_config.get("resources") or {}).get("cdrbill") or {}).get("config", {}).get("root", "")
    return (Home(Path(root)) if root else Home.from_env()).ensure()


def close_dead_runs(instance: dg.DagsterInstance, locks: Path, current_run_id: str) -> list[str]:
    """Mark failed the runs still recorded as running whose process is gone (its run lock is free): a run
    killed mid-way must not look alive in the UI. Returns their ids."""
    closed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        lock = locks / f"run-{run.run_id}.lock"
        if run.run_id == current_run_id or not lock.exists() or is_held(lock):
            continue
        instance.report_run_failed(run, "its process ended without finishing (found by the next run)")
        lock.unlink(missing_ok=True)
        closed.append(run.run_id)
    return closed
