"""Run locks: one run writes a home at a time, and a run that died can be told from one that is alive.

Locks are ``flock`` locks on files under ``<home>/locks/``: the kernel releases them when their process ends,
however it ends (SIGKILL, power cut), so a crash never leaves a home locked."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

HOME_LOCK = "home.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def hold(path: Path, holder: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock at ``path`` for the block (rule: one writer per home; a second run waits for the first).

    ``on_wait`` is told once, with the current holder's description, when the lock is busy."""
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait(os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another run")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"{holder} (pid {os.getpid()}, since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)".encode(), 0
        )
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_held(path: Path) -> bool:
    """Whether a live process holds the lock at ``path`` (a lock file whose process died is free)."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def held_by(path: Path, holder: str) -> bool:
    """Whether the lock at ``path`` is held by a live process that described itself as ``holder`` (rule: the
    steps of a run whose orchestrating process holds the home go on; anyone else waits)."""
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8", errors="replace")
    return text.startswith(f"{holder} (pid ") and is_held(path)
