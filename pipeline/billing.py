"""The bill run's charges: per billable account, recurring charges (plans, add-ons, equipment leases) prorated
by actual days, one-time charges (orders, equipment sales), usage per service number, discounts, and the taxes
and fees of each state the lines are sourced to (``sql/billing_*.sql``, ``pipeline/taxes.py``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from pipeline.currencies import account_currencies
from pipeline.cycles import BillCycle
from pipeline.lake import lake_table, partition_dir, replace_partition
from pipeline.rating import RATED, rated_events_sql
from pipeline.sql import read_sql
from pipeline.taxes import compute_tax_lines

CHARGES = "charges"
DEFAULT_CARRIER = "cdrbill Telecom"
# Columns the bill run needs from rated events that other stages add; absent ones are read as shown.
RATED_DEFAULTS = {"service": "'voice'", "jurisdiction": "null::varchar", "included_units": "0::bigint",
                  "charged_units": "null::bigint"}  # fmt: skip
# The tier charges rating writes (``sql/tiers.sql``); a cycle rated before tiers existed has none.
TIER_CHARGES_SCHEMA = {"account_id": "varchar", "tier_id": "varchar", "mode": "varchar", "plan_id": "varchar",
                       "service": "varchar", "total_units": "bigint", "tier_breakdown": "varchar",
                       "charge_amount": "decimal(18, 2)"}  # fmt: skip
# The cycle's data rounding of plans that round data per cycle (``sql/data_rounding.sql``); none before it existed.
DATA_ROUNDING_SCHEMA = {"account_id": "varchar", "charged_number": "varchar", "service_state": "varchar",
                        "plan_id": "varchar", "rate_card_id": "varchar", "prefix": "varchar",
                        "destination": "varchar", "data_unit": "varchar", "sessions": "bigint",
                        "charged_bytes": "bigint", "rounded_bytes": "bigint", "rounding_bytes": "bigint",
                        "rate_per_unit": "decimal(18, 6)", "rate_unit": "bigint",
                        "roaming_surcharge": "decimal(18, 6)", "charge_amount": "decimal(18, 2)"}  # fmt: skip
SECTIONS = ("recurring", "one_time", "usage", "discounts", "carrier_fees", "taxes", "adjustments", "late_fees")


def cycle_params(
    con: duckdb.DuckDBPyConnection, cycle: BillCycle, carrier_name: str = DEFAULT_CARRIER
) -> None:
    """The temp table ``cycle_params``: this cycle's days and the next cycle's (for billing in advance)."""
    following = BillCycle.parse((cycle.end + timedelta(days=1)).strftime("%Y-%m"), cycle.timezone)
    con.execute(
        """
        create or replace temp table cycle_params as
        select ?::varchar as cycle, ?::date as period_start, ?::date as period_end, ?::integer as cycle_days,
               ?::date as next_start, ?::date as next_end, ?::integer as next_days, ?::varchar as carrier_name
        """,
        [
            cycle.key,
            cycle.start,
            cycle.end,
            cycle.days,
            following.start,
            following.end,
            following.days,
            carrier_name,
        ],  # fmt: skip
    )


def rated_view(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """The view ``rated`` over a relation or Parquet path, with ``service``, ``jurisdiction`` and the allowance
    split (``included_units``, ``charged_units``) defaulted where the input lacks them (a null jurisdiction is
    its own category; no allowance: nothing included)."""
    columns = {row[0] for row in con.execute(f"describe select * from {source}").fetchall()}
    extra = "".join(f", {value} as {name}" for name, value in RATED_DEFAULTS.items() if name not in columns)
    con.execute(f"create or replace temp view rated as select *{extra} from {source}")


def tier_charges_view(con: duckdb.DuckDBPyConnection, source: str | None) -> None:
    """The view ``tier_charges`` over a relation or Parquet path (graduated / volume tier charges on the cycle's
    totals, priced by rating), or an empty one when the cycle has none."""
    if source is None:
        columns = ", ".join(f"null::{kind} as {name}" for name, kind in TIER_CHARGES_SCHEMA.items())
        con.execute(f"create or replace temp view tier_charges as select {columns} limit 0")
    else:
        con.execute(f"create or replace temp view tier_charges as select * from {source}")


def data_rounding_view(con: duckdb.DuckDBPyConnection, source: str | None) -> None:
    """The view ``data_rounding`` over a relation or Parquet path (the cycle's charged data bytes of a service
    number rounded up once to its plan's unit, priced by rating), or an empty one when the cycle has none."""
    if source is None:
        columns = ", ".join(f"null::{kind} as {name}" for name, kind in DATA_ROUNDING_SCHEMA.items())
        con.execute(f"create or replace temp view data_rounding as select {columns} limit 0")
    else:
        con.execute(f"create or replace temp view data_rounding as select * from {source}")


def charge_lines(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """The charge lines of every billable account from the views ``rated`` and ``cycle_params`` and the
    reference tables: recurring, one-time and usage charges (rated events, tier charges and data rounded per
    cycle), discounts, then taxes level by level, each rounded to the minor units of its account's currency
    (ISO 4217). Without a ``tier_charges`` / ``data_rounding`` view the cycle has none of them."""
    if not con.sql("select 1 from duckdb_views() where view_name = 'tier_charges' and temporary").fetchall():
        tier_charges_view(con, None)
    if not con.sql("select 1 from duckdb_views() where view_name = 'data_rounding' and temporary").fetchall():
        data_rounding_view(con, None)
    currencies = account_currencies(con.sql("select account_id, currency from accounts").pl())  # noqa: F841
    con.execute("create or replace temp table account_currency as select * from currencies")
    con.execute(read_sql("billing_charges.sql"))
    con.execute(read_sql("billing_discounts.sql"))
    compute_tax_lines(con, con.sql("select * from taxes").pl())
    return con.sql(read_sql("billing_lines.sql"))


def compute_charges(
    con: duckdb.DuckDBPyConnection, lake: Path, cycle: BillCycle, carrier_name: str = DEFAULT_CARRIER
) -> dict[str, int]:
    """Write ``lake/charges/cycle=C/charge_lines.parquet``: every charge line of every billable account, from
    the cycle's rated events, tier charges and data rounding (reference tables registered on ``con``)."""
    rated = lake_table(lake, RATED, "rated", cycle=cycle.key)
    rated_view(con, f"({rated_events_sql(lake, cycle.key)})")
    tiers = rated.with_name("tier_charges.parquet")
    tier_charges_view(con, f"read_parquet('{tiers.as_posix()}')" if tiers.exists() else None)
    rounding = rated.with_name("data_rounding.parquet")
    data_rounding_view(con, f"read_parquet('{rounding.as_posix()}')" if rounding.exists() else None)
    cycle_params(con, cycle, carrier_name)
    lines = charge_lines(con)
    return replace_partition(lake, partition_dir(lake, CHARGES, cycle=cycle.key), {"charge_lines": lines})
