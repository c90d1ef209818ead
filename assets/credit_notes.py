"""The credit note asset: each credit note against the cycle's invoices as a PDF, delivered once."""

import os

import dagster as dg

from assets.documents import deliveries
from assets.metadata import counts, rows_md
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.approval import current_approval
from pipeline.bounces import preference_overrides
from pipeline.credit_note_documents import credit_note_documents, deliver_credit_notes
from pipeline.home import TEMPLATES_DIR
from pipeline.smtp import transport_for
from pipeline.state import open_state


@dg.asset(partitions_def=bill_cycles, group_name="delivery", kinds={"pdf", "email"}, deps=[deliveries])
def credit_note_deliveries(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """Credit notes issued against the cycle's invoices: each rendered as its own PDF and delivered once, by
    e-mail or into the print batch like the account's invoices; nothing before the cycle's approval."""
    cycle = context.partition_key
    home, settings = cdrbill.home(), cdrbill.settings()
    with open_state(home.state_db) as state:
        if current_approval(state, cycle) is None:
            context.log.warning(f"cycle {cycle}: pending approval, no credit note delivered")
            return dg.MaterializeResult(metadata=counts({"credit_notes": 0, "pending_approval": 1}))
        docs = credit_note_documents(state, cycle, cdrbill.reference().accounts, TEMPLATES_DIR)
        report = deliver_credit_notes(
            state,
            docs,
            home.documents / cycle,
            transport_for(
                os.environ,
                home.outbox,
                settings.sender_email,
                attempts=settings.smtp_attempts,
                retry_delay_s=settings.smtp_retry_delay_s,
            ),
            settings.sender_email,
            TEMPLATES_DIR,
            preference_overrides(state),
        )
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "credit_notes": len(docs),
                    "rendered": report.rendered,
                    "emailed": report.emailed,
                    "to_print": report.printed,
                    "already_delivered": report.already_delivered,
                    "failed_retryable": report.failed_retryable,
                    "rejected": report.rejected,
                    "recovered_by_message_id": report.recovered_by_message_id,
                    "pending_approval": 0,
                }
            ),
            "dagster/row_count": report.emailed + report.printed,
            "folder": dg.MetadataValue.path(str(home.documents / cycle / "credit_notes")),
            "failures": rows_md(
                [{"credit_note": k, "reason": v} for k, v in sorted(report.failures.items())], 20
            ),
        }
    )
