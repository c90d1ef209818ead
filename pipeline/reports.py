"""The preset report catalogue: one SQL file a report in ``sql/reports/``, each opening with a header comment
block that names its title, the question it answers and its parameters (name, type, optional default,
meaning). Parameters are bound by DuckDB as ``$name``, never pasted into the SQL.

Header example::

    -- title: Revenue by state
    -- question: How much did the accounts of each service state bill in the cycle?
    -- param: cycle varchar  the bill cycle, YYYY-MM
    -- param: top integer = 10  how many rows
    -- columns: service_state, accounts, invoices, charges, taxes_and_fees, billed

``columns`` names the result's columns in order (a test runs every report and compares).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.adhoc import run_query
from pipeline.sql import SQL_DIR

REPORTS_DIR = SQL_DIR / "reports"
PARAMETER_TYPES = ("varchar", "date", "integer", "decimal")
_PARAM = re.compile(
    r"^(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>\w+)(?:\s*=\s*(?P<default>\S+))?\s+(?P<note>.+)$"
)


class ReportError(Exception):
    """A report that cannot be read or run as asked (unknown name, bad header, bad or missing parameter)."""


@dataclass(frozen=True)
class Parameter:
    """One bound parameter of a report."""

    name: str
    type: str
    note: str
    default: str | None = None


@dataclass(frozen=True)
class Report:
    """A preset report: its name (the file's stem), header and SQL."""

    name: str
    title: str
    question: str
    parameters: tuple[Parameter, ...]
    columns: tuple[str, ...]
    sql: str
    path: Path


def parse_report(path: Path) -> Report:
    """Read one report file: the header's ``-- key: value`` lines up to the first line of SQL."""
    text = path.read_text(encoding="utf-8")
    fields: dict[str, str] = {}
    parameters: list[Parameter] = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        key, sep, value = line[2:].strip().partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "param":
            match = _PARAM.match(value)
            if not match or match["type"] not in PARAMETER_TYPES:
                raise ReportError(
                    f"{path.name}: bad parameter line {line!r}: write '-- param: name "
                    f"{'|'.join(PARAMETER_TYPES)} [= default]  meaning'"
                )
            parameters.append(
                Parameter(match["name"], match["type"], match["note"].strip(), match["default"])
            )
        elif key == "columns":
            fields["columns"] = f"{fields['columns']}, {value}" if "columns" in fields else value
        elif key in ("title", "question"):
            fields[key] = f"{fields[key]} {value}" if key in fields else value
    missing = [k for k in ("title", "question", "columns") if k not in fields]
    if missing:
        raise ReportError(
            f"{path.name}: the header lacks {', '.join(missing)} (-- title: …, -- question: …, -- columns: a, b)"
        )
    columns = tuple(c.strip() for c in fields["columns"].split(",") if c.strip())
    return Report(path.stem, fields["title"], fields["question"], tuple(parameters), columns, text, path)


@cache
def _catalogue(folder: Path) -> dict[str, Report]:
    return {path.stem: parse_report(path) for path in sorted(folder.glob("*.sql"))}


def catalogue(folder: Path = REPORTS_DIR) -> dict[str, Report]:
    """Every preset report by name."""
    return dict(_catalogue(folder))


def find_report(name: str, folder: Path = REPORTS_DIR) -> Report:
    """The report called ``name``, or an error listing how to see the names."""
    reports = catalogue(folder)
    if name not in reports:
        raise ReportError(f"no report {name!r}: see `cdrbill report list`")
    return reports[name]


def _typed(report: Report, parameter: Parameter, value: str) -> Any:
    try:
        if parameter.type == "integer":
            return int(value)
        if parameter.type == "decimal":
            return Decimal(value)
        if parameter.type == "date":
            return date.fromisoformat(value)
    except (ValueError, InvalidOperation) as error:
        raise ReportError(
            f"report {report.name}: parameter {parameter.name} is of type {parameter.type}, not {value!r}"
        ) from error
    return value


def bind_parameters(report: Report, values: Mapping[str, str]) -> dict[str, Any]:
    """The report's parameters typed from their text values (or defaults); unknown or missing ones are
    refused by name."""
    known = {p.name for p in report.parameters}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ReportError(
            f"report {report.name} has no parameter {', '.join(unknown)} (it has: {', '.join(known)})"
        )
    bound: dict[str, Any] = {}
    for parameter in report.parameters:
        value = values.get(parameter.name, parameter.default)
        if value is None:
            raise ReportError(f"report {report.name} needs --param {parameter.name}=… ({parameter.note})")
        bound[parameter.name] = _typed(report, parameter, value)
    return bound


def run_report(con: duckdb.DuckDBPyConnection, report: Report, values: Mapping[str, str]) -> pl.DataFrame:
    """Run a preset report on a warehouse connection with its parameters bound."""
    return run_query(con, report.sql, bind_parameters(report, values) or None)


def catalogue_frame(folder: Path = REPORTS_DIR) -> pl.DataFrame:
    """The catalogue as a table: name, title, question, parameters."""
    return pl.DataFrame(
        [
            {
                "name": r.name,
                "title": r.title,
                "question": r.question,
                "parameters": ", ".join(
                    f"{p.name} {p.type}" + (f" = {p.default}" if p.default is not None else "")
                    for p in r.parameters
                ),
            }
            for r in catalogue(folder).values()
        ],
        schema={"name": pl.String, "title": pl.String, "question": pl.String, "parameters": pl.String},
    )
