"""The bounces asset: delivery status reports read from the bounce mailbox before the cycle's invoices are sent,
so an account whose e-mail keeps bouncing gets this cycle's invoice on paper, with a notice."""

import os

import dagster as dg

from assets.billing import invoices
from assets.metadata import counts, rows_md
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.bounces import bounce_mailbox, process_bounces
from pipeline.home import TEMPLATES_DIR
from pipeline.state import open_state


@dg.asset(partitions_def=bill_cycles, group_name="delivery", kinds={"email"}, deps=[invoices])
def bounces(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """Bounce reports (RFC 3464) read from the bounce Maildir and matched to invoices; accounts with a hard
    bounce or too many soft bounces in a row switched to paper, with a notice printed for their address."""
    home, settings = cdrbill.home(), cdrbill.settings()
    folder = bounce_mailbox(os.environ, home.root)
    notices = home.print_dir / context.partition_key / "notices"
    with open_state(home.state_db) as state:
        report = process_bounces(
            state,
            folder,
            cdrbill.reference().accounts,
            settings.soft_bounce_limit,
            context.partition_key,
            notices,
            TEMPLATES_DIR,
            settings.carrier_name,
            settings.billing_questions_phone,
        )
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "reports_read": report.files_read - report.not_reports,
                    "not_reports": report.not_reports,
                    "hard": report.hard,
                    "soft": report.soft,
                    "success": report.success,
                    "unmatched": report.unmatched,
                    "already_recorded": report.already_recorded,
                    "switched_to_paper": len(report.switched_to_paper),
                }
            ),
            "dagster/row_count": report.hard + report.soft + report.success,
            "bounce_mailbox": dg.MetadataValue.path(str(folder)),
            "switched": rows_md(
                [
                    {"account": a, "notice": p.name}
                    for a, p in zip(report.switched_to_paper, report.notices, strict=True)
                ],
                20,
            ),
        }
    )
