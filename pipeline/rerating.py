"""Rerating: rate a cycle again after a rate fix, report what changed per event and per account
(``lake/rerate/cycle=C/{events,accounts}.parquet``), and — when the cycle's invoices are already final — post
each account's usage difference to the ``adjustments`` ledger (category ``rerate``) for the next invoice to
carry. A final invoice never changes.

Rule of the adjustment: the account's usage as the bill run would now compute it (Σ per service number and
state, rounded half_up to cents, plus the cycle-level usage lines rating priced in whole cents: tier charges and
data rounded per cycle) − the usage its final invoice carried − the rerate adjustments already posted
for that cycle. It is posted only when not zero, with the id ``RR-<cycle>-<account>-<n>`` (n = the account's
n-th rerate of the cycle), in one transaction: re-running a rerate with nothing changed posts nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import first_row, scalar
from pipeline.lake import lake_partition, lake_table, partition_dir, replace_partition
from pipeline.mediation import MEDIATED
from pipeline.rating import RATED, rate_cycle
from pipeline.sql import read_sql

RERATE = "rerate"
# the previous rating that sql/rerate_deltas.sql and account_deltas() compare: the rated fact's key and outcome
# columns (no normalised column: the event's account and number are the new rating's, by key), the suspended
# events as written
PREVIOUS_COLUMNS = {
    "fact": ("file_id", "line_no", "jurisdiction", "charge_amount", "rate_card_id", "prefix"),
    "suspended": ("file_id", "line_no", "account_id", "charged_number"),
}
PREVIOUS_FILES = {"fact": "rated", "suspended": "suspended"}
EMPTY_SUSPENDED = (
    "select null::integer as file_id, null::uinteger as line_no, null::varchar as account_id, "
    "null::varchar as charged_number where false"
)
# the new rating's outcomes as the report and the account deltas read them, materialised once (one join of the
# narrow fact to its normalised columns) from ``rating_outcomes``
OUTCOME_COLUMNS = ("file_id", "line_no", "account_id", "charged_number", "service_state", "service", "jurisdiction",
                   "rating_reason", "charge_amount", "rate_card_id", "prefix")  # fmt: skip
# the previous rated events with the columns of their event: the fact joined by key to the new outcomes (every
# normalised event is there, rated or suspended; ``_check_previous_keys`` proved every previous key is normalised
# before rating). Rule: nothing lost — a previous event without a new outcome fails, it is never dropped
PREVIOUS_RATED = """
create or replace temp table previous_rated as
select
    file_id, line_no, event.account_id, event.charged_number, event.service_state, event.service,
    previous_fact.jurisdiction, previous_fact.charge_amount, previous_fact.rate_card_id, previous_fact.prefix
from previous_fact
left join rerate_outcomes as event using (file_id, line_no)
where case
    when event.file_id is null then error(
        'previously rated event ' || file_id || ':' || line_no || ' has no outcome in the new rating: '
        || 'its charge would be lost. Fix: report this, then rerate')
    else true
end
"""
# the cycle-level usage charges rating writes beside the rated events, in whole cents (sql/tiers.sql,
# sql/data_rounding.sql): each becomes a usage line of its own on the invoice
CYCLE_LEVEL_CHARGES = ("tier_charges", "data_rounding")
NO_CYCLE_LEVEL_CHARGES = "select null::varchar as account_id, null::decimal(18, 2) as charge_amount where false"


def cycle_level_charges(folder: Path) -> str:
    """A query of the cycle-level usage charges (tier charges, data rounding) of a written rated partition:
    ``account_id``, ``charge_amount`` — what the bill run adds to the rated events' usage lines."""
    parts = [
        f"select account_id, charge_amount from read_parquet('{(folder / f'{name}.parquet').as_posix()}')"
        for name in CYCLE_LEVEL_CHARGES
        if (folder / f"{name}.parquet").exists()
    ]
    return "\nunion all\n".join(parts) or NO_CYCLE_LEVEL_CHARGES


