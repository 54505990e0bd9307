"""sparse(): a layer's nonzeros as a ``coo_matrix``, in one pass, written straight into the result.

Blocks of the selection are read and searched for nonzeros on the pool, in file order. A block
learns where its entries go as soon as the block before it has counted its own, then writes them
straight into the result arrays while its neighbours do the same: no list of parts, no final
concatenation, no copy on the calling thread. The arrays are sized from the density seen so far
and grown when a block does not fit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sparse

from .._selection import AxisSelection
from .codec import NONZERO_CODES, batch_function
from .pools import ordered
from .read import Tiles

SPARSE_BAND = 4096  # loompy's sparse() visits columns in bands this wide: its entry order
Block = tuple[AxisSelection, AxisSelection, int, np.ndarray]  # rows, cols, first row, col positions
Reader = Callable[[AxisSelection, AxisSelection], np.ndarray | Tiles]  # a block, or its decoded chunks


def _blocks(rows: AxisSelection, cols: AxisSelection, elements: int) -> Iterator[Block]:
    """Selected columns grouped by band of SPARSE_BAND file columns, each band cut into blocks of
    about ``elements`` values, whole rows each."""
    band_of = cols.indices // SPARSE_BAND
    for band in np.unique(band_of):
        positions = np.flatnonzero(band_of == band)
        part = AxisSelection(cols.n, cols.indices[positions])
        height = max(64, elements // max(1, positions.size) // 64 * 64)
        for lo in range(0, rows.size, height):
            b = slice(lo, min(rows.size, lo + height))
            yield AxisSelection(rows.n, rows.indices[b]), part, lo, positions


# The compiled helper's one-pass extraction of a block's nonzeros, per (stored type, result type):
# values kept as they are, or made float64 (see _engine/_batch.c).
NONZEROS: dict[tuple[np.dtype[Any], np.dtype[Any]], Any] = {
    (np.dtype(code), np.dtype(code if to == "" else to[1:])): fn
    for code in NONZERO_CODES
    for to in ("", "_f8")
    if (fn := batch_function(f"loomfile_nonzeros_{code}{to}")) is not None
}
# ... and its count of a block's nonzeros (numpy's count_nonzero takes as long as the extraction)
COUNTS: dict[np.dtype[Any], Any] = {
    np.dtype(code): fn for code in NONZERO_CODES if (fn := batch_function(f"loomfile_count_nonzero_{code}"))
}


class _Aborted(Exception):
    """Another block failed: this one stops (that block's error is the one reported)."""


class _Sink:
    """The result's (data, row, col) arrays and who may write where.

    Block i reserves its range once block i - 1 has reserved its own. When a block does not fit, it
    waits until every earlier block has finished writing, then grows the arrays: nobody writes
    into them while they move.
    """

    def __init__(self, dtypes: tuple[np.dtype[Any], ...], elements: int) -> None:
        self.cond = threading.Condition()
        self.buffers = [np.empty(0, dtype=d) for d in dtypes]
        self.elements = elements  # of the whole selection: no more entries than this can come
        self.reserved = 0  # blocks that know their range
        self.written = 0  # blocks that have written it
        self.end = 0  # entries reserved so far
        self.seen = 0  # elements scanned by the blocks that reserved
        self.failed = False
        self.error: BaseException | None = None  # the first failure

    def reserve(self, i: int, count: int, scanned: int) -> tuple[int, list[np.ndarray]]:
        with self.cond:
            self.cond.wait_for(lambda: self.reserved == i or self.failed)
            if self.failed:
                raise _Aborted
            need = self.end + count
            if need > self.buffers[0].size:
                self.cond.wait_for(lambda: self.written == i or self.failed)
                if self.failed:
                    raise _Aborted
                self._grow(need, scanned)
            offset, self.end = self.end, need
            self.seen += scanned
            self.reserved += 1
            self.cond.notify_all()
            return offset, list(self.buffers)

    def _grow(self, need: int, scanned: int) -> None:
        seen = self.seen + scanned
        remaining = max(0, self.elements - seen)  # elements not scanned yet: the most that can come
        guess = need + int(remaining * (need / max(1, seen)) * 1.1)
        capacity = min(max(guess, int(self.buffers[0].size * 1.25)), need + remaining)
        for i, old in enumerate(self.buffers):
            grown = np.empty(capacity, dtype=old.dtype)  # (ndarray.resize would zero the new part)
            grown[: self.end] = old[: self.end]
            self.buffers[i] = grown

    def wrote(self) -> None:
        with self.cond:
            self.written += 1
            self.cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self.cond:
            if self.error is None and not isinstance(error, _Aborted):
                self.error = error
            self.failed = True
            self.cond.notify_all()

    def arrays(self) -> list[np.ndarray]:
        for buf in self.buffers:
            buf.resize(self.end, refcheck=False)  # shrinking: realloc gives back the unused tail
        return self.buffers


def build_coo(
    read: Reader, rows: AxisSelection, cols: AxisSelection, dtype: np.dtype[Any], elements: int
) -> sparse.coo_matrix:
    """The selection ``rows`` x ``cols`` as a coo_matrix with ``dtype`` values, entries in loompy's
    order (bands of SPARSE_BAND columns, row-major within each). ``read(rows, cols)`` reads a block."""
    shape = (rows.size, cols.size)
    index = np.dtype(np.int32 if max(shape) < np.iinfo(np.int32).max else np.int64)
    sink = _Sink((dtype, index, index), shape[0] * shape[1])

    def fill(
        i: int, rows_part: AxisSelection, cols_part: AxisSelection, r0: int, positions: np.ndarray
    ) -> None:
        block = read(rows_part, cols_part)
        values = block.values if isinstance(block, Tiles) else block
        extract = NONZEROS.get((values.dtype, dtype)) if index == np.int32 else None
        count_of = COUNTS.get(values.dtype)
        if extract is not None and count_of is not None and values.flags.c_contiguous:
            # the compiled pass walks the block row by row, through its chunks (see _engine/_batch.c)
            if isinstance(block, Tiles):
                (_, k, h, c1), n_rows, n_cols = values.shape, block.rows, block.cols
            else:
                (n_rows, n_cols), k, h, c1 = values.shape, 1, 1, values.shape[1]
            count = int(count_of(values.ctypes.data, k, h, c1, n_rows, n_cols))
            offset, (data, row, col) = sink.reserve(i, count, n_rows * n_cols)
            consecutive = positions.size > 0 and positions[-1] - positions[0] + 1 == positions.size
            lookup = None if consecutive else np.ascontiguousarray(positions, dtype=np.int64)
            found = extract(
                values.ctypes.data, k, h, c1, n_rows, n_cols,
                data.ctypes.data + offset * data.itemsize, row.ctypes.data + offset * 4, col.ctypes.data + offset * 4,
                r0, None if lookup is None else lookup.ctypes.data, int(positions[0]) if consecutive else 0,
            )  # fmt: skip
            assert found == count
            return
        if isinstance(block, Tiles):
            values = block.dense()
        flat = np.flatnonzero(values != 0)  # on a bool mask: several times faster than on floats
        offset, (data, row, col) = sink.reserve(i, flat.size, values.size)
        span = slice(offset, offset + flat.size)
        data[span] = np.take(values.ravel(), flat)
        width = values.shape[1]
        if index == np.int32:  # blocks are far below 2**31 elements
            flat = flat.astype(np.int32)
        if width & (width - 1) == 0:  # full 4096-column bands: shifts instead of divisions
            np.right_shift(flat, width.bit_length() - 1, out=row[span])
            np.bitwise_and(flat, width - 1, out=col[span])
        else:
            np.divmod(flat, width, out=(row[span], col[span]))
        row[span] += r0
        if positions.size and positions[-1] - positions[0] + 1 == positions.size:
            col[span] += positions[0]  # consecutive columns: an offset, not a lookup
        else:
            col[span] = positions[col[span]]

    def write(task: tuple[int, Block]) -> None:
        i, block = task
        try:
            fill(i, *block)
        except BaseException as e:
            sink.fail(e)  # so no later block waits for this one forever
            raise
        sink.wrote()

    try:
        for _ in ordered(write, enumerate(_blocks(rows, cols, elements))):
            pass
    except _Aborted:
        assert sink.error is not None
        raise sink.error from None
    data, row, col = sink.arrays()
    return sparse.coo_matrix((data, (row, col)), shape=shape)
