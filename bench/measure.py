"""Measuring one stage: run it in a fresh process and read that process's own wall time, peak RSS and the
bytes it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Invoices the documents and deliveries stages take, the cycle's first by number: enough that the render pool's
# start-up (the fork server's WeasyPrint import, each worker's stylesheet and fonts: ~2.4 CPU s) weighs on the
# rate about as little as in a cycle of thousands; over 50 it was 22 % of the CPU per invoice
# (docs/SCALE_LOG.md, "Documents at 400 invoices, today's host"). The naive renderer (one process, ~3× the
# CPU per invoice) takes the first NAIVE_DOCUMENTS of them.
DOCUMENTS = 400
NAIVE_DOCUMENTS = 50


@dataclass(frozen=True)
class Measurement:
    """One run of one stage."""

    stage: str
    wall_s: float  # the stage's own clock (after imports)
    process_s: float  # the whole process, interpreter start-up included
    peak_rss_mib: float  # the stage process's own peak, or its largest render worker's
    cpu_s: float  # user + system CPU of the process and its workers, start-up included (robust to sharing)
    output_bytes: int
    records: int
    detail: dict[str, Any]


def tree_bytes(paths: list[Path]) -> int:
    """Bytes of every file under ``paths``, following the lake's partition symlinks."""
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
            continue
        for folder, _dirs, files in os.walk(path, followlinks=True):
            total += sum((Path(folder) / name).stat().st_size for name in files)
    return total


def run_stage(
    stage: str, home: Path, cycle: str, outputs: list[Path], extra: list[str] | None = None
) -> Measurement:
    """Run ``python -m bench.stages <stage>`` in a fresh process; CPU time from ``wait4``, peak RSS as the stage reports it."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "bench.stages",
            stage,
            "--home",
            str(home),
            "--cycle",
            cycle,
            "--out",
            str(result_path),
            *(extra or []),
        ]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT_ROOT)
        _pid, status, usage = os.wait4(process.pid, 0)
        process_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(
                f"stage {stage} failed with exit code {process.returncode}: {' '.join(command)}"
            )
        result = json.loads(result_path.read_text(encoding="utf-8"))
    wall = float(result.pop("wall_s"))
    records = int(result.pop("records"))
    # the child's own high-water mark: wait4's ru_maxrss would also count the parent's RSS at fork time
    peak = float(result.pop("peak_rss_mib"))
    return Measurement(
        stage=stage,
        wall_s=wall,
        process_s=process_s,
        peak_rss_mib=peak,
        cpu_s=usage.ru_utime + usage.ru_stime,
        output_bytes=tree_bytes(outputs),
        records=records,
        detail=result,
    )


def run_command(name: str, command: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Time a whole command (used for the sample cycle through Dagster, start-up included); its peak RSS is
    ``wait4``'s, which is at least the parent's RSS at fork time (the parent stays small: no generation)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{name} failed: {' '.join(command)}")
    return Measurement(
        name, elapsed, elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, 0, 0, {}
    )
