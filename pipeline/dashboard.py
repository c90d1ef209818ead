"""The cycle dashboard: a handful of charts from the preset reports on the published warehouse — revenue by
state and by service, usage by hour of day, suspense and duplicates, delivery outcomes — declared with Altair,
rendered to SVG and PNG by vl-convert (no browser), and written as ONE self-contained HTML page per cycle
(inline SVG, no script, no external file) that ops can open or mail.

Money on the charts is plotted as floats (bar heights only); the exact amounts are in the reports."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import altair as alt
import duckdb
import polars as pl
import vl_convert as vlc
from markupsafe import Markup

from pipeline.documents import template_environment
from pipeline.home import TEMPLATES_DIR
from pipeline.reports import catalogue, run_report

DASHBOARD_TEMPLATE = "dashboard.html.j2"
WIDTH = 420
HEIGHT = 220


@dataclass(frozen=True)
class Chart:
    """One rendered chart: its name, title, SVG text and PNG bytes."""

    name: str
    title: str
    svg: str
    png: bytes

    def png_data_uri(self) -> str:
        """The PNG as a ``data:`` URI (for Markdown metadata)."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _plottable(frame: pl.DataFrame) -> pl.DataFrame:
    """Decimals as floats for the chart's JSON (bar heights only)."""
    return frame.with_columns(pl.col(pl.Decimal).cast(pl.Float64))


def _report(con: duckdb.DuckDBPyConnection, name: str, cycle: str) -> pl.DataFrame:
    return _plottable(run_report(con, catalogue()[name], {"cycle": cycle}))


def _bar(
    frame: pl.DataFrame, x: str, y: str, title: str, *, x_title: str, y_title: str, color: str | None = None
):
    encoding = {
        "x": alt.X(x, title=x_title, sort=None),
        "y": alt.Y(y, title=y_title),
        "tooltip": list(frame.columns),
    }
    if color:
        encoding["color"] = alt.Color(color, title=color.replace("_", " "))
    return (
        alt.Chart(frame, title=title, width=WIDTH, height=HEIGHT)
        .mark_bar()
        .encode(**encoding)
        .configure_view(strokeWidth=0)
    )


def dashboard_charts(con: duckdb.DuckDBPyConnection, cycle: str) -> dict[str, alt.Chart]:
    """The dashboard's charts for ``cycle``, each built from a preset report."""
    suspense = _report(con, "suspense_by_reason_and_age", cycle).select(
        pl.lit("suspense").alias("stream"), pl.col("reason"), pl.col("records")
    )
    duplicates = _report(con, "duplicates_by_source", cycle).select(
        pl.lit("duplicate").alias("stream"), pl.col("reason"), pl.col("duplicates").alias("records")
    )
    held_back = pl.concat([suspense, duplicates]).with_columns(pl.col("records").cast(pl.Int64))
    deliveries = _report(con, "delivery_outcomes", cycle).with_columns(
        (pl.col("channel") + " · " + pl.col("status")).alias("outcome")
    )
    return {
        "revenue_by_state": _bar(
            _report(con, "revenue_by_state", cycle), "service_state", "billed", "Revenue by service state",
            x_title="state", y_title="billed (USD)",
        ),
        "revenue_by_service": _bar(
            _report(con, "revenue_by_service", cycle), "service", "billed", "Revenue by service and section",
            x_title="service", y_title="billed (USD)",
        ),
        "usage_by_hour": _bar(
            _report(con, "usage_by_hour", cycle), "hour_of_day:O", "minutes", "Call minutes by hour of day (local)",
            x_title="hour of day", y_title="minutes",
        ),
        "suspense_and_duplicates": _bar(
            held_back, "reason", "records", "Suspense and duplicates by reason",
            x_title="reason", y_title="records", color="stream",
        ),
        "delivery_outcomes": _bar(
            deliveries, "outcome", "invoices", "Delivery outcomes", x_title="channel · status", y_title="invoices",
        ),
    }  # fmt: skip


_LONG_DECIMAL = re.compile(r"\d+\.\d{3,}")


def tidy_svg(svg: str) -> str:
    """Coordinates to 2 decimals: vl-convert writes binary-float noise (187.70000000000002) that only bloats
    the page (and reads like an id number to a personal-data scan)."""
    return _LONG_DECIMAL.sub(lambda m: f"{float(m.group()):.2f}".rstrip("0").rstrip("."), svg)


def render_charts(charts: dict[str, alt.Chart]) -> list[Chart]:
    """Each chart rendered to SVG and PNG by vl-convert."""
    rendered = []
    for name, chart in charts.items():
        spec = chart.to_json()
        title = str(chart.title) if chart.title is not alt.Undefined else name
        rendered.append(
            Chart(name, title, tidy_svg(vlc.vegalite_to_svg(spec)), vlc.vegalite_to_png(spec, scale=1))
        )
    return rendered


def dashboard_html(cycle: str, summary: dict[str, object], charts: list[Chart]) -> str:
    """The single HTML page: the cycle's headline figures and every chart as inline SVG."""
    template = template_environment(TEMPLATES_DIR).get_template(DASHBOARD_TEMPLATE)
    return template.render(
        cycle=cycle,
        summary=summary,
        charts=[{"name": c.name, "title": c.title, "svg": Markup(c.svg)} for c in charts],
    )


def write_dashboard(con: duckdb.DuckDBPyConnection, cycle: str, out: Path) -> list[Chart]:
    """Render the dashboard of ``cycle`` from the warehouse: ``out`` (the HTML page) and one PNG per chart
    beside it (``<name>.png``), each written aside and renamed in; returns the charts."""
    charts = render_charts(dashboard_charts(con, cycle))
    summary_frame = run_report(con, catalogue()["cycle_summary"], {"cycle": cycle})
    summary = {
        k: (str(v) if isinstance(v, Decimal) else v) for k, v in summary_frame.row(0, named=True).items()
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    files: dict[Path, bytes] = {out: dashboard_html(cycle, summary, charts).encode("utf-8")}
    files.update({out.parent / f"{c.name}.png": c.png for c in charts})
    for path, data in files.items():
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_bytes(data)
        staging.replace(path)
    return charts
