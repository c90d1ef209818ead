"""Work on two cores, results in order: a bounded map of tasks onto a few threads (polars, pyarrow and hashlib
release the GIL while they work), taken back in the order given — the order of a file's lines — with at most
``ahead`` tasks taken and not yet handed back, so that memory stays bounded by a few batches, never a file."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2, ahead: int = 2
) -> Generator[R, None, None]:
    """``fn`` of each item on up to ``workers`` threads, yielded in the items' order; an item is taken only
    while fewer than ``ahead`` are taken and not yet yielded (``ahead`` = 1: one at a time, as a loop would).

    Errors come in the order a plain loop would meet them: an error of ``fn`` for item n is raised when
    item n's turn comes (the items before it yielded first); an error of ``items`` itself (a file that
    changed while read) is raised after every item it gave before is yielded. Closed early — the consumer
    failed, or stopped — it cancels the items not started and waits for the running ones, so no thread is
    left working when the caller cleans up (an aborted partition)."""
    if ahead < 1 or workers < 1:
        raise ValueError("workers and ahead must be at least 1")
    pending: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(max_workers=min(workers, ahead), thread_name_prefix="ordered")
    try:
        source = iter(items)
        while True:
            while len(pending) < ahead:
                try:
                    item = next(source)
                except StopIteration:
                    break
                except BaseException:
                    while pending:  # what came before the error, as a loop would have handed it over
                        yield pending.popleft().result()
                    raise
                pending.append(pool.submit(fn, item))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
