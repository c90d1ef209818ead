"""Market shards: a bill cycle's accounts cut into shards that are rated, charged and rendered apart — each a pure
function of (cycle, shard) → files — and then collected into the cycle's one lake partition with one swap
(docs/SCALE_LOG.md, "Scale-out").

Rule of a shard (settings ``market_shards``, ``market_by``): with ``account_hash``, the accounts whose
``md5(account_id)`` as a 128-bit number mod ``market_shards`` is k (stable across machines and versions; an
event without an account goes to shard 0); with ``state``, the accounts of one service state (``accounts.
service_state``), the states in alphabetical order, an event whose account is unknown to the reference data going
to the first. Every charge of an account depends only on that account's own events (allowances, tiers, call
order, taxes are per account), so the union of the shards' results is the result of one pass over the cycle.

Layout: a shard's part is a small lake of its own, ``lake/.shards/<dataset>/cycle=C/shard=K`` (a link to a
version folder, swapped like any partition), holding the shard's slice of the inputs and the stage's outputs in
the usual layout (``…/shard=K/rated/cycle=C/rated.parquet``). The collect step reads the parts, writes the
cycle's partition once and removes the parts."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline.billing import CHARGES, compute_charges
from pipeline.cycles import BillCycle
from pipeline.engine import parquet_glob
from pipeline.lake import StagedPartition, lake_partition, lake_table, partition_dir, replace_partition
from pipeline.mediation import MEDIATED
from pipeline.rating import RATED, rate_cycle, rated_events_sql, rating_outcomes_view
from pipeline.reference import Reference
from pipeline.settings import Settings

SHARDS = ".shards"
RATED_TABLES = ("rated", "suspended", "tier_charges", "data_rounding")
CHARGES_TABLES = ("charge_lines",)


@dataclass(frozen=True)
class Shard:
    """One market shard of a cycle: ``key`` is ``0``…``count-1`` (account hash) or a state code."""

    key: str
    by: str = "account_hash"
    count: int = 1
    first: bool = (
        True  # takes the events no other shard claims (no account, or one unknown to reference data)
    )


def market_shards(settings: Settings, accounts: pl.DataFrame) -> list[Shard]:
    """The cycle's market shards by the settings (rule: ``market_shards`` hash shards of the account id, or one
    shard per service state of the accounts, in alphabetical order); always at least one."""
    if settings.market_by == "state":
        states = accounts.get_column("service_state").drop_nulls().unique().sort().to_list()
        if len(states) > 1:
            return [Shard(state, "state", len(states), index == 0) for index, state in enumerate(states)]
        return [Shard(states[0] if states else "all", "state", 1, True)]
    count = settings.market_shards
    return [Shard(str(index), "account_hash", count, index == 0) for index in range(count)]


def shard_by_key(settings: Settings, accounts: pl.DataFrame, key: str) -> Shard:
    """The shard called ``key`` among the cycle's market shards (a shard step is given only its key)."""
    for shard in market_shards(settings, accounts):
        if shard.key == key:
            return shard
    raise ValueError(f"no market shard {key!r} with market_by={settings.market_by!r}, "
                     f"market_shards={settings.market_shards}. Fix: run the whole cycle again")  # fmt: skip


def account_predicate(shard: Shard, column: str = "account_id") -> str:
    """SQL condition: the row's ``column`` (an account id) belongs to ``shard`` (rule in the module docstring).
    The state rule reads the reference table ``accounts`` registered on the connection."""
    if shard.count == 1:
        return "true"
    if shard.by == "account_hash":
        return f"coalesce(md5_number({column}) % {shard.count}, 0) = {int(shard.key)}"
    state = shard.key.replace("'", "''")
    claimed = f"{column} in (select account_id from accounts where service_state = '{state}')"
    if shard.first:
        return f"({claimed} or {column} is null or {column} not in (select account_id from accounts))"
    return claimed


def shard_accounts(con: duckdb.DuckDBPyConnection, shard: Shard) -> set[str] | None:
    """The account ids of one shard (reference table ``accounts`` registered on ``con``); None: every account."""
    if shard.count == 1:
        return None
    return set(
        con.sql(f"select account_id from accounts where {account_predicate(shard)}").pl()["account_id"]
    )


def shard_dir(lake: Path, dataset: str, cycle: str, shard: Shard) -> Path:
    """Where one shard's part of a dataset lives: ``lake/.shards/<dataset>/cycle=C/shard=K``."""
    return lake / SHARDS / dataset / f"cycle={cycle}" / f"shard={shard.key}"


