"""Record accounting: every record that enters leaves by exactly one door. For each file and for the cycle,
records in = rated + suspended + duplicate + discarded (mediation suspense and rating suspense together)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from pipeline.engine import session
from pipeline.lake import lake_table
from pipeline.mediation import MEDIATED, cycle_records
from pipeline.rating import RATED, rated_events_sql
from pipeline.settings import load_settings

# where each record of a cycle can leave: outcome name → (lake dataset, table)
MEDIATION_OUTCOMES = {
    "normalised": (MEDIATED, "normalised"),
    "suspended": (MEDIATED, "suspended"),
    "duplicate": (MEDIATED, "duplicate"),
    "discarded": (MEDIATED, "discarded"),
}
OUTCOMES = {
    "rated": (RATED, "rated"),
    "suspended": (MEDIATED, "suspended"),
    "suspended_in_rating": (RATED, "suspended"),
    "duplicate": (MEDIATED, "duplicate"),
    "discarded": (MEDIATED, "discarded"),
}
LINE_BLOCK = 65536  # lines of a file per bitmap of the lines seen (8 KiB each): record_accounting


def record_accounting(
    con: duckdb.DuckDBPyConnection, lake: Path, cycle: str, outcomes: dict[str, tuple[str, str]] = OUTCOMES
) -> pl.DataFrame:
    """One row per file with records in the cycle: records_in, each outcome's count, ``counted_twice`` (the
    outcomes beyond one per record: a record in two streams counts 1), ``unmatched`` (records with no outcome
    plus outcomes of no record of the cycle) and ``balanced`` (in = the sum of the outcomes, nothing counted
    twice, nothing unmatched: every record leaves by exactly one door). By default the outcomes are the final
    ones (rated + suspended + duplicate + discarded); ``MEDIATION_OUTCOMES`` checks mediation.

    The records and the outcomes are compared line for line without a hash table of every record (it grows
    with the cycle: at 50M records under a 2GB limit DuckDB could not allocate it, docs/SCALE_LOG.md): each
    side is counted per file and block of ``LINE_BLOCK`` lines beside a bitmap of the block's lines, so the
    memory grows with the blocks, not the records."""
    cycle_records(con, lake, cycle)
    parts = " union all ".join(
        f"select file_id, line_no, '{name}' as outcome from {_outcome_source(lake, cycle, dataset, table)}"
        for name, (dataset, table) in outcomes.items()
    )
    counts = ", ".join(f"count(*) filter (where outcome = '{name}') as {name}" for name in outcomes)
    lines = f"bitstring_agg((line_no % {LINE_BLOCK})::integer, 0, {LINE_BLOCK - 1}) as lines"
    per_file = ", ".join(f"coalesce(sum({n}), 0)::bigint as {n}" for n in ("records_in", *outcomes))
    return (
        con.sql(
            f"""
        with outcomes as ({parts}),
        records_in as (
            select file_id, line_no // {LINE_BLOCK} as block, count(*) as records_in, {lines}
            from cycle_records
            group by all
        ),
        out as (
            select file_id, line_no // {LINE_BLOCK} as block, count(*) as outcomes, {counts}, {lines}
            from outcomes
            group by all
        )
        select
            file_id,
            {per_file},
            coalesce(sum(out.outcomes - bit_count(out.lines)), 0)::bigint as counted_twice,
            sum(
                case
                    when out.lines is null then bit_count(records_in.lines)
                    when records_in.lines is null then bit_count(out.lines)
                    else bit_count(xor(records_in.lines, out.lines))
                end
            )::bigint as unmatched
        from records_in
        full join out using (file_id, block)
        group by file_id
        order by file_id
        """
        )
        .pl()
        .with_columns(
            balanced=(pl.col("records_in") == pl.sum_horizontal(list(outcomes)))
            & (pl.col("counted_twice") == 0)
            & (pl.col("unmatched") == 0)
        )
    )


def checked_record_accounting(
    lake: Path,
    cycle: str,
    outcomes: dict[str, tuple[str, str]] = OUTCOMES,
    *,
    memory_limit: str,
    spill_dir: Path,
) -> pl.DataFrame:
    """``record_accounting`` as the blocking checks run it, in a session of its own bounded by ``memory_limit``
    (the checked stage's own limit) and spilling into ``spill_dir``. Rule: a check must not need more memory than
    the stage it checks — finding a record counted twice groups every record of the cycle by its key, which
    grows with the cycle (10M records: 707 MiB in the shared 2GB session, 456 MiB at 512MB; docs/SCALE_LOG.md,
    "The 50M month, run")."""
    with session(memory_limit=memory_limit, spill_dir=spill_dir) as con:
        return record_accounting(con, lake, cycle, outcomes)


def home_record_accounting(lake: Path, cycle: str) -> pl.DataFrame:
    """The cycle's final record accounting read outside a stage (the run's summary, the approval's blocking
    checks) under the same bound as the rating stage's check, which it repeats: the home's
    ``rating_memory_limit``, spilling into the home's ``tmp/`` (the home is the lake folder's parent). At 50M
    records the shared 2GB session took ~1.5 GiB for this table alone (docs/SCALE_LOG.md, "The 50M month, run")."""
    home = lake.parent
    limit = load_settings(home / "reference").rating_memory_limit
    return checked_record_accounting(lake, cycle, memory_limit=limit, spill_dir=home / "tmp")


def _outcome_source(lake: Path, cycle: str, dataset: str, table: str) -> str:
    """Where one outcome's records are read: the rated events through their one reader (the narrow fact joined
    to the mediated partition: a rated event missing from it fails the check), any other table as written."""
    if (dataset, table) == (RATED, "rated"):
        return f"({rated_events_sql(lake, cycle)})"
    return f"read_parquet('{lake_table(lake, dataset, table, cycle=cycle).as_posix()}')"
