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

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import first_row, parquet_glob, scalar
from pipeline.lake import lake_partition, lake_table, partition_dir, replace_partition
from pipeline.mediation import MEDIATED
from pipeline.rating import RATED, rate_cycle
from pipeline.sql import read_sql

RERATE = "rerate"
# the previous rating's files kept through the rerate (rating replaces the partition, and its old version may be
# deleted at once): the fact's key and outcome columns the comparison reads, the suspended events as written
PREVIOUS_COLUMNS = {
    "rated": ("file_id", "line_no", "charge_amount", "rate_card_id", "prefix"),
    "suspended": ("file_id", "line_no", "account_id", "charged_number"),
}
PREVIOUS_VIEWS = {"rated": "previous_fact", "suspended": "previous_suspended"}
EMPTY_SUSPENDED = (
    "select null::integer as file_id, null::uinteger as line_no, null::varchar as account_id, "
    "null::varchar as charged_number where false"
)
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
    with tempfile.TemporaryDirectory(prefix="cdrbill-rerate-", dir=_scratch_dir(con)) as scratch:
        # the previous rating stays on disk (a link to its files, not a copy in the session's memory, which the
        # rating pass needs) until it is compared
        keep_previous_rating(con, folder, Path(scratch))
        try:
            _check_previous_keys(con, lake, cycle)
            counts = rate(con, lake, cycle)
            compare_ratings(con)
        finally:
            for view in PREVIOUS_VIEWS.values():
                con.execute(f"drop view if exists {view}")
    try:
        # the per-event report is written from DuckDB as it is computed (every event of a 10M cycle can change:
        # held in Python it would be the largest thing in memory)
        events = con.sql(read_sql("rerate_deltas.sql"))
        accounts = account_deltas(con, cycle_level_charges(folder))
        written = replace_partition(
            lake, partition_dir(lake, RERATE, cycle=cycle), {"events": events, "accounts": accounts}
        )
    finally:
        con.execute("drop table rerate_compared")
    posted = post_rerate_adjustments(state, cycle, accounts, posted_at=posted_at, approved_by=approved_by)
    return {
        "rated": counts["rated"],
        "suspended": counts["suspended"],
        "changed_events": written["events"],
        "accounts_changed": accounts.filter(pl.col("delta") != 0).height,
        "adjustments_posted": posted,
    }


def compare_ratings(con: duckdb.DuckDBPyConnection) -> None:
    """Every event's previous outcome (views ``previous_fact``, ``previous_suspended``) beside its new one
    (``rating_outcomes``) in the temp table ``rerate_compared`` (sql/rerate_compared.sql): one join, read by the
    per-event report and the account deltas. Rule: nothing lost — a previously rated event without a new outcome
    fails it."""
    con.execute(f"create or replace temp table rerate_compared as {read_sql('rerate_compared.sql')}")


def keep_previous_rating(con: duckdb.DuckDBPyConnection, folder: Path, scratch: Path) -> None:
    """Keep the cycle's previous rating (rule: a rerate compares with what was rated before, which rating
    replaces): its ``rated`` and ``suspended`` files hard-linked (copied across volumes) into ``scratch``, read
    by the views ``previous_fact`` and ``previous_suspended`` (the columns the comparison reads)."""
    for name, view in PREVIOUS_VIEWS.items():
        source = folder / f"{name}.parquet"
        if not source.exists():  # a partition written without suspense
            con.execute(f"create or replace temp view {view} as {EMPTY_SUSPENDED}")
            continue
        kept = scratch / source.name
        try:
            os.link(source.resolve(), kept)
        except OSError:  # another volume (or a store's cache): a copy of the file
            shutil.copyfile(source, kept)
        con.execute(
            f"create or replace temp view {view} as select {', '.join(PREVIOUS_COLUMNS[name])} "
            f"from read_parquet({parquet_glob([kept])}, hive_partitioning = false)"
        )


def _scratch_dir(con: duckdb.DuckDBPyConnection) -> str | None:
    """The session's spill folder when it has one (the home's volume: where the lake is), else the system's."""
    spill = scalar(con, "select current_setting('temp_directory')")
    return spill if spill and Path(spill).is_dir() else None


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
    compared: str = "rerate_compared",
) -> pl.DataFrame:
    """Per account (the previous and new outcomes side by side: the relation ``compared``,
    sql/rerate_compared.sql): the previous and new rated usage (exact) and its new usage in cents as the bill run
    rounds it (Σ per service number, state, service and call jurisdiction, half_up — the usage lines — plus the
    new cycle-level usage charges ``cycle_level`` (tier charges, data rounding: whole cents, their own lines))."""
    return con.sql(
        f"""
        with lines as (  -- the bill run's usage lines: one per number, service and call jurisdiction
            select account_id,
                   sum(previous_charge) filter (where previous_rated) as previous_exact,
                   sum(new_charge) filter (where new_rated) as new_exact,
                   round_div(sum(micros(new_charge)) filter (where new_rated), 10000, 'half_up') as new_cents
            from {compared}
            where previous_rated or new_rated
            group by account_id, charged_number, service_state, coalesce(service, 'voice'), jurisdiction
        ),
        accounts as (
            select account_id,
                   sum(previous_exact) as previous_usage,
                   sum(new_exact) as new_usage,
                   sum(new_cents) as new_usage_cents
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
    cycle: str,
    accounts: pl.DataFrame,
    *,
    posted_at: datetime,
    approved_by: str,
) -> int:
    """When ``cycle`` is final, post each account's usage difference (new billed usage ``new_usage_billed`` of
    ``accounts``, ``account_deltas`` − invoiced usage − rerate adjustments already posted) to ``adjustments``;
    returns how many were posted."""
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
    new_usage = accounts.select("account_id", "new_usage_billed")
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
