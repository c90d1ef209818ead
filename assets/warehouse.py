"""The analysts' warehouse asset: ``warehouse.duckdb`` built aside (keeping the large tables' unchanged parts)
and swapped in after each run."""

import dagster as dg

from assets.commissions import agent_commissions
from assets.documents import deliveries
from assets.metadata import counts
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.warehouse import publish_warehouse


class WarehouseConfig(dg.Config):
    full: bool = False  # read every part from the lake again (e.g. after editing the lake by hand)


@dg.asset(
    partitions_def=bill_cycles,
    group_name="warehouse",
    kinds={"duckdb"},
    deps=[deliveries, agent_commissions],
)
def warehouse(
    context: dg.AssetExecutionContext, config: WarehouseConfig, cdrbill: CdrbillHome
) -> dg.MaterializeResult:
    """The published analyst warehouse (files, usage, suspense, duplicates, rated usage, masked accounts,
    invoices, taxes, payments, deliveries, commissions, rerate deltas … see docs/WAREHOUSE.md); analysts open it
    read-only and are never blocked by a run. Only the large tables' parts that changed are read again, unless the
    run's config says ``full``."""
    home = cdrbill.home()
    publication = publish_warehouse(
        home, cdrbill.reference(), memory_limit=cdrbill.settings().duckdb_memory_limit, full=config.full
    )
    return dg.MaterializeResult(
        metadata={
            **counts(publication.counts),
            # full: every part read from the lake; incremental: only the loaded files and cycles that changed
            "publication": dg.MetadataValue.text(publication.mode),
            "parts_read": dg.MetadataValue.int(publication.parts_read),
            "parts_kept": dg.MetadataValue.int(publication.parts_kept),
            "why_full": dg.MetadataValue.text(publication.why_full or "(incremental)"),
            "path": dg.MetadataValue.path(str(home.warehouse_db)),
        }
    )
