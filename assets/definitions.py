"""The Dagster code location of cdrbill (``dagster dev -m assets.definitions``)."""

import dagster as dg

from assets import approval, billing, commissions, documents, dunning, mediation, printing, rating, warehouse
from assets.jobs import approve_cycle_job, bill_cycle_job, mediate_landed_files_job, recycle_suspense_job
from assets.resources import CdrbillHome
from assets.schedules import monthly_bill_run
from assets.sensors import landing_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [mediation, rating, billing, commissions, documents, approval, dunning, printing, warehouse]
    ),
    jobs=[bill_cycle_job, recycle_suspense_job, mediate_landed_files_job, approve_cycle_job],
    sensors=[landing_sensor],
    schedules=[monthly_bill_run],
    resources={"cdrbill": CdrbillHome()},
)
