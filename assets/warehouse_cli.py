"""The analysts' commands of ``cdrbill``: ``sql`` (ad-hoc SQL on the published warehouse, read-only),
``report list`` / ``report run`` (the preset reports of ``sql/reports/``) and ``dashboard`` (the cycle's
charts as one HTML page)."""

import argparse
import sys
from pathlib import Path

from pipeline.adhoc import FORMATS, QueryRefused, WarehouseMissing, open_warehouse, run_query, write_result
from pipeline.cycles import BillCycle
from pipeline.home import Home
from pipeline.reports import ReportError, catalogue_frame, find_report, run_report

WAREHOUSE_COMMANDS = ("sql", "report", "dashboard")


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--out", type=Path, help="write to this file instead of the terminal (needed for parquet)"
    )


def add_warehouse_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``sql``, ``report`` and ``dashboard`` to the ``cdrbill`` parser."""
    sql = commands.add_parser("sql", help="ad-hoc SQL on the published warehouse (read-only)")
    sql.add_argument("query", nargs="?", help='the query, e.g. "select count(*) from invoices"')
    sql.add_argument("--file", type=Path, help="read the query from this file instead")
    _output_options(sql)

    report = commands.add_parser("report", help="the preset reports (sql/reports/)")
    actions = report.add_subparsers(dest="report_command", required=True)
    actions.add_parser("list", help="list the preset reports")
    run = actions.add_parser("run", help="run one preset report on the published warehouse")
    run.add_argument("name", help="the report's name (see `cdrbill report list`)")
    run.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    run.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="a report parameter (repeatable)"
    )
    _output_options(run)

    dashboard = commands.add_parser(
        "dashboard", help="write the cycle's dashboard (one HTML page with charts)"
    )
    dashboard.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    dashboard.add_argument(
        "--out", type=Path, help="the HTML file (default: <home>/reports/<cycle>/dashboard.html)"
    )


def _emit(text: str | None, out: Path | None) -> None:
    if text is not None:
        sys.stdout.write(text)
    elif out is not None:
        print(f"written to {out}", file=sys.stderr)


def run_warehouse_command(home: Home, args: argparse.Namespace) -> int:
    """Run ``sql``, ``report`` or ``dashboard``; errors are printed with their reason, exit code 2."""
    try:
        if args.command == "report" and args.report_command == "list":
            _emit(write_result(catalogue_frame().select("name", "title", "parameters"), "table"), None)
            return 0
        if args.command == "dashboard":
            from pipeline.dashboard import write_dashboard

            cycle = BillCycle.parse(args.cycle).key
            out = args.out or home.root / "reports" / cycle / "dashboard.html"
            with open_warehouse(home.warehouse_db) as con:
                write_dashboard(con, cycle, out)
            print(f"dashboard of {cycle}: {out}")
            return 0
        with open_warehouse(home.warehouse_db) as con:
            if args.command == "sql":
                if (args.query is None) == (args.file is None):
                    raise ValueError(
                        'give a query or --file FILE, e.g. cdrbill sql "select count(*) from invoices"'
                    )
                query = args.query if args.file is None else args.file.read_text(encoding="utf-8")
                frame = run_query(con, query)
            else:
                values = dict(_key_value(p) for p in args.param)
                values["cycle"] = BillCycle.parse(args.cycle).key
                frame = run_report(con, find_report(args.name), values)
        _emit(write_result(frame, args.format, args.out), args.out)
        return 0
    except (QueryRefused, WarehouseMissing, ReportError, ValueError, OSError) as error:
        print(f"cdrbill {args.command}: {error}", file=sys.stderr)
        return 2


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--param {text!r}: write name=value")
    return key.strip(), value
