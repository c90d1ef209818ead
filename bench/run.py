"""``python -m bench [--size 1m] [--repeat 3]``: generate (or reuse) a month, run the floor and every pipeline
stage in its own process ``--repeat`` times in a fresh home, compare naive and our invoice rendering, time
the sample cycle through Dagster, check the issue's targets, and write ``bench/results/<date>-<size>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.dataset import (
    CYCLE,
    DECK_PREFIXES,
    DEFAULT_SEED,
    PLAIN,
    Size,
    composition,
    ensure_dataset,
    parse_size,
)
from bench.measure import DOCUMENTS, NAIVE_DOCUMENTS, PROJECT_ROOT, Measurement, run_command, run_stage
from bench.mix import MIXES
from bench.report import (
    RAW_TO_RATED,
    check_targets,
    load_average,
    machine_facts,
    markdown,
    stage_summary,
)

# The pipeline stages in the order the bill_cycle job runs them; "rerating" is rating run again on the
# mediated partition that already exists; "republishing" is the warehouse published again, no part changed.
PIPELINE_STAGES = (
    "intake",
    "mediation",
    "rating",
    "rerating",
    "charges",
    "invoices",
    "commissions",
    "documents",
    "deliveries",
    "warehouse",
    "republishing",
)
README_START = "<!-- bench:latest -->"
README_END = "<!-- /bench:latest -->"


def stage_outputs(home: Path, stage: str, cycle: str) -> list[Path]:
    """What each stage writes, for its output size."""
    lake = home / "lake"
    return {
        "intake": [lake / "usage_records"],
        "mediation": [lake / "mediated" / f"cycle={cycle}"],
        "rating": [lake / "rated" / f"cycle={cycle}"],
        "rerating": [lake / "rated" / f"cycle={cycle}"],
        "charges": [lake / "charges" / f"cycle={cycle}"],
        "invoices": [lake / "invoices" / f"cycle={cycle}"],
        "commissions": [lake / "commissions" / f"cycle={cycle}"],
        "documents": [home / "documents" / cycle],
        "deliveries": [home / "outbox", home / "print" / cycle],
        "warehouse": [home / "warehouse.duckdb"],
        "republishing": [home / "warehouse.duckdb"],
        "floor": [home / "floor"],
        "documents_naive": [home / "naive-documents"],
    }[stage]


def fresh_home(dataset: Path, home: Path) -> None:
    """A new home holding the dataset's reference tables and landing files (the raw files hard-linked: intake
    only reads and renames them, so the cached month stays intact)."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copytree(dataset / "reference", home / "reference")
    shutil.copytree(dataset / "landing", home / "landing", copy_function=os.link)


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run_repeat(
    dataset: Path, home: Path, documents: int, naive_documents: int, stages: tuple[str, ...]
) -> dict[str, Measurement]:
    """One pass: the floor, then the pipeline stages in order, then the naive renderer (with documents)."""
    fresh_home(dataset, home)
    extra = ["--documents", str(documents), "--naive-documents", str(naive_documents)]
    runs = {}
    naive = ("documents_naive",) if "documents" in stages else ()
    for stage in ("floor", *stages, *naive):
        runs[stage] = run_stage(stage, home, CYCLE, stage_outputs(home, stage, CYCLE), extra)
        log(f"  {stage}: {runs[stage].wall_s:.2f} s, {runs[stage].peak_rss_mib:.0f} MiB")
    return runs


def sample_cycle_run() -> Measurement:
    """``cdrbill demo`` in a fresh home: the sample month through the Dagster job, in process."""
    with tempfile.TemporaryDirectory(prefix="bench-sample-") as tmp:
        return run_command(
            "sample_cycle",
            [sys.executable, "-m", "assets.cli", "--home", str(Path(tmp) / "home"), "demo"],
        )


