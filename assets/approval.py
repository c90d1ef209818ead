"""The approval gate of delivery as Dagster sees it: the asset ``cycle_approval`` (approve by launching it — or
the job ``approve_cycle`` — with the run config ``approved_by``), and the pending-approval report the delivery
assets give while a cycle waits for it."""

import dagster as dg

from assets.documents import invoice_documents
from assets.metadata import counts, markdown_table
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.approval import (
    ApprovalError,
    approve_cycle,
    current_approval,
    review_sample,
    write_review_sample,
)
from pipeline.engine import scalar
from pipeline.state import open_state


class ApprovalConfig(dg.Config):
    """Who approves the cycle's delivery. Empty (the schedule's unattended run): nothing is approved, the
    cycle waits at the gate with its review sample."""

    approved_by: str = ""
    note: str = ""


def approval_metadata(cdrbill: CdrbillHome, cycle: str) -> dict[str, dg.MetadataValue]:
    """The gate's state as metadata: approved by/when, or the invoices pending approval; and the sample of
    invoices to review first (also written to ``documents/<cycle>/review_sample.csv``)."""
    home = cdrbill.home()
    with open_state(home.state_db) as state:
        approval = current_approval(state, cycle)
        pending = 0 if approval else int(scalar(state, "select count(*) from invoices where cycle = ?", [cycle]))
        reference = cdrbill.reference()
        sample = review_sample(state, cycle, reference.accounts, reference.document_preferences)
    path = write_review_sample(sample, home.documents / cycle)
    status = (
        {"approved_at": dg.MetadataValue.text(approval.approved_at.isoformat(sep=" ", timespec="seconds"))}
        if approval
        else {}
    )
    return {
        **counts({"pending_approval": pending, "approved_by": approval.approved_by if approval else ""}),
        **status,
        "review_sample": markdown_table(sample),
        "review_sample_file": dg.MetadataValue.path(str(path)),
    }


@dg.asset(partitions_def=bill_cycles, group_name="delivery", kinds={"duckdb"}, deps=[invoice_documents])
def cycle_approval(
    context: dg.AssetExecutionContext, config: ApprovalConfig, cdrbill: CdrbillHome
) -> dg.MaterializeResult:
    """A person's approval of the cycle's delivery (run config ``approved_by``), recorded once after the blocking
    checks pass again; without a name, the cycle's review sample and what waits for approval."""
    cycle = context.partition_key
    if config.approved_by.strip():
        home = cdrbill.home()
        with open_state(home.state_db) as state:
            try:
                approval, new = approve_cycle(
                    state, home.lake, cycle, config.approved_by, config.note or None
                )
            except ApprovalError as error:
                raise dg.Failure(description=str(error)) from error
        if new:
            context.log.info(f"cycle {cycle} approved for delivery by {approval.approved_by}")
        else:
            context.log.info(f"cycle {cycle} was already approved by {approval.approved_by}: kept")
    return dg.MaterializeResult(metadata=approval_metadata(cdrbill, cycle))
