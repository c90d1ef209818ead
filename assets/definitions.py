"""The Dagster code location of cdrbill (``dagster dev -m assets.definitions``)."""

import dagster as dg

from assets import billing, commissions, documents, mediation, rating, warehouse
from assets.jobs import bill_cycle_job
from assets.resources import CdrbillHome
from assets.schedules import monthly_bill_run

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([mediation, rating, billing, commissions, documents, warehouse]),
    jobs=[bill_cycle_job],
    schedules=[monthly_bill_run],
    resources={"cdrbill": CdrbillHome()},
)
