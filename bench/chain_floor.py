"""The floor of the work from raw files to rated events: the least each stage must do, timed beside the floor
(a bare DuckDB ``read_csv`` → Parquet of the same files), to say whether "raw → rated ≥ 0.5 × the floor" (issue 8)
and "intake + mediation ≥ 0.5 ×" (issue 3) can be reached on this host by any code, not only by ours. Not a test
and not the pipeline: speed lives here.

    .venv/bin/python -m bench.chain_floor --dataset .bench/data/1m-a20000-c50-s2026-p50000-v3 --repeat 3

Each step is one DuckDB statement per file or per month, written to Parquet, in a session like the pipeline's
(2 threads, its memory limit, the reference held), timed by ``bench.rating_floor.timed``:

    floor      every landed file read as text columns and written (``bench.stages.floor``'s statement)
    intake     every landed file once (a resent file known by its SHA-256 and skipped); its fields typed where
               they are read (``try_cast``: a bad value is a null, never an error); numbers to E.164 by the
               NANP rule; the switch's local time to UTC; each record numbered in file order (a window over the
               file: DuckDB's CSV reader gives no line number, and the window runs on one thread); the columns
               the rules read written, per file
    mediation  the answered calls (disposition, billed seconds); one call per content key (numbers, answer
               time, billed seconds, service: the earliest file wins); the account holding the number on the
               call's day; written with rating's input columns
    rating     ``bench.rating_floor``'s step (d), narrow (the price book, the longest prefix among the card's
               destinations, one step's money rounded once; the key and outcome written), or (e) with bands

It is a lower bound of what the pipeline must do: left out are the raw text every record keeps (the record's
number is kept: the text can be found again in the archived file), validation and suspense reasons, the 90-day
duplicate window and source ids, legs and partials, service codes, the ledger, and the accounting checks. The
other formats of the realistic mix are not read: the plain month is Asterisk and EMI only. One JSON line per step
and run, then the medians and the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import duckdb
import polars as pl

from bench.rating_floor import NARROW, QUERIES, prepare_deck, timed
from bench.stages import floor_statement
from pipeline.engine import scalar, session
from pipeline.reference import load_reference
from pipeline.settings import load_settings

CYCLE = "2026-10"
STEPS = ("floor", "intake", "mediation", "rating")


def landed_files(dataset: Path) -> list[Path]:
    """The month's raw files, in the order the floor reads them."""
    return sorted(p for p in (dataset / "landing").glob("*/*") if p.is_file())


def e164(column: str) -> str:
    """A NANP number as E.164 (10 digits: +1; 11 starting with 1: +; 011: international), else as it is."""
    return f"""case
        when length({column}) = 10 then '+1' || {column}
        when length({column}) = 11 and {column}[1] = '1' then '+' || {column}
        when starts_with({column}, '011') then '+' || {column}[4:]
        else {column}
    end"""


def intake_statement(path: Path, file_id: int, source_id: str, timezone: str, target: Path) -> str:
    """The least intake of one file: typed fields, E.164 numbers, UTC times, each record's number in the
    file (its record number in file order: what finds its raw text in the archived file), written."""
    utc = "timezone('UTC', timezone('{tz}', {ts}))"
    if path.suffix == ".emi":
        local = "try_strptime('20' || record[7:12] || record[55:60], '%Y%m%d%H%M%S')"
        elapsed = (
            "try_cast(record[61:64] as bigint) * 60 + try_cast(record[65:66] as bigint)"
            " + (record[67:67] <> '0')::bigint"
        )
        query = f"""
select
    {file_id} as file_id, '{source_id}' as source_id,
    {e164("record[113:122]")} as charged_number, {e164("record[28:37]")} as called_number,
    {utc.format(tz=timezone, ts=local)} as start_utc, {utc.format(tz=timezone, ts=local)} as answer_utc,
    {elapsed} as billsec, 'voice' as service, true as answered, line_no
from (
    select record, row_number() over () as line_no
    from read_csv('{path.as_posix()}', header = false, delim = '\\t', quote = '', escape = '',
                  columns = {{'record': 'VARCHAR'}})
)
where record[1:6] = '010101'"""
    else:  # Asterisk cdr_csv: src, dst, start, answer, billsec, disposition at their positions
        query = f"""
select
    {file_id} as file_id, '{source_id}' as source_id,
    {e164("column01")} as charged_number, {e164("column02")} as called_number,
    {utc.format(tz=timezone, ts="try_cast(column09 as timestamp)")} as start_utc,
    {utc.format(tz=timezone, ts="try_cast(column10 as timestamp)")} as answer_utc,
    try_cast(column13 as bigint) as billsec, 'voice' as service, column14 = 'ANSWERED' as answered,
    row_number() over () as line_no
from read_csv('{path.as_posix()}', header = false, all_varchar = true, null_padding = true)"""
    return f"copy ({query}) to '{target.as_posix()}' (format parquet)"