def summarise(
    size: Size,
    summary: dict[str, Any],
    repeats: list[dict[str, Measurement]],
    samples: list[Measurement],
    started: datetime,
    load_start: list[float],
    note: str,
) -> dict[str, Any]:
    """The run's result: medians per stage and their ratio to the floor, raw → rated (intake + mediation +
    rating over the floor's raw records), naive vs our documents, the sample cycle, and the targets."""
    floor = stage_summary([r["floor"] for r in repeats], None)
    floor_per_s = floor["records_per_s"]
    ran = [s for s in PIPELINE_STAGES if s in repeats[0]]
    stages = [stage_summary([r[s] for r in repeats], floor_per_s) for s in ran]
    raw_wall = statistics.median(sum(r[s].wall_s for s in RAW_TO_RATED) for r in repeats)
    raw_per_s = floor["records"] / raw_wall if raw_wall else 0.0
    by_stage = {s["stage"]: s for s in stages}
    result: dict[str, Any] = {
        "size": {
            "label": size.label,
            "accounts": size.accounts,
            "calls_per_account": size.calls_per_account,
            "cdrs": size.cdrs,
        },
        "cycle": CYCLE,
        "seed": summary["seed"],
        "repeats": len(repeats),
        "started_utc": f"{started:%Y-%m-%d %H:%M}",
        "finished_utc": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "note": note,
        "mix": summary.get("mix", {}).get("name", PLAIN),
        "machine": machine_facts(),
        "dataset": {
            "random_calls": summary["random_calls"],
            "service_numbers": summary["service_numbers"],
            "raw_files": len(summary["files"])
            - sum(1 for f in summary["files"] if f.startswith("reference/")),
            "files": summary["files"],
            "anomalies": summary["anomalies"],
            "rate_deck": summary["rate_deck"],
            "bad_records_injected": summary["bad_records_injected"],
            "generate_s": summary["generate_s"],
            # records per format, duplicates and bad records (a plain month's summary predates the field)
            "composition": summary.get("composition") or composition(summary),
            **({"mix": summary["mix"]} if "mix" in summary else {}),
        },
        "floor": floor,
        "stages": stages,
        "raw_to_rated": {
            "records": floor["records"],
            "wall_s": round(raw_wall, 3),
            "records_per_s": round(raw_per_s, 1),
            "cpu_s": round(sum(by_stage[s]["cpu_s"] for s in RAW_TO_RATED), 3),
            "ratio_to_floor": round(raw_per_s / floor_per_s, 3) if floor_per_s else None,
            "peak_rss_mib": max(by_stage[s]["peak_rss_mib_max"] for s in RAW_TO_RATED),
        },
    }
    if "documents" in by_stage:
        ours = by_stage["documents"]
        ours_per_s = statistics.median(r["documents"].detail["invoices_per_s"] for r in repeats)
        naive_per_s = statistics.median(r["documents_naive"].detail["invoices_per_s"] for r in repeats)
        result["documents_compare"] = {
            "invoices": ours["records"],
            "naive_invoices": repeats[-1]["documents_naive"].records,
            "models_built": ours["detail"]["models_built"],
            "render_workers": ours["detail"]["render_workers"],
            "naive_invoices_per_s": naive_per_s,
            "ours_invoices_per_s": ours_per_s,
            "naive_cpu_s_per_invoice": statistics.median(
                r["documents_naive"].detail["cpu_s_per_invoice"] for r in repeats
            ),
            "ours_cpu_s_per_invoice": statistics.median(
                r["documents"].detail["cpu_s_per_invoice"] for r in repeats
            ),
            "models_s": statistics.median(r["documents"].detail["models_s"] for r in repeats),
            "rerun_unchanged_s": statistics.median(r["documents"].detail["rerun_unchanged_s"] for r in repeats),
            "speedup": round(ours_per_s / naive_per_s, 2) if naive_per_s else None,
            "naive": stage_summary([r["documents_naive"] for r in repeats], None),
        }
    if samples:
        result["sample_cycle"] = {
            "wall_s": round(statistics.median(s.wall_s for s in samples), 2),
            "wall_s_runs": [round(s.wall_s, 2) for s in samples],
            "cpu_s": round(statistics.median(s.cpu_s for s in samples), 2),
            "peak_rss_mib": round(max(s.peak_rss_mib for s in samples), 1),
        }
    result["targets"] = check_targets(result)
    return result


