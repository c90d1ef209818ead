"""Where intake and mediation spend their CPU: ``python -m bench.profile --dataset .bench/data/<month>``.

Runs the steps of intake on every landed file of a generated month (the same ``pipeline`` functions, in the
same order) and the steps of mediation on the result, timing each step in CPU seconds of this process
(``time.process_time``: every thread, so a shared machine's waiting is not counted). Prints one line a step.
Not a test and not the benchmark (``bench.run`` measures stages end to end); it says which step to work on.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import duckdb
import polars as pl

from bench.dataset import CYCLE
from pipeline import normalise as rules
from pipeline.engine import session
from pipeline.formats import parse_file
from pipeline.formats.batches import LINE_FORMATS, line_batches, scan_file
from pipeline.intake import RECORD_UNIQUE_COLUMNS
from pipeline.lake import StagedPartition, arrow_view, parquet_writer, partition_dir
from pipeline.mediation import cycle_records, mediate_cycle, mediation_rules, prior_call_keys, release_memory
from pipeline.reference import load_reference, load_usage_reference

CPU: dict[str, float] = defaultdict(float)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Add the CPU seconds of the block to ``name``."""
    started = time.process_time()
    try:
        yield
    finally:
        CPU[name] += time.process_time() - started


def profile_intake(dataset: Path, out: Path) -> None:
    """Each landed file: hash scan, batch reads, parse, the normalisation pieces, Parquet write."""
    with step("reference: load_reference"):
        reference = load_reference(dataset / "reference")
    sources = {row["landing"]: row for row in reference.sources.iter_rows(named=True)}
    for path in sorted(p for p in (dataset / "landing").glob("*/*") if p.is_file()):
        source = sources[path.parent.name]
        with step("intake: hash + UTF-8 scan"):
            scan = scan_file(path)
        assert scan is not None
        if "resend" in path.name:
            continue  # a duplicate file: hashed, never parsed
        with step("intake: read batches (+ hash again)"):
            batches = (
                list(line_batches(path, scan.sha256)) if source["format"] in LINE_FORMATS else [path.read_bytes()]
            )
        # a CUCM file's names and types lines, given again to every batch after the first (as intake does)
        header_lines = LINE_FORMATS.get(source["format"], 0)
        header = b"".join(batches[0].splitlines(keepends=True)[:header_lines])
        for i, batch in enumerate(batches):
            with step(f"intake: parse {source['format']}"):
                data = batch if i == 0 else header + batch
                raw = parse_file(source["format"], data, source.get("template")).records
            with step("intake: normalise: E.164 numbers"):
                table = rules.e164_table(pl.concat([raw["charged_raw"], raw["calling_raw"], raw["called_raw"]]), "US")
                raw.select(
                    pl.col(c).replace_strict(table["raw"], table["e164"], default=None, return_dtype=pl.String)
                    for c in ("charged_raw", "calling_raw", "called_raw")
                )
            with step("intake: normalise: time zone to UTC"):
                raw.select(rules.local_to_utc(pl.col("start_local_raw"), source["timezone"]))
            with step("intake: normalise (whole, incl. the two above)"):
                records = rules.normalise(
                    raw, file_id=1, source_id=source["source_id"], timezone=source["timezone"],
                    billing_timezone="America/Chicago", registered_cycle=CYCLE, region=source["default_region"],
                )  # fmt: skip
            with step("intake: Parquet write (arrow_view + zstd)"):
                table_out = arrow_view(records)
                writer = parquet_writer(out / f"{path.stem}-{i}.parquet", table_out.schema, RECORD_UNIQUE_COLUMNS)
                writer.write_table(table_out)
                writer.close()


class _TimedStatements:
    """A DuckDB connection whose ``execute`` adds each statement's CPU seconds to a step named by the SQL file
    it runs (``mediation: rules: mediation_calls.sql``…); everything else is the connection's own."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def execute(self, query: str, *args: object) -> duckdb.DuckDBPyConnection:
        if not query.startswith("copy ("):
            return self._con.execute(query, *args)
        statement = re.search(r"-- (mediation[a-z_]*\.sql)", query)
        with step(f"mediation: rules: {statement.group(1) if statement else query[:40]}"):
            return self._con.execute(query, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._con, name)


def profile_mediation(home: Path) -> None:
    """The rules SQL alone (its four statements), then ``mediate_cycle`` whole (rules + streams) on an
    intake's lake, with the reference tables mediation loads."""
    with step("mediation: load_usage_reference"):
        reference = load_usage_reference(home / "reference")
    lake = home / "lake"
    with session(reference, memory_limit="1GB", spill_dir=home / "tmp") as con:
        cycle_records(con, lake, CYCLE)
        prior_call_keys(con, lake, CYCLE)
        con.execute("set variable duplicate_window_days = 90")
        con.execute("set variable duplicate_tolerance_seconds = 0")
        work = StagedPartition(lake, partition_dir(lake, "profile_work", cycle=CYCLE))
        try:
            with step("mediation: rules SQL (sql/mediation*.sql → the outcomes aside)"):
                mediation_rules(cast(duckdb.DuckDBPyConnection, _TimedStatements(con)), work, work.folder / "outcomes")
        finally:
            work.abort()
        release_memory(con)
        with step("mediation: mediate_cycle whole (rules + streams)"):
            mediate_cycle(con, lake, CYCLE)


def main(argv: list[str] | None = None) -> int:
    """Profile intake's steps on the dataset's files; with ``--home`` (a home an intake ran in), mediation's."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a generated month (reference/, landing/)")
    parser.add_argument("--home", type=Path, help="a home after intake, to profile mediation in")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="cdrbill-profile-"))
    try:
        profile_intake(args.dataset, out)
        if args.home:
            profile_mediation(args.home)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    for name, seconds in CPU.items():
        print(f"{seconds:8.2f} CPU s  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
