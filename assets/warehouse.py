"""The analysts' warehouse asset: ``warehouse.duckdb`` built aside (keeping the large tables' unchanged parts)
and swapped in after each run."""

import dagster as dg

from assets.commissions import agent_commissions
from assets.documents import deliveries
from assets.metadata import counts
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.warehouse import publish_warehouse


@dg.asset(
    partitions_def=bill_cycles,
    group_name="warehouse",
    kinds={"duckdb"},
    deps=[deliveries, agent_commissions],
)
def warehouse(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """The published analyst warehouse (files, usage, suspense, duplicates, rated usage, masked accounts,
    invoices, taxes, payments, deliveries, commissions, rerate deltas … see docs/WAREHOUSE.md); analysts open it
    read-only and are never blocked by a run."""
    home = cdrbill.home()
    publication = publish_warehouse(
        home, cdrbill.reference(), memory_limit=cdrbill.settings().duckdb_memory_limit
    )
    return dg.MaterializeResult(
        metadata={
            **counts(publication.counts),
            # full: every part read from the lake; incremental: only the loaded files and rated cycles changed
            "publication": dg.MetadataValue.text(publication.mode),
            "parts_read": dg.MetadataValue.int(publication.parts_read),
            "parts_kept": dg.MetadataValue.int(publication.parts_kept),
            "path": dg.MetadataValue.path(str(home.warehouse_db)),
        }
    )
