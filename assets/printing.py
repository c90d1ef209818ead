"""The print batch asset: the cycle's paper invoices and notices merged for the print shop, after approval."""

import dagster as dg

from assets.documents import deliveries
from assets.metadata import counts, markdown_table
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.approval import current_approval
from pipeline.print_batches import build_print_batch
from pipeline.state import open_state


@dg.asset(
    partitions_def=bill_cycles,
    group_name="delivery",
    kinds={"pdf", "csv"},
    deps=[deliveries, "payment_reminders", "credit_note_deliveries"],
)
def print_batch(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """One merged PDF + manifest of the cycle's paper invoices and notices not printed yet, presorted by ZIP;
    documents whose postal address is incomplete or malformed are held in rejects.csv, never printed."""
    cycle = context.partition_key
    home, settings = cdrbill.home(), cdrbill.settings()
    batch_dir = home.print_dir / cycle / "batches"
    with open_state(home.state_db) as state:
        if current_approval(state, cycle) is None:
            context.log.warning(f"cycle {cycle}: pending approval, nothing printed")
            return dg.MaterializeResult(metadata=counts({"printed": 0, "pending_approval": 1}))
        batch = build_print_batch(
            state,
            cycle,
            home.documents / cycle,
            batch_dir,
            cdrbill.reference().accounts,
            settings.print_duplex,
        )
        in_batches = state.execute(
            "select count(*), count(distinct batch_id) from print_batch_items where cycle = ?", [cycle]
        ).fetchall()[0]
    if batch.rejects.height:
        context.log.warning(
            f"cycle {cycle}: {batch.rejects.height} paper documents held for their postal address"
        )
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "printed": batch.manifest.height,
                    "pages": batch.pages,
                    "rejected_addresses": batch.rejects.height,
                    "batch": batch.batch_id or "",
                    "printed_in_cycle": int(in_batches[0]),
                    "batches_in_cycle": int(in_batches[1]),
                    "pending_approval": 0,
                }
            ),
            "dagster/row_count": batch.manifest.height,
            "folder": dg.MetadataValue.path(str(batch_dir)),
            "manifest": markdown_table(batch.manifest.drop("sha256"), 10),
            "rejects": markdown_table(batch.rejects, 10),
        }
    )
