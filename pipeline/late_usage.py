"""Late usage: calls whose bill cycle was already final when they reached the pipeline are billed once, on the
next open cycle, never on the closed one.

Billing rules applied here (docs/ARCHITECTURE.md, "Late usage"):

* a record is **late** when the cycle its call falls in (``cycle`` of the usage record) is in
  ``finalized_cycles`` and the record reached the pipeline after that: its file was registered after the cycle
  was finalised (``route = late_file``), or a recycle run after it read the suspended record again and found it
  clean (``route = recycled``: ``recycled_records.new_status = 'ok'``). The closed cycle's invoices never
  change, so such a record would otherwise never be billed;
* it is billed by the **next open cycle**: the first cycle after its own that is not final. The routing is a
  state ledger (``late_usage``, one row per record, inserted once): a re-run of either cycle routes nothing
  again, and a record routed once is never routed again (even when it is recycled later);
* the closed cycle no longer counts it (its mediation leaves it out, whether routed yet or not); the billing
  cycle counts it among its own records in (in = rated + suspended + duplicate + discarded), under its file;
* a late record whose call is more than ``late_usage_max_age_days`` before the first day of the billing cycle
  is suspended ``LATE_USAGE_TOO_OLD`` there instead of billed;
* it is rated with the rates in effect at its call time (price books resolve by call date, as for any event)
  and without any allowance (rating leaves ``late_from_cycle`` events out of the allowances: the closed cycle's
  allowance is not re-opened, and the current one belongs to the current cycle's usage).

Each cycle's routing is written to ``lake/late_usage/cycle=C/routes.parquet`` before the cycle is mediated:
the records it bills late (``billed_cycle = C``) and its own records that are late (``call_cycle = C``, billed
elsewhere or still waiting for an open cycle to run). ``mediation.cycle_records`` reads it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipeline.cycles import BillCycle
from pipeline.faults import crash_point
from pipeline.intake import USAGE_RECORDS
from pipeline.lake import lake_table, partition_dir, replace_partition

LATE_USAGE = "late_usage"  # lake dataset: lake/late_usage/cycle=C/routes.parquet
LATE_USAGE_TOO_OLD = "LATE_USAGE_TOO_OLD"
ROUTE_SCHEMA = {
    "file_id": pl.Int32(),
    "line_no": pl.UInt32(),
    "call_cycle": pl.String(),
    "billed_cycle": pl.String(),  # null: waits for the next open cycle to run
    "route": pl.String(),
    "late_reason": pl.String(),  # LATE_USAGE_TOO_OLD for a billed record too old to bill, else null
}


@dataclass(frozen=True)
class LateRouting:
    """What routing did for one cycle: records routed to it now, late records it bills (of which too old),
    and its own late records it leaves out."""

    routed_now: int
    billed_here: int
    too_old: int
    left_out: int


def next_open_cycle(call_cycle: str, finalized: set[str]) -> str:
    """The cycle that bills late usage of ``call_cycle``: the first cycle after it that is not final."""
    cycle = BillCycle.parse(call_cycle)
    while True:
        cycle = BillCycle.parse((cycle.end + timedelta(days=1)).strftime("%Y-%m"))
        if cycle.key not in finalized:
            return cycle.key


def late_records(state: duckdb.DuckDBPyConnection, lake: Path) -> pl.DataFrame:
    """Every late record in the lake (file_id, line_no, call_cycle, call_date, route): its call's cycle is
    final and its file was registered, or the record recycled, after that cycle was finalised. Only the files
    that can hold late records are read — a file registered after some cycle was final, for the records of
    the cycles final before it (a predicate on ``cycle`` in each file's scan: row groups of later calls are
    skipped), and the lines a recycle run found clean after their cycle was final — never the whole lake."""
    empty = pl.DataFrame(schema={**{k: ROUTE_SCHEMA[k] for k in ("file_id", "line_no")},
                                 "call_cycle": pl.String(), "call_date": pl.Date(), "route": pl.String()})  # fmt: skip
    late_files = state.sql(
        """
        select usage_files.file_id, list(finalized_cycles.cycle order by finalized_cycles.cycle) as cycles
        from usage_files
        join finalized_cycles on usage_files.registered_at > finalized_cycles.finalized_at
        where usage_files.status = 'loaded'
        group by usage_files.file_id
        order by usage_files.file_id
        """
    ).fetchall()
    recycled = state.sql(
        """
        -- records a recycle run read again and found clean (parse/normalise suspense left behind) after their
        -- cycle was final; mediation and rating suspense resubmitted to a rebuild is re-decided in its own cycle
        select recycled_records.file_id::integer as file_id, recycled_records.line_no::uinteger as line_no
        from recycled_records
        join finalized_cycles using (cycle)
        where recycled_records.new_status = 'ok'
        group by all
        having max(recycled_records.recycled_at) > any_value(finalized_cycles.finalized_at)
        """
    ).pl()
    parts = []
    for file_id, cycles in late_files:
        path = _records_path(lake, file_id)
        if path is not None:
            listed = ", ".join("'" + c.replace("'", "''") + "'" for c in cycles)
            parts.append(
                f"select file_id, line_no, cycle, call_date, 'late_file' as route "
                f"from read_parquet('{path.as_posix()}', hive_partitioning = false) where cycle in ({listed})"
            )
    for file_id in sorted(set(recycled["file_id"].to_list())):
        path = _records_path(lake, file_id)
        if path is not None:
            parts.append(
                f"select file_id, line_no, cycle, call_date, 'recycled' as route "
                f"from read_parquet('{path.as_posix()}', hive_partitioning = false) "
                f"semi join recycled_ok using (file_id, line_no) "
                f"where cycle in (select cycle from finalized_cycles)"
            )
    if not parts:
        return empty
    state.register("recycled_ok", recycled)
    try:
        return state.sql(
            f"""
            with late as (
                {" union all ".join(parts)}
            )
            select file_id, line_no, cycle as call_cycle, call_date, min(route) as route  -- late_file first
            from late
            group by all
            order by file_id, line_no
            """
        ).pl()
    finally:
        state.unregister("recycled_ok")


def _records_path(lake: Path, file_id: int) -> Path | None:
    """A loaded file's usage records, if its partition exists."""
    path = lake_table(lake, USAGE_RECORDS, "records", file_id=file_id)
    return path if path.exists() else None


