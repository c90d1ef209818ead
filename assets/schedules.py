"""The unattended runs: the monthly bill run after a cycle's month ends, and the daily payment reminders."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

from assets.jobs import bill_cycle_job, daily_payment_reminders_job
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.dunning import latest_delivered_cycle

monthly_bill_run = dg.build_schedule_from_partitioned_job(
    bill_cycle_job,
    name="monthly_bill_run",
    day_of_month=2,
    hour_of_day=3,
    description="Runs the bill cycle of the month that just ended, on the 2nd at 03:00 (billing time zone).",
)


@dg.schedule(
    job=daily_payment_reminders_job,
    cron_schedule="0 7 * * *",
    execution_timezone=bill_cycles.timezone,
    description="Every day at 07:00 (billing time zone): the payment reminders due that day, recorded under the "
    "latest delivered cycle; one run per day (run key), and the ledger sends each reminder once.",
)
def daily_payment_reminders(
    context: dg.ScheduleEvaluationContext, cdrbill: CdrbillHome
) -> dg.RunRequest | dg.SkipReason:
    """The day's reminder run: ``as_of`` = the tick's date in the billing time zone, for the latest cycle
    delivered; skipped before any delivery, or when the state is busy (the next tick tries again)."""
    tick = context.scheduled_execution_time or datetime.now(ZoneInfo(bill_cycles.timezone))
    day = tick.astimezone(ZoneInfo(bill_cycles.timezone)).date()
    state_db = cdrbill.home().state_db
    if not state_db.exists():
        return dg.SkipReason("no state.duckdb yet: nothing billed")
    try:
        with duckdb.connect(str(state_db), read_only=True) as state:
            cycle = latest_delivered_cycle(state)
    except duckdb.IOException as error:  # a run holds the ledgers: the next tick tries again
        return dg.SkipReason(f"state.duckdb is busy ({error}); the next tick tries again")
    if cycle is None:
        return dg.SkipReason("no cycle delivered yet: no reminders")
    return dg.RunRequest(
        run_key=f"reminders-{day.isoformat()}",
        partition_key=cycle,
        run_config={"ops": {"payment_reminders": {"config": {"as_of": day.isoformat()}}}},
        tags={"cdrbill/as_of": day.isoformat()},
    )
