"""A whole cycle's invoice documents through the real asset: ``python -m bench.documents_cycle --home H
--cycle C --label L --out results.jsonl``.

The bench's documents stage renders the cycle's first 400 invoices; this renders every invoice of the cycle by
materialising ``invoice_documents`` itself (``dg.materialize``, in process, the shard steps and the render pool
as a run has them). It reports wall time, the machine's busy CPU over the run (``/proc/stat``: the run's
processes and anything else running, so measure on an idle machine), the PDFs in the cycle's folder, and every
5 s the process tree's RSS and the files written so far (``<out>.samples``). Run it again on the same home to
measure a rerun (unchanged invoices are skipped); kill it and run it again to see a crashed run resumed."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path


def _busy_cpu_s() -> float:
    """The machine's busy CPU seconds since boot (all but idle and iowait)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _tree_rss_mib(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (the fork server and the render workers)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, todo, rss = [root], [root], 0
    while todo:
        pid = todo.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        tree += children
        todo += children
    for member in tree:
        try:
            with open(f"/proc/{member}/status") as status:
                rss += next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
        except (OSError, StopIteration):
            continue
    return rss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a bench home with the cycle's invoices")
    parser.add_argument("--cycle", default="2026-10")
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import dagster as dg

    from assets.definitions import defs
    from assets.resources import CdrbillHome

    folder = args.home / "documents" / args.cycle
    samples_path, stop, peak = Path(f"{args.out}.samples"), threading.Event(), [0]
    started, cpu, load = time.time(), _busy_cpu_s(), os.getloadavg()

    def sample() -> None:
        while not stop.is_set():
            files = sum(1 for _ in os.scandir(folder)) if folder.is_dir() else 0
            rss = _tree_rss_mib(os.getpid())
            peak[0] = max(peak[0], rss)
            with samples_path.open("a") as out:
                out.write(json.dumps([round(time.time() - started, 1), rss, files]) + "\n")
            stop.wait(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        selection=["invoice_documents"],
        partition_key=args.cycle,
        resources={"cdrbill": CdrbillHome(root=str(args.home))},
        raise_on_error=False,
    )
    row = {
        "label": args.label,
        "success": result.success,
        "wall_s": round(time.time() - started, 1),
        "machine_cpu_s": round(_busy_cpu_s() - cpu, 1),
        "pdfs_in_folder": sum(1 for _ in folder.glob("*.pdf")),
        "load_before": load,
        "load_after": os.getloadavg(),
    }
    stop.set()
    sampler.join()
    row["peak_tree_rss_mib"] = peak[0]
    print(json.dumps(row))
    with args.out.open("a") as out:
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":  # the render pool's fork server imports this module again: run only when asked
    main()
