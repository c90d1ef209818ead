"""Bill cycles as Dagster partitions: one monthly partition per cycle, keyed ``YYYY-MM``."""

import dagster as dg

bill_cycles = dg.MonthlyPartitionsDefinition(start_date="2026-01", fmt="%Y-%m", timezone="America/Chicago")
