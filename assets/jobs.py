"""The bill cycle job: every stage of one cycle partition, in order — in one process by default, one process per
step with the run config ``execution: {config: {multiprocess: {max_concurrent: N}}}``, or one Kubernetes pod per
step with ``CDRBILL_EXECUTOR=k8s`` (assets/executors.py)."""

import dagster as dg

from assets.executors import bill_cycle_executor
from assets.partitions import bill_cycles
from assets.resources import HOME_TAG, home_tag

CYCLE_EXECUTOR = bill_cycle_executor()
CYCLE_TAGS = {HOME_TAG: home_tag()}  # one run per home at a time on a queued instance (deploy/)

bill_cycle_job = dg.define_asset_job(
    "bill_cycle",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets("recycled_suspense")
    - dg.AssetSelection.groups("reports"),
    partitions_def=bill_cycles,
    executor_def=CYCLE_EXECUTOR,
    tags=CYCLE_TAGS,
    description="Mediate, rate, bill, render, deliver and publish one monthly bill cycle.",
)

recycle_suspense_job = dg.define_asset_job(
    "recycle_suspense",
    selection=dg.AssetSelection.assets("recycled_suspense", "mediated_usage", "rated_usage"),
    partitions_def=bill_cycles,
    executor_def=CYCLE_EXECUTOR,
    tags=CYCLE_TAGS,
    description="Re-mediate and re-rate a cycle's suspense after reference data or source settings were fixed.",
)

mediate_landed_files_job = dg.define_asset_job(
    "mediate_landed_files",
    selection=dg.AssetSelection.assets("usage_files", "mediated_usage"),
    partitions_def=bill_cycles,
    executor_def=CYCLE_EXECUTOR,
    tags=CYCLE_TAGS,
    description="Register newly landed usage files and mediate the cycle (started by the landing sensor).",
)

approve_cycle_job = dg.define_asset_job(
    "approve_cycle",
    selection=dg.AssetSelection.assets("cycle_approval").downstream() - dg.AssetSelection.groups("reports"),
    partitions_def=bill_cycles,
    executor_def=CYCLE_EXECUTOR,
    tags=CYCLE_TAGS,
    description="Approve a cycle's delivery (run config: ops.cycle_approval.config.approved_by) and deliver it: "
    "e-mail, print batch, payment reminders; then publish the warehouse.",
)

cycle_reports_job = dg.define_asset_job(
    "cycle_reports",
    selection=dg.AssetSelection.groups("reports"),
    partitions_def=bill_cycles,
    executor_def=CYCLE_EXECUTOR,
    tags=CYCLE_TAGS,
    description="The preset reports and the dashboard of one cycle, from the published warehouse (read-only).",
)

deliver_credit_notes_job = dg.define_asset_job(
    "deliver_credit_notes",
    selection=dg.AssetSelection.assets("credit_note_deliveries", "print_batch"),
    partitions_def=bill_cycles,
    executor_def=CYCLE_EXECUTOR,
    tags=CYCLE_TAGS,
    description="Render and deliver the credit notes issued against a cycle's invoices (e-mail or the print "
    "batch); `cdrbill credit-note` runs it after issuing one.",
)

daily_payment_reminders_job = dg.define_asset_job(
    "daily_payment_reminders",
    selection=dg.AssetSelection.assets("payment_reminders", "print_batch"),
    partitions_def=bill_cycles,
    executor_def=CYCLE_EXECUTOR,
    tags=CYCLE_TAGS,
    description="Payment reminders due today on every open invoice, recorded under the latest delivered cycle, "
    "and the print batch for the paper ones (started by the schedule daily_payment_reminders).",
)