def mediation_statement(intake: Path, target: Path) -> str:
    """The least mediation: billable calls, one per content key (earliest file), the account on the day."""
    return f"""
copy (
    with calls as (
        select
            charged_number, called_number, answer_utc, billsec, service,
            min(file_id::bigint * 4294967296 + line_no) as record_ordinal, min(start_utc) as start_utc
        from read_parquet('{intake.as_posix()}/*.parquet')
        where answered and billsec > 0
        group by charged_number, called_number, answer_utc, billsec, service
    )
    select
        (calls.record_ordinal // 4294967296)::integer as file_id,
        (calls.record_ordinal % 4294967296)::uinteger as line_no, '{CYCLE}' as cycle, service_numbers.account_id,
        service_numbers.service_state, calls.charged_number, calls.called_number, calls.start_utc,
        calls.start_utc::date as call_date, calls.billsec, calls.service, null::bigint as units,
        null::integer as sms_chars, null::varchar as event_code, null::varchar as visited_country,
        null::varchar as late_from_cycle
    from calls
    join service_numbers
        on service_numbers.service_number = calls.charged_number
        and calls.start_utc::date >= service_numbers.valid_from
        and (service_numbers.valid_to is null or calls.start_utc::date < service_numbers.valid_to)
) to '{target.as_posix()}' (format parquet)"""


def run_once(dataset: Path, work: Path, memory_limit: str) -> list[dict]:
    """One run of the four steps in a fresh folder; one line per step."""
    reference = load_reference(dataset / "reference")
    sources = {row["source_id"]: row for row in reference.sources.iter_rows(named=True)}
    files = landed_files(dataset)
    lines: list[dict] = []
    with session(reference, memory_limit=memory_limit, spill_dir=work / "tmp") as con:
        del reference
        con.execute("set threads = 2")

        def floor() -> int:
            (work / "floor").mkdir()
            rows = 0
            for i, path in enumerate(files):
                target = work / "floor" / f"{i:03d}.parquet"
                con.execute(floor_statement(path, target))
                rows += int(scalar(con, f"select count(*) from read_parquet('{target.as_posix()}')"))
            return rows

        def intake() -> int:
            (work / "intake").mkdir()
            seen: set[str] = set()
            con.execute("set preserve_insertion_order = true")  # the records numbered in file order
            for i, path in enumerate(files):
                with path.open("rb") as raw:
                    digest = hashlib.file_digest(raw, "sha256").hexdigest()
                if digest in seen:  # a resent file: never loaded twice
                    continue
                seen.add(digest)
                source = sources[path.parent.name]
                target = work / "intake" / f"{i:03d}.parquet"
                con.execute(intake_statement(path, i + 1, source["source_id"], source["timezone"], target))
            con.execute("set preserve_insertion_order = false")
            return int(scalar(con, f"select count(*) from read_parquet('{(work / 'intake').as_posix()}/*')"))

        def mediation() -> int:
            con.execute(mediation_statement(work / "intake", work / "mediated.parquet"))
            return int(scalar(con, f"select count(*) from read_parquet('{(work / 'mediated.parquet').as_posix()}')"))

        def rating() -> int:
            con.execute(
                "create or replace temp view normalised as "
                f"select * from read_parquet('{(work / 'mediated.parquet').as_posix()}')"
            )
            prepare_deck(con)  # timed with the step: rating prepares its deck in every run too
            banded = bool(scalar(con, "select count(*) from rate_card_policies where band_set is not null"))
            step = "e" if banded else "d"
            query = f"select {NARROW[step]} from ({QUERIES[step]})"
            con.sql(query).write_parquet(str(work / "rated.parquet"))
            return pl.scan_parquet(work / "rated.parquet").select(pl.len()).collect().item()

        lines.append(timed(0, "floor", "duckdb", floor))
        records = lines[0]["rows"]  # every step's records in: the month's raw records
        for name, step in (("intake", intake), ("mediation", mediation), ("rating", rating)):
            lines.append(timed(records, name, "duckdb", step))
    return lines


def summary(runs: list[list[dict]]) -> dict:
    """The median wall and CPU seconds of each step and the ratios the targets name (the floor's seconds over
    the chain's: records/s ratios, the same records in)."""
    wall = {step: statistics.median(run[i]["wall_s"] for run in runs) for i, step in enumerate(STEPS)}
    cpu = {step: statistics.median(run[i]["cpu_s"] for run in runs) for i, step in enumerate(STEPS)}
    chain = wall["intake"] + wall["mediation"] + wall["rating"]
    return {
        "runs": len(runs),
        "median_wall_s": wall,
        "median_cpu_s": cpu,
        "raw_to_rated_x_floor": round(wall["floor"] / chain, 3),
        "intake_mediation_x_floor": round(wall["floor"] / (wall["intake"] + wall["mediation"]), 3),
        "rating_events_per_s": round(runs[0][3]["rows"] / wall["rating"]),
        "duckdb": duckdb.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="a generated month (bench.dataset), e.g. .bench/data/1m-…")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-limit", help="the session's limit (default: the settings' rating limit)")
    args = parser.parse_args()
    dataset = Path(args.dataset)
    memory_limit = args.memory_limit or load_settings(dataset / "reference").rating_memory_limit
    runs = []
    for _ in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="chain-floor-"))
        try:
            lines = run_once(dataset, work, memory_limit)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for line in lines:
            print(json.dumps(line), flush=True)
        runs.append(lines)
    print(json.dumps(summary(runs)), flush=True)


if __name__ == "__main__":
    main()
