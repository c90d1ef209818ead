"""Scale-out measurements (docs/SCALE_LOG.md, "Scale-out"): a cycle through the real ``bill_cycle`` job with
``market_shards`` = 1, 2, … in process or with the multiprocess executor, each run in a fresh home and its own
process; wall seconds and CPU seconds (the process and every process it waited for: step processes, render
workers). Never part of the tests.

    python -m bench.scale --size sample --shards 1 2 --executors in_process multiprocess
    python -m bench.scale --size 100k --until invoices --shards 1 2 --executors in_process multiprocess
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from bench.dataset import ensure_dataset, parse_size
from bench.run import fresh_home
from pipeline.home import SAMPLE_DIR

CYCLE = "2026-10"
UNTIL = {  # the assets selected: the whole job, or up to the invoices (no documents, delivery, warehouse)
    "all": None,
    "invoices": ("usage_files", "mediated_usage", "rated_usage", "account_charges", "invoices"),
}


def run_once(home: Path, shards: int, executor: str, until: str, processes: int) -> None:
    """One cycle through ``bill_cycle`` on ``home`` (in this process: the measured child)."""
    from assets.definitions import bill_cycle

    with (home / "reference" / "settings.toml").open("a", encoding="utf-8") as settings:
        # render workers forked from a fork server are not waited for by this process: their CPU would escape
        # the measurement, so documents are rendered in the step's own process (the shards are the parallelism)
        settings.write(f"\nmarket_shards = {shards}\nrender_workers = 1\n")
    execution = (
        {"multiprocess": {"max_concurrent": processes}} if executor == "multiprocess" else {"in_process": {}}
    )
    selection = UNTIL[until]
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-dagster-") as instance_dir,
        dg.instance_for_test(temp_dir=instance_dir) as instance,
    ):
        result = dg.execute_job(
            dg.reconstructable(bill_cycle),
            instance=instance,
            run_config={
                "resources": {"cdrbill": {"config": {"root": str(home)}}},
                "execution": {"config": execution},
            },
            tags={"dagster/partition": CYCLE},
            asset_selection=[dg.AssetKey(k) for k in selection] if selection else None,
        )
        if not result.success:
            raise SystemExit(f"the run failed: {result.run_id}")


def measure(dataset: Path, work: Path, shards: int, executor: str, until: str, processes: int) -> dict:
    """Wall and CPU seconds of one run in a child process (``wait4``: the child and what it waited for)."""
    home = work / "home"
    fresh_home(dataset, home)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--one",
            str(home),
            str(shards),
            executor,
            until,
            str(processes),
        ]
    )
    _pid, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"run failed: shards={shards} {executor}")
    return {
        "shards": shards,
        "executor": executor,
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="sample", help="sample, or a bench size (100k, 1m …)")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--executors", nargs="+", default=["in_process", "multiprocess"])
    parser.add_argument("--until", choices=sorted(UNTIL), default="all")
    parser.add_argument(
        "--processes", type=int, default=2, help="max_concurrent of the multiprocess executor"
    )
    parser.add_argument("--cache", type=Path, default=Path(".bench"))
    parser.add_argument("--out", type=Path, help="append the results (JSON lines) here")
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        home, shards, executor, until, processes = args.one
        run_once(Path(home), int(shards), executor, until, int(processes))
        return 0
    dataset = SAMPLE_DIR if args.size == "sample" else ensure_dataset(args.cache, parse_size(args.size))[0]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        for executor in args.executors:
            for shards in args.shards:
                row = {"size": args.size, "until": args.until, **measure(dataset, work, shards, executor,
                                                                         args.until, args.processes)}  # fmt: skip
                print(json.dumps(row), flush=True)
                if args.out:
                    with args.out.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(row) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