def rerate_cycle(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    state: duckdb.DuckDBPyConnection,
    cycle: str,
    *,
    posted_at: datetime,
    approved_by: str = "rerate",
    rate: Callable[[duckdb.DuckDBPyConnection, Path, str], dict[str, int]] = rate_cycle,
) -> dict[str, int]:
    """Rate ``cycle`` again, write the delta report, and post adjustments if the cycle is final; returns the
    counts (rated, suspended, changed events, accounts with a delta, adjustments posted). ``rate`` writes the
    new ``lake/rated/cycle=C`` and leaves the view ``rating_outcomes`` over it (``rating.rate_cycle``, or the
    collect of the market shards' parts, ``shards.collect_rated``)."""
    folder = lake_partition(lake, RATED, cycle=cycle)
    if not (folder / "rated.parquet").exists():  # rated for the first time: nothing to compare
        counts = rate(con, lake, cycle)
        return {"rated": counts["rated"], "suspended": counts["suspended"], "changed_events": 0,
                "accounts_changed": 0, "adjustments_posted": 0}  # fmt: skip
    # only the columns the delta report and the account deltas compare are kept (the fact's are its outcome)
    for name, columns in PREVIOUS_COLUMNS.items():
        path = folder / f"{PREVIOUS_FILES[name]}.parquet"
        source = (
            f"select {', '.join(columns)} from read_parquet('{path.as_posix()}', hive_partitioning = false)"
            if path.exists()
            else EMPTY_SUSPENDED
        )
        con.execute(f"create or replace temp table previous_{name} as {source}")
    _check_previous_keys(con, lake, cycle)
    counts = rate(con, lake, cycle)
    con.execute(
        f"create or replace temp table rerate_outcomes as select {', '.join(OUTCOME_COLUMNS)} from rating_outcomes"
    )
    con.execute(PREVIOUS_RATED)
    con.execute("drop table previous_fact")
    # the per-event report is written from DuckDB as it is computed (every event of a 10M cycle can change:
    # held in Python it would be the largest thing in memory)
    events = con.sql(read_sql("rerate_deltas.sql"))
    cycle_level = cycle_level_charges(folder)
    accounts = account_deltas(con, cycle_level, outcomes="rerate_outcomes")
    written = replace_partition(
        lake, partition_dir(lake, RERATE, cycle=cycle), {"events": events, "accounts": accounts}
    )
    posted = post_rerate_adjustments(
        state,
        con,
        cycle,
        posted_at=posted_at,
        approved_by=approved_by,
        cycle_level=cycle_level,
        outcomes="rerate_outcomes",
    )
    return {
        "rated": counts["rated"],
        "suspended": counts["suspended"],
        "changed_events": written["events"],
        "accounts_changed": accounts.filter(pl.col("delta") != 0).height,
        "adjustments_posted": posted,
    }


class RatedEventLost(RuntimeError):
    """A previously rated event is missing from the cycle's mediated partition: rerating would drop its charge."""


def _check_previous_keys(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str) -> None:
    """Rule: nothing lost — every previously rated event must still be in the cycle's mediated partition before
    the cycle is rated again; otherwise the rerate stops with the lake as it was (the previous rating stays)."""
    normalised = lake_table(lake, MEDIATED, "normalised", cycle=cycle)
    lost = first_row(
        con,
        "select file_id, line_no from previous_fact anti join (select file_id, line_no from "
        f"read_parquet('{normalised.as_posix()}', hive_partitioning = false)) using (file_id, line_no) limit 1",
    )
    if lost:
        raise RatedEventLost(
            f"previously rated event {lost[0]}:{lost[1]} is missing from the mediated partition of {cycle}: its "
            "charge would be lost. Fix: restore the cycle's mediated partition, then rerate"
        )