def route_late_usage(
    state: duckdb.DuckDBPyConnection,
    lake: Path,
    cycle: str,
    *,
    routed_at: datetime,
    max_age_days: int = 90,
) -> LateRouting:
    """Route late usage for ``cycle`` before it is mediated: when the cycle is open, record in ``late_usage``
    (one transaction, insert-once) the late records it is the next open cycle for; then write the cycle's
    routes (``lake/late_usage/cycle=C/routes.parquet``): the records it bills late, too-old ones marked
    ``LATE_USAGE_TOO_OLD``, and its own late records, which it leaves out. The routes of every cycle with
    late calls are rewritten too (from the same ledger, read for those cycles only), so each cycle's records
    in stay true. A kill between the ledger's commit and the routes' swap (fail point
    ``late_usage.ledger_written``) leaves the ledger deciding: the next run routes nothing again and writes the
    same routes."""
    finalized = {row[0] for row in state.sql("select cycle from finalized_cycles").fetchall()}
    late = late_records(state, lake)
    if cycle not in finalized and late.height:
        # the next open cycle is decided once per distinct call cycle, then mapped onto the records
        next_open = {c: next_open_cycle(c, finalized) for c in late["call_cycle"].unique().to_list()}
        due = late.with_columns(
            billed_cycle=pl.col("call_cycle").replace_strict(next_open, return_dtype=pl.String())
        ).filter(pl.col("billed_cycle") == cycle)
        if due.height:
            state.register("late_due", due)
            state.execute("begin transaction")
            try:
                state.execute(
                    """
                    insert into late_usage
                    select file_id, line_no, call_cycle, billed_cycle, route, ?::timestamp from late_due
                    on conflict do nothing
                    """,
                    [routed_at],
                )
                state.execute("commit")
            except Exception:
                state.execute("rollback")
                raise
            finally:
                state.unregister("late_due")
            crash_point("late_usage.ledger_written")  # routed in the ledger, the routes not yet in the lake
    routed_now = int(
        state.sql(
            "select count(*) from late_usage where billed_cycle = ? and routed_at = ?",
            params=[cycle, routed_at],
        ).fetchall()[0][0]
    )
    # the routes of every cycle this run can change, from the ledger and the late records, so that a closed
    # cycle's records in stop counting its late calls as soon as any cycle is mediated (a closed cycle is not
    # necessarily run again): this cycle, and each cycle with late calls (routed now, waiting, or routed before).
    # Only their ledger rows are read; another cycle's routes cannot change (its rows and late calls are not new)
    concerned = sorted({cycle} | set(late["call_cycle"].to_list()))
    ledger = state.sql(
        """
        select file_id, line_no, call_cycle, billed_cycle, route
        from late_usage
        where list_contains($cycles, billed_cycle) or list_contains($cycles, call_cycle)
        """,
        params={"cycles": concerned},
    ).pl()
    billed = ledger.join(
        late.select("file_id", "line_no", "call_date"), on=["file_id", "line_no"], how="left"
    )
    billed = billed.with_columns(
        late_reason=pl.when(
            pl.col("call_date") < pl.col("billed_cycle").str.to_date("%Y-%m") - pl.duration(days=max_age_days)
        )
        .then(pl.lit(LATE_USAGE_TOO_OLD))
        .otherwise(pl.lit(None, pl.String()))
    )
    left_out = late.join(
        ledger.select("file_id", "line_no", "billed_cycle"), on=["file_id", "line_no"], how="left"
    ).with_columns(late_reason=pl.lit(None, pl.String()))
    written = {}
    for each in concerned:
        routes = pl.concat(
            [
                frame.filter(pl.col(column) == each).select(
                    pl.col(k).cast(t) for k, t in ROUTE_SCHEMA.items()
                )
                for frame, column in ((billed, "billed_cycle"), (left_out, "call_cycle"))
            ]
        ).sort("file_id", "line_no")
        target = partition_dir(lake, LATE_USAGE, cycle=each)
        current = lake_table(lake, LATE_USAGE, "routes", cycle=each)
        # written aside and swapped in when it changed (a cycle late usage never concerned has no file)
        changed = not pl.read_parquet(current).equals(routes) if current.exists() else routes.height > 0
        if changed:
            replace_partition(lake, target, {"routes": routes})
        written[each] = routes
    mine = written[cycle]
    return LateRouting(
        routed_now=routed_now,
        billed_here=mine.filter(pl.col("billed_cycle") == cycle).height,
        too_old=mine.filter(pl.col("late_reason").is_not_null()).height,
        left_out=mine.filter(pl.col("call_cycle") == cycle).height,
    )


