"""The Dagster code location of cdrbill (``dagster dev -m assets.definitions``)."""

import dagster as dg

from assets import (
    approval,
    billing,
    commissions,
    credit_notes,
    documents,
    dunning,
    mediation,
    printing,
    rating,
    reports,
    warehouse,
)
from assets.jobs import (
    approve_cycle_job,
    bill_cycle_job,
    cycle_reports_job,
    daily_payment_reminders_job,
    deliver_credit_notes_job,
    mediate_landed_files_job,
    recycle_suspense_job,
)
from assets.resources import CdrbillHome
from assets.schedules import daily_payment_reminders, monthly_bill_run
from assets.sensors import landing_sensor, reports_after_publish
from assets.upkeep import daily_lake_sweep, lake_sweep

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [
            mediation,
            rating,
            billing,
            commissions,
            documents,
            approval,
            dunning,
            credit_notes,
            printing,
            warehouse,
            reports,
        ]
    ),
    jobs=[
        bill_cycle_job,
        recycle_suspense_job,
        mediate_landed_files_job,
        approve_cycle_job,
        cycle_reports_job,
        deliver_credit_notes_job,
        daily_payment_reminders_job,
        lake_sweep,
    ],
    sensors=[landing_sensor, reports_after_publish],
    schedules=[monthly_bill_run, daily_payment_reminders, daily_lake_sweep],
    resources={"cdrbill": CdrbillHome()},
)


def bill_cycle() -> dg.JobDefinition:
    """The resolved ``bill_cycle`` job, for ``dg.reconstructable`` (each step process of a multiprocess run
    loads it again by this module and name)."""
    return defs.resolve_job_def("bill_cycle")
