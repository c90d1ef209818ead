"""How a bill cycle's steps are executed — a setting of the deployment, never a change of code
(docs/SCALE_LOG.md, "Scale-out"):

- in this process (default, the fastest for the sample cycle on 2 cores);
- one subprocess per step on this machine, up to ``max_concurrent`` at once, with the run config
  ``execution: {config: {multiprocess: {max_concurrent: 2}}}``: the market shards' steps run in parallel. The
  run's orchestrating process holds the home lock for the whole run, so the run's own steps go on while a second
  run waits (assets/resources.py);
- one Kubernetes pod per step with ``CDRBILL_EXECUTOR=k8s`` in the code location's environment
  (``dagster_k8s.k8s_job_executor``, the optional ``deploy`` extra; deploy/README.md)."""

import os
from collections.abc import Iterator, Mapping, Sequence

import dagster as dg

# Dagster's own in-process and multiprocess executors, selected by run config as in its
# multi_or_in_process_executor, but in-process by default (private names: no public constructor takes a config)
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    ExecutorRequirement,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.base import Executor

from assets.resources import EXECUTOR_ENV, hold_home_for_run, run_home


class RunHoldsHome(Executor):
    """An executor whose orchestrating process holds the home's lock for the run while ``inner`` runs the steps in
    other processes: the run's steps do not wait on each other, another run waits for the whole run."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> RetryMode:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._inner.step_dependency_config

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator:
        run = plan_context.dagster_run
        home = run_home(run.run_config)
        with hold_home_for_run(home.root / "locks", run.run_id, plan_context.instance, plan_context.log.info):
            yield from self._inner.execute(plan_context, execution_plan)


def _requirements(executor_config: Mapping[str, object]) -> Sequence[ExecutorRequirement]:
    return multiple_process_executor_requirements() if "multiprocess" in executor_config else []


@dg.executor(
    name="cdrbill",
    config_schema=dg.Field(
        dg.Selector({"in_process": IN_PROC_CONFIG, "multiprocess": MULTI_PROC_CONFIG}),
        default_value={"in_process": {}},
    ),
    requirements=_requirements,
)
def in_process_or_multiprocess(init_context: dg.InitExecutorContext) -> Executor:
    """In this process by default; one process per step (the home held by the run) with ``multiprocess``."""
    kind, config = next(iter(init_context.executor_config.items()))
    assert isinstance(config, Mapping)
    if kind == "multiprocess":
        return RunHoldsHome(_core_multiprocess_executor_creation(config))
    return _core_in_process_executor_creation(config)


def bill_cycle_executor(environ: dict[str, str] | os._Environ = os.environ) -> dg.ExecutorDefinition:
    """The executor of the cycle's jobs by the code location's environment: ``CDRBILL_EXECUTOR=k8s`` gives
    Dagster's Kubernetes job executor (one pod per step; needs ``pip install 'cdrbill[deploy]'``)."""
    choice = environ.get(EXECUTOR_ENV, "") or "in_process_or_multiprocess"
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]

        return k8s_job_executor
    if choice != "in_process_or_multiprocess":
        raise ValueError(f"{EXECUTOR_ENV}={choice!r}. Fix: unset it, or set it to 'k8s' (deploy/README.md)")
    return in_process_or_multiprocess
