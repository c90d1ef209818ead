"""The preset reports and the cycle dashboard as Dagster assets (group ``reports``): one multi-asset over the
catalogue of ``sql/reports/`` (a report = an asset ``reports/<name>`` with a Markdown preview of its first
rows) and ``cycle_dashboard`` (the charts, shown in the asset's metadata, and the HTML page). Both read the
published warehouse read-only; they run in the job ``cycle_reports``, which the sensor
``reports_after_publish`` starts after each publication of the warehouse."""

import dagster as dg

from assets.metadata import counts
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from assets.warehouse import warehouse
from pipeline.adhoc import markdown_text, open_warehouse
from pipeline.reports import Report, catalogue, run_report

PREVIEW_ROWS = 10


def cycle_reports_catalogue() -> dict[str, Report]:
    """The reports that run for a cycle on their own: every parameter but ``cycle`` has a default."""
    return {
        name: report
        for name, report in catalogue().items()
        if all(p.name == "cycle" or p.default is not None for p in report.parameters)
    }


REPORT_KEYS = {dg.AssetKey(["reports", name]): name for name in cycle_reports_catalogue()}


@dg.multi_asset(
    name="preset_reports",
    specs=[
        dg.AssetSpec(
            key,
            description=f"{catalogue()[name].title}: {catalogue()[name].question}",
            group_name="reports",
            kinds={"duckdb", "sql"},
            deps=[warehouse],
            partitions_def=bill_cycles,
            metadata={"sql": dg.MetadataValue.path(str(catalogue()[name].path))},
            skippable=True,
        )
        for key, name in REPORT_KEYS.items()
    ],
    partitions_def=bill_cycles,
    can_subset=True,
)
def preset_reports(context: dg.AssetExecutionContext, cdrbill: CdrbillHome):
    """Run each selected preset report for the cycle on the published warehouse (read-only)."""
    cycle = cdrbill.cycle(context.partition_key).key
    reports = catalogue()
    with open_warehouse(cdrbill.home().warehouse_db) as con:
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            report = reports[REPORT_KEYS[key]]
            frame = run_report(con, report, {"cycle": cycle})
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "dagster/row_count": frame.height,
                    "question": dg.MetadataValue.text(report.question),
                    "preview": dg.MetadataValue.md(markdown_text(frame, PREVIEW_ROWS)),
                },
            )


@dg.asset(partitions_def=bill_cycles, group_name="reports", kinds={"duckdb", "html"}, deps=[warehouse])
def cycle_dashboard(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """The cycle dashboard: revenue by state and service, usage by hour, suspense and duplicates, delivery
    outcomes — charts in this asset's metadata and one self-contained HTML page (reports/<cycle>/)."""
    from pipeline.dashboard import (
        write_dashboard,
    )  # Altair and vl-convert load only when a dashboard is drawn

    home = cdrbill.home()
    cycle = cdrbill.cycle(context.partition_key).key
    out = home.root / "reports" / cycle / "dashboard.html"
    with open_warehouse(home.warehouse_db) as con:
        charts = write_dashboard(con, cycle, out)
    gallery = "\n\n".join(f"**{c.title}**\n\n![{c.name}]({c.png_data_uri()})" for c in charts)
    return dg.MaterializeResult(
        metadata={
            **counts({"charts": len(charts)}),
            "dashboard": dg.MetadataValue.md(gallery),
            "dashboard_html": dg.MetadataValue.path(str(out)),
            **{f"chart_{c.name}": dg.MetadataValue.path(str(out.parent / f"{c.name}.png")) for c in charts},
        }
    )
