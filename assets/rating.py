"""Rating asset: the cycle's rated usage, with the record accounting check that blocks billing. Rated per market
shard (one step each) and collected into one partition (docs/SCALE_LOG.md, "Scale-out")."""

from datetime import UTC, datetime

import dagster as dg

from assets.checks import record_accounting_result
from assets.metadata import counts, markdown_table
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from assets.shards import all_shards, cycle_market_shards, shard_of
from pipeline.engine import scalar, session
from pipeline.rating import RATED
from pipeline.rerating import rerate_cycle
from pipeline.shards import collect_rated, rate_shard, remove_parts
from pipeline.state import open_state

ACCOUNTING_CHECK = dg.AssetCheckSpec(
    "every_record_accounted_for",
    asset="rated_usage",
    blocking=True,
    description="per file and cycle: records in = rated + suspended + duplicate + discarded, none twice",
)


@dg.op
def rate_market_shard(context: dg.OpExecutionContext, cdrbill: CdrbillHome, shard_key: str) -> str:
    """Rate the normalised events of one market shard's accounts into the shard's part of the lake."""
    home, settings = cdrbill.home(), cdrbill.settings()
    shard = shard_of(cdrbill, shard_key)  # before the session: its reference load is not held during rating
    with session(
        cdrbill.reference(), memory_limit=settings.rating_memory_limit, spill_dir=home.root / "tmp"
    ) as con:
        result = rate_shard(con, home.lake, context.partition_key, shard)
    context.log.info(f"market shard {shard_key}: {result['rated']} rated, {result['suspended']} suspended")
    return shard_key


@dg.op(out={"result": dg.Out(dg.Nothing), "accounting": dg.Out()})
def collect_rated_usage(context: dg.OpExecutionContext, cdrbill: CdrbillHome, shard_keys: list[str]):
    """The cycle's rating from its shards' parts, in one swap; a re-materialisation is a rerating: delta report,
    and adjustments (one transaction) when the cycle is already final."""
    home, settings = cdrbill.home(), cdrbill.settings()
    cycle = context.partition_key
    shards = all_shards(cdrbill, shard_keys)
    with session(
        cdrbill.reference(), memory_limit=settings.rating_memory_limit, spill_dir=home.root / "tmp"
    ) as con:
        with open_state(home.state_db) as state:
            result = rerate_cycle(
                con,
                home.lake,
                state,
                cycle,
                posted_at=datetime.now(UTC).replace(tzinfo=None),
                rate=lambda con, lake, cycle: collect_rated(con, lake, cycle, shards),
            )
        remove_parts(home.lake, RATED, cycle)
        by_destination = con.sql(
            "select rate_card_id, destination, count(*) as events, sum(billed_seconds) as billed_seconds, "
            "sum(charge_amount) as charge_amount from rating_outcomes where rating_reason is null "
            "group by all order by charge_amount desc"
        ).pl()
        total = scalar(con, "select coalesce(sum(charge_amount), 0)::varchar from rating_outcomes")
    yield dg.Output(
        None,
        "result",
        metadata={
            **counts(
                {
                    "rated": result["rated"],
                    "suspended_in_rating": result["suspended"],
                    "rated_amount": total,
                    "rerate_changed_events": result["changed_events"],
                    "rerate_adjustments_posted": result["adjustments_posted"],
                    "market_shards": len(shards),
                }
            ),
            "dagster/row_count": result["rated"],
            "by_destination": markdown_table(by_destination),
        },
    )
    yield record_accounting_result(
        cdrbill,
        cycle,
        "every_record_accounted_for",
        asset="rated_usage",
        memory_limit=settings.rating_memory_limit,
    )


@dg.graph_asset(
    partitions_def=bill_cycles,
    group_name="rating",
    kinds={"duckdb", "parquet"},
    ins={"mediated_usage": dg.AssetIn(dagster_type=dg.Nothing)},
    check_specs=[ACCOUNTING_CHECK],
)
def rated_usage(mediated_usage):
    """The cycle's rated events: price book by agent × plan × state, longest-prefix destination, billing
    increments, connect fee, exact charge and how it was priced; unratable events to suspense."""
    result, accounting = collect_rated_usage(
        cycle_market_shards(mediated_usage).map(rate_market_shard).collect()
    )
    return {"result": result, "rated_usage_every_record_accounted_for": accounting}
