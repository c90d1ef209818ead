"""The unattended monthly bill run: after a cycle's month ends, run its partition."""

import dagster as dg

from assets.jobs import bill_cycle_job

monthly_bill_run = dg.build_schedule_from_partitioned_job(
    bill_cycle_job,
    name="monthly_bill_run",
    day_of_month=2,
    hour_of_day=3,
    description="Runs the bill cycle of the month that just ended, on the 2nd at 03:00 (billing time zone).",
)
