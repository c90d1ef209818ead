"""Rating asset: the cycle's rated usage, with the record accounting check that blocks billing."""

from datetime import UTC, datetime

import dagster as dg

from assets.checks import record_accounting_result
from assets.mediation import mediated_usage
from assets.metadata import counts, markdown_table
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.engine import session
from pipeline.rerating import rerate_cycle
from pipeline.state import open_state


@dg.asset(
    partitions_def=bill_cycles,
    group_name="rating",
    kinds={"duckdb", "parquet"},
    deps=[mediated_usage],
    check_specs=[
        dg.AssetCheckSpec(
            "every_record_accounted_for",
            asset="rated_usage",
            blocking=True,
            description="per file and cycle: records in = rated + suspended + duplicate + discarded, none twice",
        )
    ],
)
def rated_usage(context: dg.AssetExecutionContext, cdrbill: CdrbillHome):
    """The cycle's rated events: price book by agent × plan × state, longest-prefix destination, billing
    increments, connect fee, exact charge and how it was priced; unratable events to suspense."""
    home, settings = cdrbill.home(), cdrbill.settings()
    with session(
        cdrbill.reference(), memory_limit=settings.duckdb_memory_limit, spill_dir=home.root / "tmp"
    ) as con:
        # a re-materialisation is a rerating: delta report, and adjustments when the cycle is already final
        with open_state(home.state_db) as state:
            result = rerate_cycle(
                con, home.lake, state, context.partition_key, posted_at=datetime.now(UTC).replace(tzinfo=None)
            )
        by_destination = con.sql(
            "select rate_card_id, destination, count(*) as events, sum(billed_seconds) as billed_seconds, "
            "sum(charge_amount) as charge_amount from rating_outcomes where rating_reason is null "
            "group by all order by charge_amount desc"
        ).pl()
        total = con.sql("select coalesce(sum(charge_amount), 0)::varchar from rating_outcomes").fetchall()[0][
            0
        ]
    yield dg.Output(
        None,
        metadata={
            **counts(
                {
                    "rated": result["rated"],
                    "suspended_in_rating": result["suspended"],
                    "rated_amount": total,
                    "rerate_changed_events": result["changed_events"],
                    "rerate_adjustments_posted": result["adjustments_posted"],
                }
            ),
            "dagster/row_count": result["rated"],
            "by_destination": markdown_table(by_destination),
        },
    )
    yield record_accounting_result(cdrbill, context.partition_key, "every_record_accounted_for")