def account_deltas(
    con: duckdb.DuckDBPyConnection,
    cycle_level: str = NO_CYCLE_LEVEL_CHARGES,
    outcomes: str = "rating_outcomes",
) -> pl.DataFrame:
    """Per account (new rating: the relation ``outcomes``; previous: ``previous_rated``): the previous and new
    rated usage (exact) and its usage in cents as the bill run rounds it (Σ per service number, state, service
    and call jurisdiction, half_up — the usage lines — plus the new cycle-level usage charges ``cycle_level``
    (tier charges, data rounding: whole cents, their own lines))."""
    return con.sql(
        f"""
        with sides as (
            select 'previous' as side, account_id, charged_number, service_state, service, jurisdiction,
                   charge_amount
            from previous_rated
            union all
            select 'new', account_id, charged_number, service_state, service, jurisdiction, charge_amount
            from {outcomes} where rating_reason is null
        ),
        lines as (  -- the bill run's usage lines: one per number, service and call jurisdiction
            select side, account_id, sum(charge_amount) as exact,
                   round_div(sum(micros(charge_amount)), 10000, 'half_up') as cents
            from sides
            group by side, account_id, charged_number, service_state, coalesce(service, 'voice'), jurisdiction
        ),
        accounts as (
            select account_id,
                   sum(exact) filter (where side = 'previous') as previous_usage,
                   sum(exact) filter (where side = 'new') as new_usage,
                   sum(cents) filter (where side = 'new') as new_usage_cents
            from lines group by account_id
        ),
        cycle_level as (  -- whole cents already (rounded once, half_up, by rating)
            select account_id, sum(micros(charge_amount)) // 10000 as cents
            from ({cycle_level})
            group by account_id
        )
        select account_id,
               coalesce(previous_usage, 0)::decimal(18, 6) as previous_usage,
               coalesce(new_usage, 0)::decimal(18, 6) as new_usage,
               (coalesce(new_usage, 0) - coalesce(previous_usage, 0))::decimal(18, 6) as delta,
               from_cents(coalesce(new_usage_cents, 0) + coalesce(cycle_level.cents, 0)) as new_usage_billed
        from accounts
        left join cycle_level using (account_id)
        order by account_id
        """
    ).pl()


def post_rerate_adjustments(
    state: duckdb.DuckDBPyConnection,
    con: duckdb.DuckDBPyConnection,
    cycle: str,
    *,
    posted_at: datetime,
    approved_by: str,
    cycle_level: str = NO_CYCLE_LEVEL_CHARGES,
    outcomes: str = "rating_outcomes",
) -> int:
    """When ``cycle`` is final, post each account's usage difference (new billed usage − invoiced usage −
    rerate adjustments already posted) to ``adjustments``; returns how many were posted."""
    final = scalar(state, "select count(*) from finalized_cycles where cycle = ?", [cycle])
    if not final:
        return 0
    invoiced = state.sql(
        """
        select invoices.account_id, invoices.currency, invoices.period_end,
               coalesce(sum(invoice_lines.amount) filter (where invoice_lines.section = 'usage'), 0) as usage,
               coalesce(any_value(posted.amount), 0) as posted, coalesce(any_value(posted.n), 0) as posted_count
        from invoices
        left join invoice_lines using (invoice_number)
        left join (
            select account_id, sum(amount) as amount, count(*) as n from adjustments
            where category = 'rerate' and source = 'rerate:' || ? group by account_id
        ) as posted using (account_id)
        where invoices.cycle = ?
        group by all
        """,
        params=[cycle, cycle],
    ).pl()
    new_usage = account_deltas(con, cycle_level, outcomes).select("account_id", "new_usage_billed")
    due = (
        invoiced.join(new_usage, on="account_id", how="left")
        .with_columns(
            amount=pl.col("new_usage_billed").fill_null(0).cast(pl.Decimal(18, 2))
            - pl.col("usage").cast(pl.Decimal(18, 2))
            - pl.col("posted").cast(pl.Decimal(18, 2))
        )
        .filter(pl.col("amount") != 0)
        .with_columns(
            adjustment_id=pl.format("RR-{}-{}-{}", pl.lit(cycle), "account_id", pl.col("posted_count") + 1)
        )
    )
    if due.height == 0:
        return 0
    state.register("rerate_due", due)
    state.execute("begin transaction")
    try:
        state.execute(
            """
            insert into adjustments
            select adjustment_id, account_id, amount, currency, 'rerate',
                   'usage of cycle ' || ? || ' rerated: ' || new_usage_billed || ' instead of ' || usage
                       || case when posted <> 0 then ' (less ' || posted || ' already adjusted)' else '' end,
                   ?, 'rerate:' || ?, period_end, ?::timestamp, null
            from rerate_due
            on conflict do nothing
            """,
            [cycle, approved_by, cycle, posted_at],
        )
        state.execute("commit")
    except Exception:
        state.execute("rollback")
        raise
    finally:
        state.unregister("rerate_due")
    return due.height
