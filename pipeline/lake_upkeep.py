"""The lake's upkeep (``cdrbill lake sweep``, the ``lake_sweep`` job): superseded versions past their grace,
versions a killed writer left under ``.versions/`` that nothing names, and — on an object store — the read
cache above its bound. Rule: never a version that a partition's link or pointer names. Run it while no bill run
writes the home's lake (the CLI holds the home's lock; the job carries the home's run-queue tag), since a version
being written is named by nothing until its writer's swap."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.lake import (
    CACHE,
    RETIRED,
    VERSIONS,
    ObjectLake,
    Removal,
    expire_local,
    lake_settings,
    object_store,
    version_partition,
)


def sweep_lake(lake: Path, dry_run: bool = False) -> list[Removal]:
    """Remove (or with ``dry_run`` only list) what the lake no longer needs: retired versions whose grace is
    over (``lake_version_grace``), orphan versions older than the grace that no link or pointer names, and, on
    an object store, read-cache versions above ``lake_cache_bytes`` (least recently used, never a current one)."""
    grace, bound = lake_settings(lake)
    store = object_store(lake)
    if store is None:
        return expire_local(lake, grace, dry_run=dry_run) + _local_orphans(lake, grace, dry_run)
    removed = store.expire(grace, dry_run=dry_run) + _store_orphans(store, grace, dry_run)
    if not dry_run:
        removed += store.trim_cache(bound)
    return removed


def _local_orphans(lake: Path, grace: int, dry_run: bool) -> list[Removal]:
    """Version folders no link in the lake names, not retired, unchanged for at least the grace."""
    versions = lake / VERSIONS
    if not versions.is_dir():
        return []
    linked = {os.path.realpath(link) for link in _links(lake)}
    retired = {marker.name for marker in (lake / RETIRED).iterdir()} if (lake / RETIRED).is_dir() else set()
    now = time.time()
    removed = []
    for folder in sorted(versions.iterdir()):
        if str(folder) in linked or folder.name in retired or not folder.is_dir():
            continue
        age = now - folder.stat().st_mtime
        if age < grace:
            continue
        removed.append(Removal("orphan", folder.name, age))
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def _links(lake: Path) -> Iterator[Path]:
    """Every partition link of the lake (the datasets' and the market shards' parts), not looking inside the
    versions, the markers or the read cache."""
    for top, dirs, names in os.walk(lake):
        if Path(top) == lake:
            dirs[:] = [d for d in dirs if d not in (VERSIONS, RETIRED, CACHE)]
        for name in [*names, *dirs]:
            path = Path(top) / name
            if path.is_symlink():
                yield path


def _store_orphans(store: ObjectLake, grace: int, dry_run: bool) -> list[Removal]:
    """Versions under ``.versions/`` that their partition's pointer does not name, not retired, whose newest
    file is at least the grace old by the store's clock."""
    try:
        folders = store.fs.ls(f"{store.root}/{VERSIONS}", detail=True, refresh=True)
    except FileNotFoundError:
        return []
    retired = {version for version, _ in store.retired()}
    now = store.clock()
    removed = []
    for entry in folders:
        version = str(entry["name"]).rpartition("/")[2]
        if entry.get("type") != "directory" or version in retired:
            continue
        current = store.pointer(version_partition(version))
        if current is not None and current[0] == version:
            continue
        files = store.fs.find(f"{store.root}/{VERSIONS}/{version}", detail=True)
        if not files:
            continue
        age = now - max(float(info["LastModified"].timestamp()) for info in files.values())
        if age < grace:
            continue
        removed.append(Removal("orphan", version, age))
        if not dry_run:
            store.delete_version(version)
    return removed


def format_removals(removals: list[Removal], dry_run: bool) -> str:
    """One line per version removed (or that would be), and a count."""
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {r.kind:<7} {r.version}  ({r.age_s / 60:.0f} min old)" if r.kind != "cache"
             else f"{verb} {r.kind:<7} {r.version}" for r in removals]  # fmt: skip
    lines.append(f"lake sweep: {len(removals)} version(s) {verb}")
    return "\n".join(lines)
