"""Rating benchmark: rate a generated month (default ~1M CDRs) with a large rate card (default 50,000 extra
destination prefixes) and time bands split at boundaries, and print events/s. Not a test: speed lives here.

    .venv/bin/python -m bench.rating --home /tmp/bench-home            # generate, mediate, then rate
    .venv/bin/python -m bench.rating --home /tmp/bench-home --prefixes 0 --no-bands
    .venv/bin/python -m bench.rating --home /tmp/bench-home --rerate   # then rerate after a rate correction
    .venv/bin/python -m bench.rating --home /tmp/bench-10m --size 10m --rerate   # 50,000 accounts × 200 calls

It prints wall and CPU seconds (user + system of the process, every DuckDB thread: the number to compare on a
shared machine) of ``rate_cycle`` and ``rerate_cycle``, the rated Parquet size and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from data_samples.generate import generate_month
from pipeline.engine import session
from pipeline.home import Home
from pipeline.intake import register_landed_files
from pipeline.lake import lake_table
from pipeline.mediation import MEDIATED, mediate_cycle
from pipeline.rating import rate_cycle
from pipeline.reference import Reference, load_reference
from pipeline.rerating import rerate_cycle
from pipeline.settings import Settings
from pipeline.state import open_state

CYCLE = "2026-10"
# month sizes: (accounts, random calls per account), as bench/ generates them (bench.dataset.SIZES: 10m is 50,000
# accounts × 200 calls, 50m its shape × 5)
SIZES = {"1m": (20000, 50), "10m": (50000, 200), "50m": (250000, 200)}


def peak_rss_since_reset_mib() -> int:
    """This process's peak RSS (``VmHWM``) since the last ``reset_peak_rss`` (or since exec)."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def reset_peak_rss() -> None:
    """Start a new peak-RSS window (``VmHWM`` back to the current RSS), so each phase reports its own peak."""
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(home: Home, accounts: int, calls: int) -> None:
    """Generate, land and mediate a month once (kept for later runs)."""
    if lake_table(home.lake, MEDIATED, "normalised", cycle=CYCLE).exists():
        return
    generate_month(home.root, accounts=accounts, calls_per_account=calls, seed=2026)
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        register_landed_files(
            home, state, reference.sources, cycle=CYCLE, billing_timezone=Settings().billing_timezone
        )
    with session(reference, memory_limit="3GB", spill_dir=home.root / "tmp") as con:
        mediate_cycle(con, home.lake, CYCLE)


def enlarge(reference: Reference, prefixes: int, bands: bool) -> Reference:
    """Every card gets ``prefixes`` more destinations (random 4–8 digit prefixes, as many lengths as a real
    international card); with ``bands`` every card splits calls at the US-PEAK bands with peak/offpeak rates."""
    rng = random.Random(7)
    cards = reference.rate_cards
    extra = []
    for card in cards["rate_card_id"].unique().sort().to_list():
        base = cards.filter(pl.col("rate_card_id") == card).row(0, named=True)
        seen: set[str] = set()
        while len(seen) < prefixes:
            seen.add(
                str(rng.randrange(2, 10))
                + "".join(str(rng.randrange(10)) for _ in range(rng.randrange(3, 8)))
            )
        extra.append(pl.DataFrame([{**base, "prefix": p, "destination": f"D{p}"} for p in sorted(seen)],
                                  schema=cards.schema))  # fmt: skip
    frames = reference.tables()
    frames["rate_cards"] = pl.concat([cards, *extra])
    if bands:
        rows = frames["rate_cards"]
        frames["rate_cards"] = pl.concat(
            [rows.with_columns(time_band=pl.lit(band)) for band in ("peak", "offpeak", "weekend")]
        )
        frames["rate_card_policies"] = frames["rate_card_policies"].with_columns(
            band_set=pl.lit("US-PEAK"), band_policy=pl.lit("split"), holidays=pl.lit("state")
        )
    return Reference(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True)
    parser.add_argument("--size", choices=sorted(SIZES), help="a preset month size (sets the two below)")
    parser.add_argument("--accounts", type=int, default=20000)
    parser.add_argument("--calls-per-account", type=int, default=50)
    parser.add_argument("--prefixes", type=int, default=50000)
    parser.add_argument("--no-bands", action="store_true")
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--rerate", action="store_true", help="then rerate with every rate 0.001 higher")
    args = parser.parse_args()
    if args.size:
        args.accounts, args.calls_per_account = SIZES[args.size]
    home = Home(Path(args.home)).ensure()
    started = time.perf_counter()
    prepare(home, args.accounts, args.calls_per_account)
    prepared = time.perf_counter() - started
    # as a stage does: the reference is handed to the session and not kept (the session holds it in DuckDB)
    reference = enlarge(load_reference(home.reference), args.prefixes, not args.no_bands)
    rate_card_rows = reference.rate_cards.height
    reset_peak_rss()
    with session(reference, memory_limit=args.memory_limit, spill_dir=home.root / "tmp") as con:
        del reference
        started, cpu_started = time.perf_counter(), cpu_seconds()
        counts = rate_cycle(con, home.lake, CYCLE)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    rating_peak = peak_rss_since_reset_mib()
    rated_mb = lake_table(home.lake, "rated", "rated", cycle=CYCLE).stat().st_size / 1e6
    events = counts["rated"] + counts["suspended"]
    rerated = {}
    if args.rerate:
        frames = enlarge(load_reference(home.reference), args.prefixes, not args.no_bands).tables()
        frames["rate_cards"] = frames["rate_cards"].with_columns(pl.col("rate_per_unit") + Decimal("0.001"))
        corrected = Reference(frames)
        del frames
        reset_peak_rss()
        with (
            session(corrected, memory_limit=args.memory_limit, spill_dir=home.root / "tmp") as con,
            open_state(home.state_db) as state,
        ):
            del corrected
            started, cpu_started = time.perf_counter(), cpu_seconds()
            result = rerate_cycle(
                con, home.lake, state, CYCLE, posted_at=datetime(2026, 11, 1), approved_by="bench"
            )
            rerated = {
                "rerate_s": round(time.perf_counter() - started, 2),
                "rerate_cpu_s": round(cpu_seconds() - cpu_started, 2),
                "rerate_changed": result["changed_events"],
            }
        rerated["rerate_peak_rss_mib"] = peak_rss_since_reset_mib()
    print(json.dumps({
        "events": events, **counts, "rate_card_rows": rate_card_rows,
        "bands": not args.no_bands, "prepare_s": round(prepared, 1), "rating_s": round(seconds, 2),
        "rating_cpu_s": round(cpu, 2), "events_per_s": round(events / seconds),
        "events_per_cpu_s": round(events / cpu), "rated_mb": round(rated_mb, 1), "rating_peak_rss_mib": rating_peak, **rerated,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
