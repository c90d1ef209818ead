"""The bill cycle job: every stage of one cycle partition, in order, in one process."""

import dagster as dg

from assets.partitions import bill_cycles

bill_cycle_job = dg.define_asset_job(
    "bill_cycle",
    selection=dg.AssetSelection.all(),
    partitions_def=bill_cycles,
    executor_def=dg.in_process_executor,
    description="Mediate, rate, bill, render, deliver and publish one monthly bill cycle.",
)
