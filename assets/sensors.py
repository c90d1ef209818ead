"""The landing-folder sensor: starts mediation when new usage files are complete in ``landing/``."""

import hashlib
import json

import dagster as dg

from assets.jobs import cycle_reports_job, mediate_landed_files_job
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from pipeline.intake import complete_files


@dg.sensor(
    job=mediate_landed_files_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts usage_files + mediated_usage (latest cycle) for landed files whose size stopped "
    "changing between two scans, or whose marker file exists.",
)
def landing_sensor(context: dg.SensorEvaluationContext, cdrbill: CdrbillHome) -> dg.SensorResult:
    """Two scans a minute apart: a file is complete once its size and time are the same in both."""
    home = cdrbill.home()
    sources = cdrbill.reference().sources
    markers = {
        row["landing"]: row["marker_suffix"] for row in sources.iter_rows(named=True) if row["marker_suffix"]
    }
    previous = json.loads(context.cursor) if context.cursor else {}
    complete, scan = complete_files(home.landing, markers, previous)
    cursor = json.dumps(scan, sort_keys=True)
    if not complete:
        return dg.SensorResult(run_requests=[], cursor=cursor)
    names = sorted(str(path.relative_to(home.landing)) for path in complete)
    run_key = hashlib.sha256(
        json.dumps([[n, scan[str(home.landing / n)]] for n in names]).encode()
    ).hexdigest()
    cycle = bill_cycles.get_last_partition_key()
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key[:16],
                partition_key=cycle,
                tags={"cdrbill/files": str(len(names))},
                # the run takes these files only: a file still being written when it starts waits for its turn
                run_config={"ops": {"usage_files": {"config": {"files": names}}}},
            )
        ],
        cursor=cursor,
    )


@dg.asset_sensor(
    asset_key=dg.AssetKey("warehouse"),
    job=cycle_reports_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts cycle_reports (the preset reports and the dashboard) for the cycle whose warehouse was "
    "just published.",
)
def reports_after_publish(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest | None:
    """One run of the cycle's reports per publication of the warehouse."""
    event = asset_event.dagster_event
    partition = event.partition if event is not None else None
    if partition is None:
        return None
    return dg.RunRequest(run_key=f"{partition}:{asset_event.run_id}", partition_key=partition)