def routes_path(lake: Path, cycle: str) -> Path | None:
    """The cycle's routes file, if late usage ever concerned it."""
    path = lake_table(lake, LATE_USAGE, "routes", cycle=cycle)
    return path if path.exists() else None


def routed_records_sql(source: str, cycle: str, routes: Path | None) -> str:
    """The records of ``cycle`` from the usage records ``source`` (a ``read_parquet`` of every loaded file):
    its own calls less its late ones, plus the late calls it bills — those with ``cycle`` set to the billing
    cycle, ``late_from_cycle`` = the call's cycle and, when too old, suspended ``LATE_USAGE_TOO_OLD``. Every
    record carries ``late_from_cycle`` (null when on time)."""
    quoted = cycle.replace("'", "''")
    if routes is None:
        return f"select *, null::varchar as late_from_cycle from {source} where cycle = '{quoted}'"
    routes_sql = f"read_parquet('{routes.as_posix()}', hive_partitioning = false)"
    return f"""
        select records.*, null::varchar as late_from_cycle
        from {source} as records
        anti join (select file_id, line_no from {routes_sql} where call_cycle = '{quoted}') as moved_out
            using (file_id, line_no)
        where records.cycle = '{quoted}'
        union all by name
        select
            records.* replace (
                '{quoted}' as cycle,
                case when moved_in.late_reason is not null and records.status = 'ok' then 'suspended'
                     else records.status end as status,
                case when moved_in.late_reason is not null and records.status = 'ok' then moved_in.late_reason
                     else records.reason end as reason
            ),
            moved_in.call_cycle as late_from_cycle
        from {source} as records
        join (select file_id, line_no, call_cycle, late_reason from {routes_sql} where billed_cycle = '{quoted}')
            as moved_in using (file_id, line_no)
    """


def billed_in(lake: Path, call_cycle: str, file_id: int, line_no: int | None = None) -> dict[int, str | None]:
    """Where the late records of ``call_cycle`` from one file (and line) went: line → the cycle that bills it
    (None: waiting for the next open cycle to run). Empty when none of them is late."""
    path = routes_path(lake, call_cycle)
    if path is None:
        return {}
    routes = pl.read_parquet(path).filter(
        (pl.col("call_cycle") == call_cycle) & (pl.col("file_id") == file_id)
    )
    if line_no is not None:
        routes = routes.filter(pl.col("line_no") == line_no)
    return dict(zip(routes["line_no"].to_list(), routes["billed_cycle"].to_list(), strict=True))


def late_usage_counts(lake: Path, cycle: str) -> dict[str, object]:
    """The cycle's late usage, from its routes: records it bills late (and from which cycles, how many too old),
    and its own late records billed in a later cycle or waiting for one."""
    path = routes_path(lake, cycle)
    routes = pl.read_parquet(path) if path else pl.DataFrame(schema=ROUTE_SCHEMA)
    billed = routes.filter(pl.col("billed_cycle") == cycle)
    own = routes.filter(pl.col("call_cycle") == cycle)
    return {
        "billed_here": billed.height,
        "from_cycles": sorted(billed["call_cycle"].unique().to_list()),
        "too_old": billed.filter(pl.col("late_reason").is_not_null()).height,
        "billed_later": own.filter(pl.col("billed_cycle").is_not_null()).height,
        "waiting": own.filter(pl.col("billed_cycle").is_null()).height,
    }
