"""The thread pools: the decode pool every chunk read and write runs on, and the prefetch thread
of scans.

Decoding runs on ``threads()`` threads (GIL-releasing codecs). Work is handed to them in tasks
(``run_all``), as an ordered stream (``ordered``: reading and reducing whole layers), or one result
ahead of the caller (``ahead``: scan's next band). Code already on a pool thread runs inline, so a
task never waits on tasks queued behind it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
X = TypeVar("X")

_pool: ThreadPoolExecutor | None = None
_ahead: ThreadPoolExecutor | None = None
_worker = threading.local()  # .active is True on the decode pool's own threads


def threads() -> int:
    """Decoding threads: ``LOOMFILE_THREADS`` if set, else every core (at most 8)."""
    value = os.environ.get("LOOMFILE_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(8, os.cpu_count() or 1))


def _mark_worker() -> None:
    _worker.active = True


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(threads(), thread_name_prefix="loomfile-decode", initializer=_mark_worker)
    return _pool


def run_all(tasks: list[Callable[[], None]]) -> None:
    """Run tasks on the pool, re-raising the first failure.

    Inline when there is only one task, one thread, or when called from a pool thread (waiting
    there on more pool tasks could deadlock).
    """
    if len(tasks) <= 1 or threads() == 1 or getattr(_worker, "active", False):
        for task in tasks:
            task()
        return
    futures: list[Future[None]] = [pool().submit(task) for task in tasks]
    try:
        for f in futures:
            f.result()
    finally:
        for f in futures:
            f.cancel()


def ordered(fn: Callable[[X], T], items: Iterable[X]) -> Iterator[T]:
    """``fn(item)`` for each item, in order, computed on the pool, a few at a time.

    For whole-layer operations (sparse, map) with no caller code between items: each task reads
    its block (inline, on its pool thread) and reduces it there, so reading, decoding and the
    numpy work all use every core. At most 2 x threads items are in flight.
    """
    if threads() == 1 or getattr(_worker, "active", False):
        yield from map(fn, items)
        return
    window = 2 * threads()
    queue: deque[Future[T]] = deque()
    try:
        for item in items:
            queue.append(pool().submit(fn, item))
            if len(queue) >= window:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()
    finally:
        for f in queue:
            f.cancel()
        for f in queue:
            with contextlib.suppress(Exception):
                f.result()


Job = tuple[Callable[[], T], Callable[[int], bool]]  # (compute, changed since generation?)


def ahead(jobs: Iterable[Job[T]], clock: Callable[[], int]) -> Iterator[T]:
    """Each job's result, in order, the next one computed in the background while the caller uses
    the current one: at most two results exist at a time.

    A result is computed again, in order, if what it read changed after it was started (``clock``
    gives the file's generation; the job says whether anything it depends on changed since), or if
    the background attempt failed (a read racing a write); so the caller sees what an in-order
    computation would have seen.
    """
    global _ahead
    if _ahead is None:
        _ahead = ThreadPoolExecutor(1, thread_name_prefix="loomfile-prefetch")
    pending: tuple[Callable[[], T], Callable[[int], bool], int, Future[T]] | None = None
    try:
        for compute, changed in jobs:
            following = (compute, changed, clock(), _ahead.submit(compute))
            if pending is not None:
                yield _collect(*pending)
            pending = following
        if pending is not None:
            last, pending = pending, None
            yield _collect(*last)
    finally:
        if pending is not None and not pending[3].cancel():
            with contextlib.suppress(Exception):
                pending[3].result()  # never leave a read running on a file the caller may now close


def _collect(compute: Callable[[], T], changed: Callable[[int], bool], started: int, future: Future[T]) -> T:
    try:
        result = future.result()
    except Exception:
        return compute()
    return compute() if changed(started) else result
