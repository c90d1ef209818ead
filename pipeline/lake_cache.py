"""The read cache of a lake on an object store: ``lake/.cache/<uuid>/<dataset>/<key>=<value>/``, one whole
version per ``<uuid>`` folder, copied once (versions never change). A process that resolves a version holds it
(a shared ``flock`` on its ``<uuid>`` folder, kept while the process lives), and ``trim`` keeps the cache under
a bound by evicting the least recently used versions that no process holds and no pointer names — several
processes (pods, step subprocesses) may share one cache folder."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MISSING = "missing"  # where a partition without a version resolves to (never written, never cached)
EVICTED = ".evicted-"  # a version renamed away by an eviction, being removed
# a copy's folder (``.<hex>``) is locked by its copier a moment after it is made: one older than this whose lock
# is free was left by a reader killed mid-copy
INTERRUPTED_AFTER_S = 5.0


@dataclass(frozen=True)
class CachedVersion:
    """One version in the cache: its ``<uuid>`` folder, the partition path inside it, bytes, last use."""

    key: str
    partition: str
    size: int
    used: float


class ReadCache:
    """The cache folder and the versions this process holds in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.held: dict[str, int] = {}  # version uuid -> its folder's descriptor, with a shared lock on it

    def hold(self, key: str) -> bool:
        """Hold cached version ``key`` for this process and mark it used now (rule: a version a process
        resolved is never evicted under it); False when it is not in the cache (or was evicted meanwhile)."""
        folder = self.root / key
        if key in self.held:
            os.utime(folder)
            return True
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return False
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits for an eviction in progress to finish
        try:
            same = os.stat(folder).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # evicted (renamed away) between the open and the lock
            os.close(fd)
            return False
        self.held[key] = fd
        os.utime(folder)
        return True

    def entries(self) -> list[CachedVersion]:
        """Every whole version in the cache (not the folders being copied in, ``.<hex>``, nor evictions)."""
        found = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.name.startswith(".") or folder.name == MISSING or not folder.is_dir():
                continue
            partition = _partition_in(folder)
            if partition is None:
                continue
            try:
                found.append(CachedVersion(folder.name, partition, _size(folder), folder.stat().st_mtime))
            except FileNotFoundError:  # evicted by another process while looked at
                continue
        return found

    def trim(self, bound: int, is_current: Callable[[str, str], bool]) -> list[CachedVersion]:
        """Evict versions, least recently used first, until the cache holds at most ``bound`` bytes (rule: never
        a version that ``is_current(partition, key)``, nor one held by this or another process); returns those
        evicted. An evicted folder is renamed away under an exclusive lock, then removed: a version is in the
        cache whole or not at all."""
        entries = sorted(self.entries(), key=lambda entry: entry.used)
        total = sum(entry.size for entry in entries)
        evicted = []
        for entry in entries:
            if total <= bound:
                break
            if entry.key in self.held or is_current(entry.partition, entry.key):
                continue
            if self._evict(entry.key):
                total -= entry.size
                evicted.append(entry)
        return evicted

    def _evict(self, key: str) -> bool:
        folder = self.root / key
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a process holds it
                return False
            gone = self.root / f"{EVICTED}{uuid.uuid4().hex}"
            try:
                os.rename(folder, gone)
            except FileNotFoundError:
                return False
        finally:
            os.close(fd)
        _remove_evicted(gone)
        return True

    def copying(self) -> tuple[Path, int]:
        """A new folder to copy a version into (``.<hex>``), locked for the copy: the folder and the lock's
        descriptor (close it once the folder is renamed into place). The lock tells ``remove_interrupted`` that
        the copy is at work."""
        aside = self.root / f".{uuid.uuid4().hex}"
        aside.mkdir(parents=True, mode=0o700)
        fd = os.open(aside, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return aside, fd

    def remove_interrupted(self) -> list[tuple[str, float]]:
        """Remove what killed processes left in the cache (rule: nothing a live process works in): copies whose
        copier is gone (``.<hex>`` folders older than ``INTERRUPTED_AFTER_S`` whose lock is free) and evictions
        renamed away but not removed; their names and ages in seconds."""
        removed = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if not folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                age = time.time() - folder.stat().st_mtime
                abandoned = age > INTERRUPTED_AFTER_S and _unlocked(folder)
                if not (folder.name.startswith(EVICTED) or abandoned):
                    continue
            except FileNotFoundError:  # renamed into place or removed meanwhile
                continue
            if folder.name.startswith(EVICTED):
                _remove_evicted(folder)
            else:
                shutil.rmtree(folder, ignore_errors=True)
            removed.append((folder.name, age))
        return removed


def _remove_evicted(gone: Path) -> None:
    """Remove an evicted version's folder; a version this machine wrote is cached as a link to its written
    folder: that folder goes too."""
    for link in (path for path in gone.rglob("*") if path.is_symlink()):
        shutil.rmtree(os.path.realpath(link), ignore_errors=True)
    shutil.rmtree(gone, ignore_errors=True)


def _unlocked(folder: Path) -> bool:
    """No process holds a lock on ``folder`` (the check takes and drops an exclusive one)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _partition_in(folder: Path) -> str | None:
    """The partition path inside a cached version's folder: the dataset, then its ``key=value`` folders."""
    parts: list[str] = []
    path = folder
    while True:
        children = [child for child in path.iterdir() if child.is_dir()] if path.is_dir() else []
        if len(children) != 1 or (parts and "=" not in children[0].name) or path.is_symlink():
            break
        path = children[0]
        parts.append(path.name)
        if path.is_symlink():
            break
    return "/".join(parts) if len(parts) >= 2 else None


def _size(folder: Path) -> int:
    """Bytes of a cached version's files (through the link of a version written on this machine)."""
    return sum(
        os.path.getsize(os.path.join(top, name))
        for top, _dirs, names in os.walk(folder, followlinks=True)
        for name in names
    )
