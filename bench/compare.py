"""``python -m bench.compare RESULT.json ...``: how each stage's cost grows between benchmark sizes, as the
Markdown table in ``docs/SCALE_LOG.md`` ("Per-stage throughput") shows (wall time, records/s and peak RSS per
size, and the growth of wall time and peak RSS per ×10 of input between consecutive sizes)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def growth_table(results: list[dict[str, Any]]) -> str:
    """One row per stage; for consecutive sizes the exponent ``b`` in wall ∝ records^b (1 = linear)."""
    results = sorted(results, key=lambda r: r["floor"]["records"])
    labels = [r["size"]["label"] for r in results]
    header = ["stage"]
    for label in labels:
        header += [f"{label} wall s", f"{label} rec/s", f"{label} RSS MiB"]
    pairs = list(zip(results, results[1:], strict=False))
    header += [f"wall exponent {a['size']['label']}→{b['size']['label']}" for a, b in pairs]
    header += [f"RSS × {a['size']['label']}→{b['size']['label']}" for a, b in pairs]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    rows = [("floor", [r["floor"] for r in results])]
    everywhere = set.intersection(*({s["stage"] for s in r["stages"]} for r in results))
    stage_names = [s["stage"] for s in results[0]["stages"] if s["stage"] in everywhere]
    for name in stage_names:
        rows.append((name, [next(s for s in r["stages"] if s["stage"] == name) for r in results]))
    rows.append(("raw → rated", [{**r["raw_to_rated"], "stage": "raw → rated"} for r in results]))
    for name, per_size in rows:
        cells = [name]
        for s in per_size:
            cells += [f"{s['wall_s']:.2f}", f"{s['records_per_s']:,.0f}", f"{s['peak_rss_mib']:,.0f}"]
        for a, b in zip(per_size, per_size[1:], strict=False):
            ratio_records = b["records"] / a["records"] if a["records"] else 0
            ok = ratio_records > 1 and a["wall_s"] > 0 and b["wall_s"] > 0
            cells.append(
                f"{math.log(b['wall_s'] / a['wall_s']) / math.log(ratio_records):.2f}" if ok else "—"
            )
        for a, b in zip(per_size, per_size[1:], strict=False):
            cells.append(f"{b['peak_rss_mib'] / a['peak_rss_mib']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: print the growth table."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench/results/*.json of different sizes")
    args = parser.parse_args(argv)
    print(growth_table([json.loads(p.read_text(encoding="utf-8")) for p in args.results]), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