def _slice_into(
    con: duckdb.DuckDBPyConnection, source: Path, target: Path, shard: Shard, column: str = "account_id"
) -> None:
    """The rows of Parquet file ``source`` whose account belongs to ``shard`` as the file ``target`` (the file
    itself, linked, when there is one shard)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if shard.count == 1:
        os.symlink(source.resolve(), target)
        return
    con.execute(
        f"copy (select * from read_parquet('{source.as_posix()}') where {account_predicate(shard, column)}) "
        f"to '{target.as_posix()}' (format parquet, compression zstd)"
    )


def _slice_rated_events(con: duckdb.DuckDBPyConnection, lake: Path, part: Path, cycle: str, shard: Shard) -> None:
    """The shard's rated events into the part lake ``part``, readable by ``rating.rated_events_sql`` there: with
    one shard the narrow fact and the normalised events it joins, linked; else the shard's accounts' events
    joined once (the one reader, nothing lost) and written with their normalised columns."""
    target = partition_dir(part, RATED, cycle=cycle) / "rated.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    if shard.count == 1:
        normalised = partition_dir(part, MEDIATED, cycle=cycle) / "normalised.parquet"
        normalised.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(lake_table(lake, MEDIATED, "normalised", cycle=cycle).resolve(), normalised)
        os.symlink(lake_table(lake, RATED, "rated", cycle=cycle).resolve(), target)
        return
    con.execute(
        f"copy (select * from ({rated_events_sql(lake, cycle)}) where {account_predicate(shard)}) "
        f"to '{target.as_posix()}' (format parquet, compression zstd)"
    )


def rate_shard(con: duckdb.DuckDBPyConnection, lake: Path, cycle: str, shard: Shard) -> dict[str, int]:
    """Rate the normalised events of one shard's accounts into its part (``rating.rate_cycle`` on the shard's
    slice: the same rules, the same outputs); reference tables registered on ``con``. Returns the counts."""
    staged = StagedPartition(lake, shard_dir(lake, RATED, cycle, shard))
    try:
        slice_path = partition_dir(staged.folder, MEDIATED, cycle=cycle) / "normalised.parquet"
        _slice_into(con, lake_table(lake, MEDIATED, "normalised", cycle=cycle), slice_path, shard)
        counts = rate_cycle(con, staged.folder, cycle)
        con.execute("drop view if exists rating_outcomes")  # it reads the slice, removed next
        slice_path.unlink()
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return counts


def charge_shard(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    cycle: BillCycle,
    shard: Shard,
    reference: Reference,
    carrier_name: str,
) -> dict[str, int]:
    """The charge lines of one shard's accounts into its part (``billing.compute_charges`` on the shard's rated
    events and tier charges, with every reference table that has an ``account_id`` restricted to the shard);
    reference tables registered on ``con``. Returns the counts."""
    staged = StagedPartition(lake, shard_dir(lake, CHARGES, cycle.key, shard))
    try:
        rated = lake_partition(lake, RATED, cycle=cycle.key)
        _slice_rated_events(con, lake, staged.folder, cycle.key, shard)
        for name in ("tier_charges", "data_rounding"):
            if (rated / f"{name}.parquet").exists():
                _slice_into(
                    con,
                    rated / f"{name}.parquet",
                    partition_dir(staged.folder, RATED, cycle=cycle.key) / f"{name}.parquet",
                    shard,
                )
        restrict_reference(con, reference.tables(), shard)
        counts = compute_charges(con, staged.folder, cycle, carrier_name)
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return counts


def restrict_reference(con: duckdb.DuckDBPyConnection, tables: dict[str, pl.DataFrame], shard: Shard) -> None:
    """Replace, restricted to the shard's accounts, every reference table (held on ``con`` under its name by
    ``engine.session``) with an ``account_id`` column (accounts, subscriptions, orders, discounts…): a shard
    bills its own accounts only. A row without an account (a discount for every account of a plan) applies in
    every shard. ``accounts`` is replaced last: the state rule reads the whole table."""
    if shard.count == 1:
        return
    names = [name for name, frame in tables.items() if "account_id" in frame.columns]
    for name in sorted(names, key=lambda name: name == "accounts"):
        con.execute(
            f'create or replace table "{name}" as '
            f'select * from "{name}" where account_id is null or {account_predicate(shard)}'
        )


def collect_parts(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    dataset: str,
    cycle: str,
    shards: list[Shard],
    tables: tuple[str, ...],
) -> dict[str, int]:
    """Write the cycle's partition ``lake/<dataset>/cycle=C`` from the shards' parts in one swap (one shard: its
    files linked, not copied); returns the row count of each table. The parts stay until ``remove_parts``."""
    parts = [partition_dir(shard_dir(lake, dataset, cycle, shard), dataset, cycle=cycle) for shard in shards]
    missing = [str(part) for part in parts if not part.exists()]
    if missing:
        raise FileNotFoundError(
            f"market shard parts missing: {missing}. Fix: run the cycle's {dataset} again"
        )
    target = partition_dir(lake, dataset, cycle=cycle)
    present = [name for name in tables if (parts[0] / f"{name}.parquet").exists()]
    if len(parts) == 1:
        staged = StagedPartition(lake, target)
        counts = {}
        for name in present:
            os.link((parts[0] / f"{name}.parquet").resolve(), staged.path(name))
            counts[name] = pl.scan_parquet(staged.path(name)).select(pl.len()).collect().item()
        staged.commit()
        return counts
    return replace_partition(
        lake,
        target,
        {
            name: con.sql(
                f"select * from read_parquet({parquet_glob([p / f'{name}.parquet' for p in parts])}, "
                "union_by_name = true, hive_partitioning = false)"
            )
            for name in present
        },
    )


def remove_parts(lake: Path, dataset: str, cycle: str) -> None:
    """Remove the shards' parts of a collected cycle (their version folders and links)."""
    folder = lake / SHARDS / dataset / f"cycle={cycle}"
    if not folder.exists():
        return
    for link in folder.iterdir():
        if link.is_symlink():
            shutil.rmtree(os.path.realpath(link), ignore_errors=True)
            link.unlink()
    shutil.rmtree(folder, ignore_errors=True)


def collect_rated(
    con: duckdb.DuckDBPyConnection, lake: Path, cycle: str, shards: list[Shard]
) -> dict[str, int]:
    """The rating of the whole cycle from its shards' parts: ``lake/rated/cycle=C`` in one swap and the view
    ``rating_outcomes`` over it (what ``rating.rate_cycle`` returns and leaves, for ``rerating.rerate_cycle``)."""
    counts = collect_parts(con, lake, RATED, cycle, shards, RATED_TABLES)
    rating_outcomes_view(con, lake, cycle)
    return counts
