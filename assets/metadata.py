"""Small helpers that turn pipeline results into Dagster metadata (Markdown previews, counts)."""

from collections.abc import Mapping, Sequence

import dagster as dg
import polars as pl


def markdown_table(frame: pl.DataFrame, limit: int = 20) -> dg.MarkdownMetadataValue:
    """A frame's first rows as a Markdown table for the asset's page in the UI."""
    shown = frame.head(limit)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{frame.height - limit} more rows_"] if frame.height > limit else []
    return dg.MetadataValue.md("\n".join([header, rule, *rows, *more]))


def counts(values: Mapping[str, int | str]) -> dict[str, dg.MetadataValue]:
    """Plain counts as integer metadata (shown and plotted across partitions in the UI)."""
    return {
        key: dg.MetadataValue.int(int(v)) if isinstance(v, int) else dg.MetadataValue.text(str(v))
        for key, v in values.items()
    }


def rows_md(rows: Sequence[Mapping[str, object]], limit: int = 20) -> dg.MarkdownMetadataValue:
    """A list of dicts as a Markdown table."""
    if not rows:
        return dg.MetadataValue.md("_none_")
    return markdown_table(pl.DataFrame([dict(r) for r in rows]), limit)
