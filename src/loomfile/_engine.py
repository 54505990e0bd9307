"""The chunk-level read engine: each needed chunk read and decoded once, on every core.

A read of ``rows`` x ``cols`` is planned on the chunk grid: the selected rows fall into bands of
chunk rows, the selected columns into a set of chunk columns. Each band's chunks are fetched with
one positioned read, inflated by a codec that releases the GIL, and placed into the output with a
few whole-array copies. Bands are grouped into tasks of a few hundred chunks and run on a small
thread pool (never one task per chunk: per-task overhead would exceed the decoding).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np

from ._chunks import ChunkLayout
from ._selection import AxisSelection, IntArray

# A task decodes at least this many chunks (tens of microseconds each).
TASK_CHUNKS = 256
# A band decodes at most this many chunks at once (bounds each thread's buffers to a few MiB).
SEGMENT_CHUNKS = 512
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


@dataclass
class _Segment:
    """Selected columns that fall into one run of at most SEGMENT_CHUNKS chunk columns."""

    grid_cols: IntArray  # the chunk columns to decode, ascending
    out: slice  # where these columns go in the output
    first: int  # a contiguous run of columns [first, stop), or -1 ...
    stop: int
    flat: IntArray | None  # ... else each column's position in the flattened decoded chunks


def _segments(cu: IntArray, layout: ChunkLayout) -> list[_Segment]:
    """Split the sorted, unique columns ``cu`` so no band decodes more than SEGMENT_CHUNKS chunks."""
    c0, c1 = layout.chunks
    grid_of = cu // c1
    grid_cols = np.unique(grid_of)
    run = int(cu[-1]) - int(cu[0]) + 1 == cu.size
    segments = []
    for s in range(0, grid_cols.size, SEGMENT_CHUNKS):
        g = grid_cols[s : s + SEGMENT_CHUNKS]
        q0 = int(np.searchsorted(grid_of, g[0], "left"))
        q1 = int(np.searchsorted(grid_of, g[-1], "right"))
        part = cu[q0:q1]
        if run:
            segments.append(_Segment(g, slice(q0, q1), int(part[0]), int(part[-1]) + 1, None))
        else:
            flat = np.searchsorted(g, part // c1) * (c0 * c1) + part % c1
            segments.append(_Segment(g, slice(q0, q1), -1, -1, flat))
    return segments


def _place_run(dst: np.ndarray, src: np.ndarray, first: int, stop: int, c1: int) -> None:
    """dst[:, :] = columns [first, stop) of the chunks ``src`` (k, h, c1) laid side by side.

    ``src[j]`` holds columns [(g + j) * c1, (g + j + 1) * c1) where g = first // c1.
    """
    k = src.shape[0]
    off = first % c1
    if k == 1:
        dst[:, :] = src[0, :, off : off + (stop - first)]
        return
    head = c1 - off
    dst[:, :head] = src[0, :, off:]
    middle = k - 2
    if middle:
        inner = dst[:, head : head + middle * c1]
        view = np.lib.stride_tricks.as_strided(
            inner,
            shape=(inner.shape[0], middle, c1),
            strides=(inner.strides[0], c1 * inner.strides[1], inner.strides[1]),
        )
        np.copyto(view, src[1 : k - 1].transpose(1, 0, 2))
    dst[:, head + middle * c1 :] = src[k - 1, :, : stop - first - head - middle * c1]


def _read_band(
    layout: ChunkLayout, grid_row: int, rows: slice | IntArray, seg: _Segment, dst: np.ndarray
) -> None:
    """Decode one row of chunks and place the selected rows and columns into ``dst``."""
    chunks = layout.decode_row(grid_row, seg.grid_cols)
    if seg.flat is None:
        _place_run(dst, chunks[:, rows, :], seg.first, seg.stop, layout.chunks[1])
        return
    row_ix = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
    flat = (row_ix * layout.chunks[1])[:, None] + seg.flat[None, :]
    np.take(chunks.reshape(-1), flat, out=dst, mode="clip")  # indices are in range; "clip" avoids a buffer


def read_sorted(layout: ChunkLayout, ru: IntArray, cu: IntArray) -> np.ndarray[Any, Any]:
    """``dset[ru][:, cu]`` for sorted, unique ``ru`` and ``cu``, each needed chunk decoded once."""
    out = np.empty((ru.size, cu.size), dtype=layout.dtype)
    if ru.size == 0 or cu.size == 0:
        return out
    c0 = layout.chunks[0]
    segments = _segments(cu, layout)
    band_of = ru // c0
    breaks = np.flatnonzero(np.diff(band_of)) + 1
    starts = np.concatenate(([0], breaks)).tolist()
    stops = np.concatenate((breaks, [ru.size])).tolist()
    steps: list[tuple[int, Callable[[], None]]] = []
    for p0, p1 in zip(starts, stops, strict=True):
        g = int(band_of[p0])
        local = ru[p0:p1] - g * c0
        rows: slice | IntArray = local
        if int(local[-1]) - int(local[0]) + 1 == local.size:
            rows = slice(int(local[0]), int(local[-1]) + 1)
        for seg in segments:
            dst = out[p0:p1, seg.out]
            steps.append((seg.grid_cols.size, partial(_read_band, layout, g, rows, seg, dst)))
    run_all(_tasks(steps))
    return out


def _tasks(steps: list[tuple[int, Callable[[], None]]]) -> list[Callable[[], None]]:
    """Group (cost, step) pairs, in order, into tasks of at least TASK_CHUNKS chunks each."""
    tasks: list[Callable[[], None]] = []
    group: list[Callable[[], None]] = []
    cost = 0
    for n, step in steps:
        group.append(step)
        cost += n
        if cost >= TASK_CHUNKS:
            tasks.append(partial(_run_each, group))
            group, cost = [], 0
    if group:
        tasks.append(partial(_run_each, group))
    return tasks


def _run_each(steps: list[Callable[[], None]]) -> None:
    for step in steps:
        step()


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


def read(layout: ChunkLayout, rows: AxisSelection, cols: AxisSelection) -> np.ndarray[Any, Any]:
    """``dset[rows, cols]`` with numpy's orthogonal semantics (any order, repeats allowed)."""
    ru, r_inverse = rows.sorted_unique()
    cu, c_inverse = cols.sorted_unique()
    out = read_sorted(layout, ru, cu)
    if r_inverse is not None:
        out = out[r_inverse]
    if c_inverse is not None:
        out = out[:, c_inverse]
    return out


def chunks_touched(chunks: tuple[int, ...], rows: AxisSelection, cols: AxisSelection) -> int:
    """How many chunks of a ``chunks``-shaped grid a read of ``rows`` x ``cols`` decodes."""
    return int(np.unique(rows.indices // chunks[0]).size * np.unique(cols.indices // chunks[1]).size)
