"""The chunk-level read engine: each needed chunk read and decoded once, on every core.

A read of ``rows`` x ``cols`` is planned on the chunk grid: the selected rows fall into bands of
chunk rows, the selected columns into a set of chunk columns. Each band's chunks are fetched with
one positioned read, inflated by a codec that releases the GIL, and placed into the output with a
few whole-array copies. Bands are grouped into tasks of a few hundred chunks and run on a small
thread pool (never one task per chunk: per-task overhead would exceed the decoding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np

from .._selection import AxisSelection, IntArray
from .chunks import ChunkLayout
from .memory import band_buffer
from .pools import run_all

# A task decodes at least this many chunks (tens of microseconds each).
TASK_CHUNKS = 256
# A band decodes at most this many chunks at once (bounds each thread's buffers to a few MiB).
SEGMENT_CHUNKS = 512
T = TypeVar("T")
X = TypeVar("X")

@dataclass
class _Segment:
    """Selected columns that fall into one run of at most SEGMENT_CHUNKS chunk columns."""

    grid_cols: IntArray  # the chunk columns to decode, ascending
    out: slice  # where these columns go in the output
    first: int  # a contiguous run of columns [first, stop), or -1 ...
    stop: int
    rank: IntArray | None  # ... else each column's chunk (index into grid_cols) ...
    within: IntArray | None  # ... and its column inside that chunk


def _segments(cu: IntArray, layout: ChunkLayout) -> list[_Segment]:
    """Split the sorted, unique columns ``cu`` so no tile decodes more than SEGMENT_CHUNKS chunk columns."""
    c1 = layout.chunks[1]
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
            segments.append(_Segment(g, slice(q0, q1), int(part[0]), int(part[-1]) + 1, None, None))
        else:
            segments.append(_Segment(g, slice(q0, q1), -1, -1, np.searchsorted(g, part // c1), part % c1))
    return segments


@dataclass
class _RowGroup:
    """The selected rows that fall into one chunk row, and where they go in the output."""

    grid_row: int
    rows: slice | IntArray  # rows within the chunk
    out: slice
    full: bool  # every row of a whole chunk


def _row_groups(ru: IntArray, c0: int) -> list[_RowGroup]:
    band_of = ru // c0
    breaks = np.flatnonzero(np.diff(band_of)) + 1
    starts = np.concatenate(([0], breaks)).tolist()
    stops = np.concatenate((breaks, [ru.size])).tolist()
    groups = []
    for p0, p1 in zip(starts, stops, strict=True):
        g = int(band_of[p0])
        local = ru[p0:p1] - g * c0
        rows: slice | IntArray = local
        if int(local[-1]) - int(local[0]) + 1 == local.size:
            rows = slice(int(local[0]), int(local[-1]) + 1)
        groups.append(_RowGroup(g, rows, slice(p0, p1), isinstance(rows, slice) and rows == slice(0, c0)))
    return groups


def _place(dst: np.ndarray, src: np.ndarray, seg: _Segment) -> None:
    """Place chunks ``src`` (m, k, h, c1) — m chunk rows of h selected rows, k chunk columns —
    into ``dst`` (m * h rows, the segment's columns)."""
    m, k, h, c1 = src.shape
    if seg.rank is None or seg.within is None:
        _place_run(dst, src, seg.first, seg.stop)
        return
    flat = (np.arange(h) * c1)[:, None] + (seg.rank * (h * c1) + seg.within)[None, :]
    slabs = np.ascontiguousarray(src).reshape(m, k * h * c1)
    dst[:, :] = np.take(slabs, flat.ravel(), axis=1).reshape(m * h, flat.shape[1])


def _place_run(dst: np.ndarray, src: np.ndarray, first: int, stop: int) -> None:
    """dst = columns [first, stop) of the chunks ``src`` (m, k, h, c1) laid side by side.

    ``src[:, j]`` holds columns [(g + j) * c1, (g + j + 1) * c1) where g = first // c1. Each part is
    one copy through a strided view of ``dst`` that groups its rows by chunk row.
    """
    m, k, h, c1 = src.shape
    rs, cs = dst.strides

    def view(col: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
        return np.lib.stride_tricks.as_strided(
            dst[:, col:], shape=(m, h, *shape), strides=(h * rs, rs, *strides)
        )

    off, width = first % c1, stop - first
    if k == 1:
        np.copyto(view(0, (width,), (cs,)), src[:, 0, :, off : off + width])
        return
    head, middle = c1 - off, k - 2
    np.copyto(view(0, (head,), (cs,)), src[:, 0, :, off:])
    if middle:
        np.copyto(view(head, (middle, c1), (c1 * cs, cs)), src[:, 1 : k - 1].transpose(0, 2, 1, 3))
    tail = width - head - middle * c1
    np.copyto(view(head + middle * c1, (tail,), (cs,)), src[:, k - 1, :, :tail])


def _read_tile(
    layout: ChunkLayout, tile: list[_RowGroup], seg: _Segment, out: np.ndarray, transposed: bool = False
) -> None:
    """Decode the chunks of some chunk rows x one segment, and place the selection into ``out``.

    Runs of whole chunk rows are placed with a few copies for the run; other rows one chunk row
    at a time. With ``transposed``, ``out`` is (columns x rows).
    """
    chunks = layout.decode(np.array([t.grid_row for t in tile]), seg.grid_cols)
    target = out.T if transposed else out  # the same copies, through a transposed view
    i = 0
    while i < len(tile):
        j = i + 1
        if tile[i].full:
            while j < len(tile) and tile[j].full:
                j += 1
            src = chunks[i:j]
        else:
            src = chunks[i : i + 1, :, tile[i].rows, :]
        _place(target[tile[i].out.start : tile[j - 1].out.stop, seg.out], src, seg)
        i = j


def read_sorted(
    layout: ChunkLayout,
    ru: IntArray,
    cu: IntArray,
    transposed: bool = False,
    reuse: bool = False,
    out: np.ndarray[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """``dset[ru][:, cu]`` for sorted, unique ``ru`` and ``cu``, each needed chunk decoded once.

    With ``transposed``, its transpose, C-ordered: one row per selected column. With ``reuse``, the
    result lives in this thread's band buffer (see ``_engine.memory.band_buffer``); with ``out`` (C-ordered, of
    the result's shape and dtype), there.
    """
    shape = (cu.size, ru.size) if transposed else (ru.size, cu.size)
    if out is None:
        out = band_buffer(shape, layout.dtype) if reuse else np.empty(shape, dtype=layout.dtype)
    if ru.size == 0 or cu.size == 0:
        return out
    segments = _segments(cu, layout)
    groups = _row_groups(ru, layout.chunks[0])
    per_tile = max(1, TASK_CHUNKS // max(s.grid_cols.size for s in segments))
    steps: list[tuple[int, Callable[[], None]]] = []
    for t in range(0, len(groups), per_tile):
        tile = groups[t : t + per_tile]
        for seg in segments:
            steps.append(
                (len(tile) * seg.grid_cols.size, partial(_read_tile, layout, tile, seg, out, transposed))
            )
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


def read(
    layout: ChunkLayout,
    rows: AxisSelection,
    cols: AxisSelection,
    transposed: bool = False,
    reuse: bool = False,
    out: np.ndarray[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """``dset[rows, cols]`` with numpy's orthogonal semantics (any order, repeats allowed).

    With ``transposed``, its transpose as a C-ordered array (one row per selected column). With
    ``reuse``, the result may live in this thread's band buffer: for blocks used and dropped
    before the thread reads the next one. With ``out`` (C-ordered, the result's shape and dtype),
    the result is placed there: callers that recycle their own buffers avoid fresh memory, whose
    first touch costs about as much as placing the values.
    """
    ru, r_inverse = rows.sorted_unique()
    cu, c_inverse = cols.sorted_unique()
    first, second = (c_inverse, r_inverse) if transposed else (r_inverse, c_inverse)
    if first is None and second is None:
        return read_sorted(layout, ru, cu, transposed, reuse, out)
    block = read_sorted(layout, ru, cu, transposed, reuse or out is not None)
    # np.take, not fancy indexing: 5-10x faster here, and C-ordered along either axis. The inverse
    # indices are in range by construction: mode="clip" spares numpy's buffered copy of ``out``.
    if first is not None:
        block = np.take(block, first, axis=0, out=out if second is None else None, mode="clip")
    if second is not None:
        block = np.take(block, second, axis=1, out=out, mode="clip")
    return block


@dataclass
class Tiles:
    """A block as its decoded chunks, not placed: ``values`` (m, k, h, c1) holds block row r, column
    c at chunk (r // h, c // c1), row r % h, column c % c1, for r < ``rows`` and c < ``cols`` (chunks
    at the layer's edge hold more). For consumers that walk a block row by row (sparse): they skip
    the copy into a C-ordered array. ``values`` lives in the reading thread's scratch buffer."""

    values: np.ndarray[Any, Any]
    rows: int
    cols: int

    def dense(self) -> np.ndarray[Any, Any]:
        """The block as a C-ordered rows x cols array (a copy)."""
        m, k, h, c1 = self.values.shape
        return self.values.transpose(0, 2, 1, 3).reshape(m * h, k * c1)[: self.rows, : self.cols].copy()


def read_tiles(layout: ChunkLayout, rows: AxisSelection, cols: AxisSelection) -> Tiles | None:
    """The block ``rows`` x ``cols`` as decoded chunks, when both are runs starting on the chunk grid
    and its chunks do not reach far beyond it (else None: read it with ``read``, which decodes them
    a few at a time). Decoded on the calling thread."""
    starts = []
    for sel, chunk in zip((rows, cols), layout.chunks, strict=True):
        idx = sel.indices
        if idx.size == 0 or idx[0] % chunk or not np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            return None
        starts.append(int(idx[0]) // chunk)
    grid = [np.arange(s, -(-(int(sel.indices[-1]) + 1) // c), dtype=np.intp) for s, sel, c in
            zip(starts, (rows, cols), layout.chunks, strict=True)]  # fmt: skip
    covered = grid[0].size * layout.chunks[0] * grid[1].size * layout.chunks[1]
    if covered > 2 * rows.size * cols.size:  # e.g. chunks of whole columns, for a band of rows
        return None
    return Tiles(layout.decode(grid[0], grid[1]), rows.size, cols.size)


def chunks_of(chunks: tuple[int, ...], rows: AxisSelection, cols: AxisSelection) -> tuple[IntArray, IntArray]:
    """The grid rows and grid columns (sorted, unique) of the chunks a read of ``rows`` x ``cols`` decodes."""
    return _grid_of(rows, chunks[0]), _grid_of(cols, chunks[1])


def _grid_of(sel: AxisSelection, chunk: int) -> IntArray:
    run = sel.contiguous
    if run is not None and run.step in (None, 1):
        start, stop, _ = run.indices(sel.n)
        if stop <= start:
            return np.zeros(0, dtype=np.intp)
        return np.arange(start // chunk, (stop - 1) // chunk + 1, dtype=np.intp)
    return np.unique(sel.indices // chunk)


def chunks_touched(chunks: tuple[int, ...], rows: AxisSelection, cols: AxisSelection) -> int:
    """How many chunks of a ``chunks``-shaped grid a read of ``rows`` x ``cols`` decodes."""
    grid_rows, grid_cols = chunks_of(chunks, rows, cols)
    return int(grid_rows.size * grid_cols.size)
