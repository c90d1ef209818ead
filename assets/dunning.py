"""The payment reminder asset: dunning notices for invoices past due, after the cycle's approval."""

import os
from datetime import date

import dagster as dg

from assets.documents import deliveries
from assets.metadata import counts
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.approval import current_approval
from pipeline.dunning import send_payment_reminders
from pipeline.engine import scalar
from pipeline.home import TEMPLATES_DIR
from pipeline.smtp import transport_for
from pipeline.state import open_state


class RemindersConfig(dg.Config):
    """The day reminders are decided for (YYYY-MM-DD); empty: the issue date of the cycle's invoices (the day
    of its bill run), so a re-run of the cycle decides the same reminders whatever day it runs."""

    as_of: str = ""


@dg.asset(partitions_def=bill_cycles, group_name="delivery", kinds={"email", "pdf"}, deps=[deliveries])
def payment_reminders(
    context: dg.AssetExecutionContext, config: RemindersConfig, cdrbill: CdrbillHome
) -> dg.MaterializeResult:
    """Payment reminders by level (days past due, settings dunning_levels) on each invoice's undisputed past-due
    amount, once per invoice and level, by e-mail or paper like the account's invoices."""
    cycle = context.partition_key
    home, settings = cdrbill.home(), cdrbill.settings()
    with open_state(home.state_db) as state:
        issued = scalar(state, "select max(issue_date) from invoices where cycle = ?", [cycle])
        as_of = date.fromisoformat(config.as_of) if config.as_of else issued or cdrbill.cycle(cycle).end
        if current_approval(state, cycle) is None:
            context.log.warning(f"cycle {cycle}: pending approval, no reminders sent")
            return dg.MaterializeResult(metadata=counts({"reminders": 0, "pending_approval": 1}))
        report = send_payment_reminders(
            state,
            cycle,
            as_of,
            settings.dunning_levels,
            cdrbill.reference().accounts,
            home.documents / cycle / "reminders",
            settings.sender_email,
            TEMPLATES_DIR,
            transport_for(
                os.environ,
                home.outbox,
                settings.sender_email,
                attempts=settings.smtp_attempts,
                retry_delay_s=settings.smtp_retry_delay_s,
            ),
        )
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "reminders": report.sent,
                    **{f"level_{level}": n for level, n in report.by_level.items()},
                    "emailed": report.emailed,
                    "to_print": report.printed,
                    "recovered_from_outbox": report.recovered_from_outbox,
                    "failed_retryable": report.failed,
                    "as_of": as_of.isoformat(),
                    "pending_approval": 0,
                }
            ),
            "dagster/row_count": report.sent,
        }
    )
