"""Ad-hoc SQL on the published warehouse: a read-only connection that also cannot touch the file system (no
COPY … TO, ATTACH, INSTALL, read_csv of other files; the setting is locked), and the output formats shared with
the preset reports (table, CSV, Parquet, Markdown)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

FORMATS = ("table", "csv", "parquet", "markdown")


class QueryRefused(Exception):
    """A query the warehouse refused (a write, a file access, a syntax error), with DuckDB's reason."""


class WarehouseMissing(Exception):
    """No warehouse has been published in this home yet."""


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published warehouse, without file-system access (locked), so a query can
    neither change the warehouse nor read or write other files."""
    if not path.exists():
        raise WarehouseMissing(
            f"no warehouse at {path}: run a bill cycle first (cdrbill run --cycle YYYY-MM)"
        )
    return duckdb.connect(
        str(path),
        read_only=True,
        config={"enable_external_access": False, "lock_configuration": True},
    )


def run_query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> pl.DataFrame:
    """The result of one query (or the last statement of several) as a frame; parameters are bound by DuckDB,
    never pasted into the SQL."""
    try:
        relation = con.sql(sql, params=params) if params else con.sql(sql)
        if relation is None:  # a statement without rows (SET, PRAGMA …)
            return pl.DataFrame()
        return pl.from_arrow(relation.to_arrow_table())  # type: ignore[return-value]
    except duckdb.Error as error:
        reason = str(error).splitlines()[0]
        if "read-only mode" in reason:
            reason = (
                f"the warehouse is read-only (analysts only read it; the pipeline publishes it): {reason}"
            )
        elif "file system operations are disabled" in reason:
            reason = f"ad-hoc SQL cannot read or write files (export with --format/--out): {reason}"
        raise QueryRefused(reason) from error


def markdown_text(frame: pl.DataFrame, limit: int | None = None) -> str:
    """A frame as a Markdown table (the first ``limit`` rows, with a note of how many more)."""
    shown = frame if limit is None else frame.head(limit)

    def cell(value: object) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.iter_rows()]
    if limit is not None and frame.height > limit:
        lines.append(f"\n_{frame.height - limit} more rows_")
    return "\n".join(lines) + "\n"


def table_text(frame: pl.DataFrame) -> str:
    """A frame as an aligned text table with every row and column."""
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=10_000,
        fmt_str_lengths=200,
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
    ):
        return f"{frame}\n"


def write_result(frame: pl.DataFrame, fmt: str, out: Path | None = None) -> str | None:
    """Write a result as ``fmt`` to ``out``, or return it as text when there is no ``out`` (Parquet needs one)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        frame.write_parquet(out)
        return None
    if fmt == "csv":
        buffer = io.StringIO()
        frame.write_csv(buffer)
        text = buffer.getvalue()
    else:
        text = markdown_text(frame) if fmt == "markdown" else table_text(frame)
    if out is None:
        return text
    out.write_text(text, encoding="utf-8")
    return None
