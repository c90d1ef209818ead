"""Durable file writes: a file is written aside and renamed into place, so a crash leaves the old file or the
new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(target: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``target``, flush it, and rename it over ``target``.

    ``durable=False`` skips the flush to disk (still never half a file under ``target``): for files whose loss
    in a power cut only costs work done again, like a rendered PDF's content-hash sidecar."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
