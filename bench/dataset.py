"""Benchmark months: generated once per size and seed with ``data_samples/generate.py`` and cached under
``.bench/data/``, then given a realistic rate deck (NPA-NXX destination prefixes) by post-processing the
generated ``rate_cards.csv``."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.mix import MIXES, apply_mix
from data_samples.generate import generate_month
from pipeline.formats.batches import LINE_FORMATS

CYCLE = "2026-10"
DEFAULT_SEED = 2026
DECK_PREFIXES = 50_000
BAD_RECORD_EVERY = 200  # ~0.5 % bad records, as the reference month has
# bump when the post-processing or the generator's output changes: cached months are then generated again
# (3: the bad lines' host accounts chosen by the whole account number, not its last 4 digits, from 10,000 accounts)
DATASET_VERSION = 3
PLAIN = "plain"  # the month as generated (Asterisk and EMI only): the results log compares these across runs
# bump when the format mix's output changes: cached mixed months are then made again from their plain month
MIX_VERSION = 2  # 2: no second-switch copy in BroadWorks
_ANSWERED_BILLSEC = re.compile(r',(\d+),(\d+),"ANSWERED",')
# NANP area codes that must not get an NPA-NXX row: toll-free (their own rows), Jamaica (1876 row), N11.
_SPECIAL_NPAS = {800, 833, 844, 855, 866, 877, 888, 876} | {n * 100 + 11 for n in range(2, 10)}


@dataclass(frozen=True)
class Size:
    """A benchmark size: about ``accounts × calls_per_account`` CDRs."""

    label: str
    accounts: int
    calls_per_account: int

    @property
    def cdrs(self) -> int:
        return self.accounts * self.calls_per_account


# Named sizes. 10m is 50k accounts × 200 calls (the generator's 555 exchanges capped a month near 100k accounts
# when it was made: its months stay as they were); 50m is 10m's shape × 5 (issue 8: peak RSS at 5× the input);
# 10m-200k is the reference shape, 10M CDRs over 200k accounts (what accounts cost apart from CDRs);
# 2m-10k is the 10m shape ÷ 5 (a 5× pair with 10m that a shared machine can run); 1m-5k is 1m's CDRs over a
# quarter of its accounts (a pair with 1m that varies the accounts alone).
SIZES = {
    "100k": Size("100k", 2_000, 50),
    "1m": Size("1m", 20_000, 50),
    "2m-10k": Size("2m-10k", 10_000, 200),
    "10m": Size("10m", 50_000, 200),
    "50m": Size("50m", 250_000, 200),
    "10m-200k": Size("10m-200k", 200_000, 50),
    "1m-5k": Size("1m-5k", 5_000, 200),
}


def parse_size(text: str) -> Size:
    """A named size (100k, 1m, 1m-5k, 2m-10k, 10m, 50m, 10m-200k) or any ``<n>[k|m]`` CDR count at 50 calls per
    account (at least 8 accounts, the generator's minimum)."""
    if text in SIZES:
        return SIZES[text]
    match = re.fullmatch(r"(\d+)([km]?)", text.lower())
    if not match:
        raise ValueError(f"size must be one of {sorted(SIZES)} or a CDR count like 2k, got {text!r}")
    cdrs = int(match[1]) * {"": 1, "k": 1_000, "m": 1_000_000}[match[2]]
    return Size(text.lower(), max(8, cdrs // 50), 50)


def dataset_dir(
    cache: Path, size: Size, seed: int, prefixes: int, mix: str = PLAIN, split_lines: int = 0
) -> Path:
    """Where the month of this size, seed, deck, format mix and file cut is cached (the plain month's name has
    no mix, a month as generated no cut)."""
    name = f"{size.label}-a{size.accounts}-c{size.calls_per_account}-s{seed}-p{prefixes}-v{DATASET_VERSION}"
    if mix != PLAIN:
        name += f"-mix{mix}{MIX_VERSION}"
    if split_lines:
        name += f"-split{split_lines}"
    return cache / "data" / name


def ensure_dataset(
    cache: Path,
    size: Size,
    seed: int = DEFAULT_SEED,
    prefixes: int = DECK_PREFIXES,
    mix: str = PLAIN,
    split_lines: int = 0,
) -> tuple[Path, dict[str, Any]]:
    """The generated month of ``size`` (``reference/`` and ``landing/``), generated on first use and reused
    afterwards; returns its folder and the generator's summary plus the rate-deck post-processing. A format
    ``mix`` other than plain is the plain month (made first if need be) copied and given that mix;
    ``split_lines`` > 0 is that month with its line files cut into files of that many lines
    (``split_landed_files``)."""
    folder = dataset_dir(cache, size, seed, prefixes, mix, split_lines)
    marker = folder / "dataset.json"
    if marker.is_file():
        return folder, json.loads(marker.read_text(encoding="utf-8"))
    staging = folder.with_name(folder.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    if split_lines:
        return _split_dataset(cache, size, seed, prefixes, mix, split_lines)
    if mix != PLAIN:
        return _mixed_dataset(cache, size, seed, prefixes, mix)
    started = time.perf_counter()
    # in a child process: the generator holds the month's columns in memory (~270 MB per 1M CDRs), and a
    # parent that grew that large would lend its size to every stage process it starts afterwards
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        summary = pool.submit(
            generate_month, staging, CYCLE, size.accounts, size.calls_per_account, seed
        ).result()
    summary["generate_s"] = round(time.perf_counter() - started, 2)
    summary["rate_deck"] = expand_rate_deck(staging / "reference" / "rate_cards.csv", prefixes)
    summary["bad_records_injected"] = inject_bad_records(staging / "landing", BAD_RECORD_EVERY)
    (staging / "dataset.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder, summary


def _mixed_dataset(
    cache: Path, size: Size, seed: int, prefixes: int, mix: str
) -> tuple[Path, dict[str, Any]]:
    """The plain month copied, then given the format ``mix`` (``bench/mix.py``); its summary says what the mix
    delivered (``summary["mix"]``) and the month's composition."""
    plan = MIXES[mix]
    if plan is None:
        raise ValueError(f"format mix {mix!r} has no plan")
    plain, summary = ensure_dataset(cache, size, seed, prefixes)
    folder = dataset_dir(cache, size, seed, prefixes, mix)
    staging = folder.with_name(folder.name + ".part")
    started = time.perf_counter()
    for part in ("reference", "landing"):
        shutil.copytree(plain / part, staging / part)
    before = composition(summary)
    delivered = apply_mix(staging, plan, before["records"], before["duplicates"])
    summary = {**summary, "mix": {**delivered, "mix_s": round(time.perf_counter() - started, 2)}}
    reference = {f: n for f, n in summary["files"].items() if not f.startswith("landing/")}
    summary["files"] = reference | landed_files(staging / "landing")  # the raw files are the mix's now
    summary["composition"] = composition(summary)
    (staging / "dataset.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder, summary


def _split_dataset(
    cache: Path, size: Size, seed: int, prefixes: int, mix: str, split_lines: int
) -> tuple[Path, dict[str, Any]]:
    """The month of ``mix`` copied with its line files cut into files of ``split_lines`` lines
    (``split_landed_files``); its summary says how many files landed (``summary["split"]``)."""
    whole, summary = ensure_dataset(cache, size, seed, prefixes, mix)
    folder = dataset_dir(cache, size, seed, prefixes, mix, split_lines)
    staging = folder.with_name(folder.name + ".part")
    started = time.perf_counter()
    shutil.copytree(whole / "reference", staging / "reference")
    cut = split_landed_files(whole / "landing", staging / "landing", staging / "reference" / "sources", split_lines)
    reference = {f: n for f, n in summary["files"].items() if not f.startswith("landing/")}
    summary = {
        **summary,
        "split": {"lines_per_file": split_lines, **cut, "split_s": round(time.perf_counter() - started, 2)},
        "files": reference | landed_files(staging / "landing"),
    }
    (staging / "dataset.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder, summary


def split_landed_files(landing: Path, out: Path, sources: Path, lines: int) -> dict[str, int]:
    """Every landed file of a line format (``LINE_FORMATS``) written to ``out`` as files of ``lines`` lines
    each, in order, named ``<stem>-<n><suffix>`` (a CUCM piece repeats the file's two header lines), as a switch
    that closes its CDR file every hour or minute delivers a month; other files (EMI) are linked whole. The
    same records in the same order: only the number of files changes. Returns the files before and after."""
    formats = {}
    for toml in sources.glob("*.toml"):
        settings = tomllib.loads(toml.read_text(encoding="utf-8"))
        if settings.get("file_sequence") or settings.get("marker_suffix"):
            raise ValueError(f"{toml.name}: a source with file sequences or marker files cannot be cut")
        formats[settings.get("landing", toml.stem)] = settings["format"]
    before = after = 0
    for path in sorted(p for p in landing.glob("*/*") if p.is_file()):
        target = out / path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        before += 1
        header_lines = LINE_FORMATS.get(formats[path.parent.name])
        if header_lines is None:
            os.link(path, target / path.name)
            after += 1
            continue
        with path.open("rb") as fh:
            header = [fh.readline() for _ in range(header_lines)]
            piece: list[bytes] = []
            for line in fh:
                piece.append(line)
                if len(piece) == lines:
                    (target / f"{path.stem}-{after:06d}{path.suffix}").write_bytes(b"".join(header + piece))
                    after, piece = after + 1, []
            if piece:
                (target / f"{path.stem}-{after:06d}{path.suffix}").write_bytes(b"".join(header + piece))
                after += 1
    return {"files_before": before, "files_after": after}


def landed_files(landing: Path) -> dict[str, int]:
    """Every landed file (``landing/<folder>/<name>``) and its line count, counted in bounded byte reads."""
    files = {}
    for path in sorted(landing.glob("*/*")):
        lines = 0
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                lines += chunk.count(b"\n")
        files[f"landing/{path.relative_to(landing).as_posix()}"] = lines
    return files


def composition(summary: dict[str, Any]) -> dict[str, Any]:
    """What a month's usage records are, from its summary: records per format (the generator's Asterisk lines
    and EMI details, or what the format mix made of them), the duplicates (the generator's re-delivered lines
    and the mix's second-switch copies; the EMI resend is a duplicate file, not counted) and the bad records (the
    injected ones and the generator's anomalies), with their shares of all records."""
    mix = summary.get("mix")
    if mix:
        by_format = dict(mix["records_by_format"])
        copies = sum(mix["second_switch_copies"].values())
        for name, n in mix["second_switch_copies"].items():
            by_format[name] = by_format.get(name, 0) + n
    else:
        asterisk = sum(
            n for f, n in summary["files"].items() if f.startswith("landing/") and f.endswith(".csv")
        )
        by_format, copies = {"asterisk_csv": asterisk}, 0
    by_format["emi_duf"] = summary["emi_detail_records"]
    records = sum(by_format.values())
    anomalies, golden = summary["anomalies"], summary["golden_anomalies"]
    duplicates = anomalies["cross_file_duplicates"] + golden["cross_file_duplicates"] + copies
    bad = summary["bad_records_injected"] + golden["non_numeric_billsec_lines"] + sum(
        anomalies[k]
        for k in ("short_column_lines", "impossible_timestamp_lines", "non_numeric_billsec_lines",
                  "emi_bad_elapsed_records")
    )  # fmt: skip
    return {
        "records": records,
        "records_by_format": dict(sorted(by_format.items())),
        "duplicates": duplicates,
        "duplicate_pct": round(100 * duplicates / records, 3) if records else 0.0,
        "bad_records": bad,
        "bad_pct": round(100 * bad / records, 3) if records else 0.0,
    }


def deck_prefixes(count: int) -> list[str]:
    """``count`` NANP NPA-NXX prefixes (``1`` + area code + exchange): every area code's 555 exchange (the
    generator's numbers) first, then the other exchanges spread evenly over all area codes."""
    npas = [npa for npa in range(201, 1000) if npa not in _SPECIAL_NPAS and npa % 100 != 0]
    first = [f"1{npa}555" for npa in npas]
    others = [f"1{npa}{nxx}" for nxx in range(200, 1000) if nxx != 555 for npa in npas]
    needed = max(0, count - len(first))
    step = max(1, len(others) // needed) if needed else 1
    return (first + others[::step][:needed])[:count]


def expand_rate_deck(path: Path, count: int) -> dict[str, int]:
    """Give every rate card ``count`` NPA-NXX rows priced like its ``1`` (US & Canada) row, so the
    longest-prefix match runs against a realistic deck while every charge stays what it was."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    prefixes = deck_prefixes(count)
    added: list[dict[str, str]] = []
    for row in rows:
        if row["prefix"] == "1":
            added.extend({**row, "prefix": prefix} for prefix in prefixes)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows + added)
    return {"original_rows": len(rows), "added_rows": len(added), "prefixes_per_card": len(prefixes)}


def inject_bad_records(landing: Path, every: int) -> int:
    """Make every ``every``-th answered line of each Asterisk CSV unreadable (billsec ``abc``), so the month
    carries bad records at the issue's rate (~0.5 %); EMI files stay as delivered (their trailer counts and
    the byte-identical resend must hold). Returns the number of lines changed."""
    changed = 0
    for path in sorted(landing.glob("*/*.csv")):
        rewritten = path.with_name(path.name + ".tmp")  # line by line: a 10m month's files do not fit in memory
        with path.open(encoding="utf-8", newline="") as src, rewritten.open("w", encoding="utf-8", newline="") as out:
            for i, line in enumerate(src):
                if i % every == every - 1:
                    line, n = _ANSWERED_BILLSEC.subn(r',\1,abc,"ANSWERED",', line, count=1)
                    changed += n
                out.write(line)
        rewritten.replace(path)
    return changed
