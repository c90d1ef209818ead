"""The reports and the dashboard as Dagster assets of the sample cycle: each report materialised with a
Markdown preview, the dashboard's charts in its metadata and on one self-contained HTML page."""

import re

import dagster as dg
import pytest

from assets.cli import main
from assets.reports import cycle_reports_catalogue

pytestmark = pytest.mark.slow

CHARTS = [
    "revenue_by_state",
    "revenue_by_service",
    "usage_by_hour",
    "suspense_and_duplicates",
    "delivery_outcomes",
]


def test_reports_are_materialised_per_cycle_with_a_preview(sample_cycle):
    _, result = sample_cycle  # materialize_cycle runs every asset, the reports group included
    assert result.success
    events = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    reports = {key for key in events if key.startswith("reports/")}
    assert reports == {f"reports/{name}" for name in cycle_reports_catalogue()} and len(reports) >= 40
    register = events["reports/invoice_register"].metadata
    assert register["dagster/row_count"].value == 49
    assert register["preview"].value.startswith("| invoice_number | account_id |")
    assert "_39 more rows_" in register["preview"].value  # 10 of 49 shown
    assert (
        "| IL | 12 | 12 | 446.82 | 129.14 | 575.96 |"
        in events["reports/revenue_by_state"].metadata["preview"].value
    )
    assert events["reports/cycle_summary"].metadata["dagster/row_count"].value == 1


def test_the_dashboard_renders_with_the_sample_data(sample_cycle, tmp_path):
    home, result = sample_cycle
    materialization = next(
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("cycle_dashboard")
    )
    metadata = materialization.metadata
    assert metadata["charts"].value == len(CHARTS)
    gallery = metadata["dashboard"].value
    assert gallery.count("](data:image/png;base64,") == len(CHARTS)  # shown in the asset's page in the UI
    page = home.root / "reports" / "2026-10" / "dashboard.html"
    assert metadata["dashboard_html"].value == str(page)
    html = page.read_text(encoding="utf-8")
    for name in CHARTS:
        figure = re.search(rf'<figure id="{name}">\s*<svg.*?</svg>', html, re.S)
        assert figure is not None, f"{name} is not on the page"
        assert (page.parent / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one self-contained page: nothing to fetch, no script; the cycle's figures on it
    assert "<script" not in html and not re.search(r'(src|href)="https?://', html)
    assert "1881.77 USD" in html and "Delivery outcomes" in html

    out = tmp_path / "mail" / "october.html"
    assert main(["--home", str(home.root), "dashboard", "--cycle", "2026-10", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").count("<svg") >= len(CHARTS)


def test_a_publication_of_the_warehouse_starts_the_cycle_reports_once():
    from assets.definitions import defs
    from assets.sensors import reports_after_publish

    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="warehouse", partition="2026-10")
        )
        first = reports_after_publish.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs)
        )
        assert [r.partition_key for r in first.run_requests] == ["2026-10"]
        again = dg.build_sensor_context(instance=instance, definitions=defs, cursor=first.cursor)
        assert (
            reports_after_publish.evaluate_tick(again).run_requests == []
        )  # the same publication: no new run
