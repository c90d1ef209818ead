"""Mediation benchmark: intake (parse + normalise + Parquet) and cycle mediation of a generated month (default
~1M CDRs), against the floor — a bare DuckDB ``read_csv`` → Parquet conversion of the same raw files — and
print records/s, the ratio to the floor and peak RSS. Not a test: speed lives here.

    .venv/bin/python -m bench.mediation --raw /tmp/bench-raw            # generate once, then measure
    .venv/bin/python -m bench.mediation --raw /tmp/bench-raw --profile  # also time parse/normalise per file

Each stage runs in its own process so that its peak RSS is its own. Wall times swing with the machine's load;
the CPU seconds (all threads) and the CPU ratio are the steadier comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from data_samples.generate import generate_month

CYCLE = "2026-10"


def prepare(raw: Path, accounts: int, calls: int) -> None:
    """Generate the month once into ``raw`` (reference + landing), kept for later runs."""
    if not (raw / "landing").exists():
        generate_month(raw, cycle=CYCLE, accounts=accounts, calls_per_account=calls, seed=2026)


def raw_files(raw: Path) -> list[Path]:
    return sorted(p for p in (raw / "landing").glob("*/*") if p.is_file())


def floor(raw: Path, out: Path) -> dict[str, float]:
    """The floor: DuckDB reads every raw file as text columns and writes it to Parquet, nothing else."""
    con = duckdb.connect()
    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for i, path in enumerate(raw_files(raw)):
        target = out / f"{i}.parquet"
        con.execute(
            f"copy (select * from read_csv('{path}', all_varchar=true, header=false, strict_mode=false, "
            f"null_padding=true, ignore_errors=true)) to '{target}' (format parquet)"
        )
        rows += int(con.sql(f"select count(*) from '{target}'").fetchall()[0][0])
    return {"floor_rows": rows, "floor_s": time.perf_counter() - started, "floor_cpu_s": time.process_time() - cpu}


def intake(raw: Path, home_dir: Path, profile: bool) -> dict[str, float]:
    """Intake of every landed file into a fresh home (hash, parse, normalise, write Parquet, ledger)."""
    from pipeline.formats import parse_file
    from pipeline.home import Home
    from pipeline.intake import register_landed_files
    from pipeline.normalise import normalise
    from pipeline.reference import load_reference
    from pipeline.settings import Settings
    from pipeline.state import open_state

    shutil.copytree(raw / "reference", home_dir / "reference")
    shutil.copytree(raw / "landing", home_dir / "landing")
    home = Home(home_dir).ensure()
    reference = load_reference(home.reference)
    result: dict[str, float] = {}
    if profile:
        by_landing = {row["landing"]: row for row in reference.sources.iter_rows(named=True)}
        for path in raw_files(raw):
            source = by_landing[path.parent.name]
            t0 = time.perf_counter()
            parsed = parse_file(source["format"], path.read_bytes(), source.get("template"))
            t1 = time.perf_counter()
            normalise(parsed.records, file_id=1, source_id=source["source_id"], timezone=parsed.timezone or
                      source["timezone"], billing_timezone="America/Chicago", registered_cycle=CYCLE)  # fmt: skip
            t2 = time.perf_counter()
            print(f"  {path.name}: {parsed.records.height} rows, parse {t1 - t0:.2f} s, normalise {t2 - t1:.2f} s",
                  file=sys.stderr)  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    with open_state(home.state_db) as state:
        report = register_landed_files(
            home, state, reference.sources, cycle=CYCLE, billing_timezone=Settings().billing_timezone
        )
    result["intake_s"] = time.perf_counter() - started
    result["intake_cpu_s"] = time.process_time() - cpu
    result["records"] = report.records
    return result


def mediate(home_dir: Path, memory_limit: str) -> dict[str, float]:
    from pipeline.engine import session
    from pipeline.home import Home
    from pipeline.mediation import mediate_cycle
    from pipeline.reference import load_reference

    home = Home(home_dir)
    reference = load_reference(home.reference)
    with session(reference, memory_limit=memory_limit, spill_dir=home.root / "tmp") as con:
        started, cpu = time.perf_counter(), time.process_time()
        counts = mediate_cycle(con, home.lake, CYCLE)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"mediate_s": seconds, "mediate_cpu_s": cpu, **{k: v for k, v in counts.items() if isinstance(v, int)}}


def _stage(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.mediation", *args], check=True, capture_output=True,
                          text=True)  # fmt: skip
    sys.stderr.write(done.stderr)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True, help="where the generated month is kept")
    parser.add_argument("--accounts", type=int, default=20000)
    parser.add_argument("--calls-per-account", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB's limit for mediate_cycle")
    parser.add_argument("--stage", choices=("floor", "intake", "mediate"))
    parser.add_argument("--work")
    args = parser.parse_args()
    raw = Path(args.raw)
    if args.stage:
        work = Path(args.work)
        if args.stage == "floor":
            out = floor(raw, work)
        elif args.stage == "intake":
            out = intake(raw, work, args.profile)
        else:
            out = mediate(work, args.memory_limit)
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    prepare(raw, args.accounts, args.calls_per_account)
    with tempfile.TemporaryDirectory(prefix="bench-med-") as tmp:
        (Path(tmp) / "floor").mkdir()
        base = ["--raw", str(raw)]
        fl = _stage([*base, "--stage", "floor", "--work", f"{tmp}/floor"])
        it = _stage([*base, "--stage", "intake", "--work", f"{tmp}/home", *(["--profile"] if args.profile else [])])
        md = _stage([*base, "--stage", "mediate", "--work", f"{tmp}/home", "--memory-limit", args.memory_limit])
    records = it["records"]
    total = it["intake_s"] + md["mediate_s"]
    print(json.dumps({
        "records": records, "floor_rows": fl["floor_rows"], "floor_s": round(fl["floor_s"], 2),
        "floor_per_s": round(fl["floor_rows"] / fl["floor_s"]),
        "intake_s": round(it["intake_s"], 2), "intake_per_s": round(records / it["intake_s"]),
        "mediate_s": round(md["mediate_s"], 2), "mediate_per_s": round(records / md["mediate_s"]),
        "mediation_per_s": round(records / total),
        "ratio_to_floor": round((records / total) / (fl["floor_rows"] / fl["floor_s"]), 3),
        # CPU seconds (all threads): steadier than wall time on a shared machine
        "floor_cpu_s": round(fl["floor_cpu_s"], 2), "intake_cpu_s": round(it["intake_cpu_s"], 2),
        "mediate_cpu_s": round(md["mediate_cpu_s"], 2),
        "ratio_to_floor_cpu": round((records / (it["intake_cpu_s"] + md["mediate_cpu_s"]))
                                    / (fl["floor_rows"] / fl["floor_cpu_s"]), 3),
        "peak_rss_mib": {"floor": round(fl["peak_rss_mib"]), "intake": round(it["peak_rss_mib"]),
                         "mediate": round(md["peak_rss_mib"])},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
