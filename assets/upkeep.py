"""The lake's upkeep as a Dagster job: ``lake_sweep`` removes superseded versions past their grace, a killed
writer's orphan versions and (on an object store) read-cache versions above the bound
(``pipeline.lake_upkeep.sweep_lake``); the schedule ``daily_lake_sweep`` runs it every night. The run holds the
home like a bill run (the resource's lock; the run queue's home tag on Kubernetes), so it never meets a writer."""

import dagster as dg

from assets.executors import bill_cycle_executor
from assets.resources import HOME_TAG, CdrbillHome, home_tag
from pipeline.lake_upkeep import format_removals, sweep_lake


class SweepConfig(dg.Config):
    dry_run: bool = False  # only list what would go


@dg.op(description="Remove the lake's superseded versions past their grace, orphan versions and excess cache.")
def sweep_lake_versions(context: dg.OpExecutionContext, config: SweepConfig, cdrbill: CdrbillHome) -> int:
    """The sweep of the home's lake (rule: never a version a link or pointer names); the count removed."""
    removals = sweep_lake(cdrbill.home().lake, dry_run=config.dry_run)
    context.log.info(format_removals(removals, config.dry_run))
    return len(removals)


@dg.job(executor_def=bill_cycle_executor(), tags={HOME_TAG: home_tag()})
def lake_sweep() -> None:
    """Sweep the home's lake once."""
    sweep_lake_versions()


daily_lake_sweep = dg.ScheduleDefinition(
    job=lake_sweep,
    cron_schedule="30 4 * * *",
    description="Every night at 04:30: the lake's superseded versions past their grace, orphans, excess cache.",
)