def update_readme(readme: Path, table: str, results_md: Path) -> None:
    """Replace the README's latest benchmark table (between the bench markers)."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme}: no {README_START} … {README_END} markers; add them where the table goes")
    block = f"{README_START}\nLatest run (`{results_md.resolve().relative_to(PROJECT_ROOT).as_posix()}`):\n\n{table}{README_END}"
    readme.write_text(text[:start] + block + text[end + len(README_END) :], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size",
        default="1m",
        help="100k, 1m (default), 1m-5k, 2m-10k, 10m, 50m, 10m-200k, or a CDR count like 2k",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; medians are reported")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--prefixes", type=int, default=DECK_PREFIXES, help="NPA-NXX destination prefixes per rate card"
    )
    parser.add_argument(
        "--documents",
        type=int,
        default=DOCUMENTS,
        help="invoices rendered and delivered per run (enough that the render pool's start-up is a cycle's share)",
    )
    parser.add_argument(
        "--naive-documents", type=int, default=NAIVE_DOCUMENTS, help="the first of them rendered naively"
    )
    parser.add_argument(
        "--cache", type=Path, default=PROJECT_ROOT / ".bench", help="generated months and homes"
    )
    parser.add_argument("--results", type=Path, default=PROJECT_ROOT / "bench" / "results")
    parser.add_argument(
        "--no-sample-cycle", action="store_true", help="skip the sample cycle through Dagster"
    )
    parser.add_argument("--readme", action="store_true", help="show this run's table in README.md")
    parser.add_argument(
        "--until",
        choices=PIPELINE_STAGES[2:],
        default=PIPELINE_STAGES[-1],
        help="last pipeline stage to run (default: all; e.g. rerating for the 10M raw → rated targets)",
    )
    parser.add_argument("--note", default="", help="a remark printed with the results (e.g. machine shared)")
    parser.add_argument(
        "--mix",
        choices=sorted(MIXES),
        default=PLAIN,
        help="format mix of the month: plain (as generated: Asterisk and EMI, the default) or realistic (part "
        "of the Asterisk calls delivered as FreeSWITCH, CUCM and BroadWorks, duplicates ~1 %%)",
    )
    parser.add_argument(
        "--split-lines",
        type=int,
        default=0,
        metavar="N",
        help="deliver the month's line files (Asterisk, FreeSWITCH, BroadWorks, CUCM) cut into files of N lines "
        "each, as a switch that closes its CDR file every hour or minute (default: as generated, a few large files)",
    )
    args = parser.parse_args(argv)
    if args.readme and not args.results.resolve().is_relative_to(PROJECT_ROOT):
        parser.error("--readme links the results from README.md: --results must be inside the project")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.split_lines < 0:
        parser.error("--split-lines must be at least 1 (or 0: the files as generated)")

    size = parse_size(args.size)
    stages = PIPELINE_STAGES[: PIPELINE_STAGES.index(args.until) + 1]
    started, load_start = datetime.now(UTC), load_average()
    log(f"size {size.label}: {size.accounts} accounts × {size.calls_per_account} calls ({args.mix}); dataset …")
    dataset, summary = ensure_dataset(
        args.cache.resolve(), size, args.seed, args.prefixes, args.mix, args.split_lines
    )
    # the run's home, apart from a plain month's run of the same size (two runs must not share a home)
    month = size.label if args.mix == PLAIN else f"{size.label}-{args.mix}"
    month += f"-split{args.split_lines}" if args.split_lines else ""
    home = args.cache.resolve() / "run" / month / "home"
    repeats, samples = [], []
    try:
        for i in range(args.repeat):
            log(f"run {i + 1} of {args.repeat}")
            repeats.append(run_repeat(dataset, home, args.documents, args.naive_documents, stages))
            if not args.no_sample_cycle:
                samples.append(sample_cycle_run())
                log(f"  sample cycle: {samples[-1].wall_s:.2f} s")
    finally:
        shutil.rmtree(home, ignore_errors=True)

    result = summarise(size, summary, repeats, samples, started, load_start, args.note)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"{started:%Y-%m-%d}-{month}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    table = markdown(result)
    md_path.write_text(f"# Benchmark {size.label}\n\n{table}", encoding="utf-8")
    if args.readme:
        update_readme(PROJECT_ROOT / "README.md", table, md_path)
    print(table)
    print(f"results: {json_path} and {md_path}")
    return 0
