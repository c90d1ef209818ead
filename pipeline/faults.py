"""Fail points for the crash-safety harness (tests/test_crash_safety.py): with ``CDRBILL_CRASH_AT=<point>`` (or
``<point>@<n>`` for its n-th passage) the process kills itself with SIGKILL when it reaches that named point, as
a power cut would. Unset — always, in production — a fail point costs one environment lookup."""

from __future__ import annotations

import os
import signal
from collections import Counter

_passages: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die here, without cleanup, if the harness asked for it (rule: every write path survives a kill)."""
    wanted = os.environ.get("CDRBILL_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _passages[name] += 1
    if _passages[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
