"""Writing whole chunks directly: the write side of the chunk engine.

h5py compresses every chunk it writes with zlib, one at a time, on the calling thread, which makes
creating and appending to Loom files CPU-bound on one core. Here the chunks that a write covers
completely are cut out of the values, passed through the dataset's own filter pipeline (deflate at
its level, after the byte shuffle when the dataset has it) by igzip or libdeflate on the pool, and
handed to HDF5 with ``write_direct_chunk``: the file holds standard gzip chunks that every HDF5
reader decodes. Chunks a write covers only partly are read first (only they are decoded), merged
with the new values and written directly too. Datasets with other filters, and machines without libdeflate, use h5py alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sparse

from .._format import spec as fmt
from . import pools
from .chunks import fill_of, filters_of
from .codec import FILTER_DEFLATE, FILTER_SHUFFLE, IGZIP, LIBDEFLATE
from .memory import band_buffer
from .stored import grid_offsets, hand_to_hdf5

# Chunks compressed per task: a few MB of input, so tasks are long enough to amortize their overhead.
GROUP_CHUNKS = 256
# gzip levels compressed by igzip (when the isal package is there), at its level 1: twice libdeflate's
# speed with zlib level 2's ratio. Higher levels ask for smaller files: libdeflate at that level.
IGZIP_LEVELS = 3
# Writes touching fewer whole chunks go through h5py (the pipeline's fixed cost would not pay off).
MIN_CHUNKS = 8


class Encoder:
    """Turns blocks of one dataset's values into its stored chunks."""

    def __init__(self, dset: h5py.Dataset, shuffle: bool, level: int) -> None:
        self.chunks: tuple[int, int] = dset.chunks
        self.dtype = np.dtype(dset.dtype)
        self.fill = fill_of(dset)
        self.shuffle = shuffle
        self.level = level
        self.nbytes = self.chunks[0] * self.chunks[1] * self.dtype.itemsize

    @classmethod
    def of(cls, dset: h5py.Dataset) -> Encoder | None:
        """The encoder for ``dset``, or None when h5py must write it (other layouts or filters)."""
        if LIBDEFLATE is None or dset.ndim != 2 or dset.chunks is None or dset.is_virtual or dset.external:
            return None
        if np.dtype(dset.dtype).kind not in "iuf":
            return None
        filters = filters_of(dset)
        codes = tuple(code for code, _ in filters)
        if codes not in ((FILTER_DEFLATE,), (FILTER_SHUFFLE, FILTER_DEFLATE)):
            return None
        options = filters[-1][1]
        level = int(options[0]) if len(options) else 6
        return cls(dset, codes[0] == FILTER_SHUFFLE, min(max(level, 0), 9))

    def encode(self, block: np.ndarray[Any, Any]) -> tuple[np.ndarray, np.ndarray, int, int]:
        """The stored chunks covering ``block`` (whose top-left corner is on a chunk boundary),
        row-major over the chunk grid: (bytes, sizes, stride, chunks per grid row), as from
        LibDeflate.compress_many. Chunks that stick out of the block are padded with the fill value."""
        assert LIBDEFLATE is not None
        cr, cc = self.chunks
        h, w = block.shape
        k, g = -(-h // cr), -(-w // cc)
        tiles = band_buffer((k * g, cr * cc), self.dtype).reshape(k, g, cr, cc)
        if (h, w) != (k * cr, g * cc):
            padded = np.full((k * cr, g * cc), self.fill, dtype=self.dtype)
            padded[:h, :w] = block
            block = padded
        tiles.transpose(0, 2, 1, 3)[...] = block.reshape(k, cr, g, cc)
        raw = tiles.view(np.uint8).reshape(k * g, self.nbytes)
        if self.shuffle and self.dtype.itemsize > 1:
            items = raw.reshape(k * g, -1, self.dtype.itemsize)
            raw = np.ascontiguousarray(items.transpose(0, 2, 1)).reshape(k * g, self.nbytes)
        if IGZIP is not None and 1 <= self.level <= IGZIP_LEVELS:
            out, sizes, stride = IGZIP.compress_many(raw.reshape(-1), self.nbytes, _spare.take)
        else:
            out, sizes, stride = LIBDEFLATE.compress_many(
                raw.reshape(-1), self.nbytes, self.level, _spare.take
            )
        return out, sizes, stride, g


class _Spare:
    """Output buffers handed back once their chunks are written, for the next groups: fresh memory
    costs a page fault per page on first touch, about as much as compressing into it."""

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        with self._lock:
            for i, buffer in enumerate(self._free):
                if buffer.size >= nbytes:
                    return self._free.pop(i)[:nbytes]
        return np.empty(nbytes, dtype=np.uint8)

    def give(self, buffer: np.ndarray) -> None:
        with self._lock:
            if len(self._free) < 8:
                self._free.append(buffer.base if isinstance(buffer.base, np.ndarray) else buffer)


_spare = _Spare()


def write(dset: h5py.Dataset, r0: int, c0: int, values: np.ndarray[Any, Any]) -> None:
    """``dset[r0 : r0 + h, c0 : c0 + w] = values`` for a 2-D ``values`` of shape (h, w).

    Chunks inside the box are written straight from ``values``. Chunks the box covers only partly
    (its margins) are read first, so that what they hold outside the box is kept, then written
    directly too.
    """
    h, w = values.shape
    if h == 0 or w == 0:
        return
    encoder = Encoder.of(dset)
    (cr, cc), (n0, n1) = dset.chunks or (1, 1), dset.shape
    r1, c1 = r0 + h, c0 + w
    rl, cl, rh, ch = r0 // cr * cr, c0 // cc * cc, min(n0, -(-r1 // cr) * cr), min(n1, -(-c1 // cc) * cc)
    if encoder is None or -(-(rh - rl) // cr) * -(-(ch - cl) // cc) < MIN_CHUNKS:
        dset[r0:r1, c0:c1] = values
        return
    # the whole chunks inside the box (edge chunks are whole up to the dataset's edge)
    ra, ca = -(-r0 // cr) * cr, -(-c0 // cc) * cc
    rb, cb = (r1 if r1 == n0 else r1 // cr * cr), (c1 if c1 == n1 else c1 // cc * cc)
    if ra < rb and ca < cb:
        _write_core(dset, encoder, ra, ca, values[ra - r0 : rb - r0, ca - c0 : cb - c0])
        strips = _margins(rl, rh, cl, ch, (ra, rb, ca, cb))
    else:
        strips = [(slice(rl, rh), slice(cl, ch))]
    for rs, cs in strips:
        block = dset[rs, cs]
        top, left = max(r0, rs.start), max(c0, cs.start)
        bottom, right = min(r1, rs.stop), min(c1, cs.stop)
        block[top - rs.start : bottom - rs.start, left - cs.start : right - cs.start] = values[
            top - r0 : bottom - r0, left - c0 : right - c0
        ]
        _write_core(dset, encoder, rs.start, cs.start, block)


def _margins(
    r0: int, r1: int, c0: int, c1: int, inner: tuple[int, int, int, int]
) -> list[tuple[slice, slice]]:
    """The strips of the box [r0, r1) x [c0, c1) around ``inner`` (rows ra..rb, columns ca..cb):
    above and below across the whole width, then left and right beside it."""
    ra, rb, ca, cb = inner
    strips = [(slice(r0, ra), slice(c0, c1)), (slice(rb, r1), slice(c0, c1))]
    strips += [(slice(ra, rb), slice(c0, ca)), (slice(ra, rb), slice(cb, c1))]
    return [(rs, cs) for rs, cs in strips if rs.start < rs.stop and cs.start < cs.stop]


Block = tuple[int, int, Callable[[], np.ndarray]]  # (first row, first column, values when asked)


def write_matrix(dset: h5py.Dataset, matrix: Any) -> None:
    """``dset[:, :] = matrix`` for a dense array or a scipy.sparse matrix of the dataset's shape,
    band by band: the bands are densified (a CSR matrix by rows, anything else by columns) and
    compressed on the pool, so the whole matrix is never dense in memory."""
    encoder = Encoder.of(dset)
    blocks = _bands(matrix, fmt.work_chunks(dset.chunks), GROUP_CHUNKS if encoder is None else 1)
    if encoder is None:
        for r, c, values in blocks:
            block = values()
            dset[r : r + block.shape[0], c : c + block.shape[1]] = block
        return
    _write_blocks(dset, encoder, blocks)


def _bands(matrix: Any, chunks: tuple[int, int], factor: int) -> list[Block]:
    """The matrix in bands of whole chunk rows (CSR) or chunk columns (anything else), each about
    GROUP_CHUNKS chunks (times ``factor``)."""
    n0, n1 = matrix.shape
    if sparse.issparse(matrix) and matrix.format != "csr":
        matrix = matrix.tocsc()
    by_rows = sparse.issparse(matrix) and matrix.format == "csr"
    n, along, across = (n0, chunks[0], n1) if by_rows else (n1, chunks[1], n0)
    per_band = -(-across // chunks[1 if by_rows else 0])
    step = max(1, GROUP_CHUNKS * factor // per_band) * along
    dense = sparse.issparse(matrix)

    def band(lo: int) -> Callable[[], np.ndarray]:
        key = (slice(lo, lo + step), slice(None)) if by_rows else (slice(None), slice(lo, lo + step))
        return (lambda: matrix[key].toarray()) if dense else (lambda: np.asarray(matrix[key]))

    return [((lo, 0) if by_rows else (0, lo)) + (band(lo),) for lo in range(0, n, step)]


def _write_core(dset: h5py.Dataset, encoder: Encoder, ra: int, ca: int, block: np.ndarray[Any, Any]) -> None:
    """Whole chunks from (ra, ca) on, in groups of chunk rows."""
    cr, cc = encoder.chunks
    step = max(1, GROUP_CHUNKS // -(-block.shape[1] // cc)) * cr

    def rows(lo: int) -> Callable[[], np.ndarray]:
        return lambda: block[lo : lo + step]

    _write_blocks(dset, encoder, [(ra + lo, ca, rows(lo)) for lo in range(0, block.shape[0], step)])


def _write_blocks(dset: h5py.Dataset, encoder: Encoder, blocks: list[Block]) -> None:
    """Each block (whose first row and column are on chunk boundaries) made and compressed on the
    pool, a few ahead, while this thread hands the finished chunks to HDF5 in order."""

    def encode(block: Block) -> tuple[np.ndarray, np.ndarray, int, int]:
        return encoder.encode(block[2]())

    for (r, c, _), (out, sizes, stride, g) in zip(blocks, pools.ordered(encode, blocks), strict=True):
        positions = np.arange(sizes.size, dtype=np.int64) * stride
        masks = np.zeros(sizes.size, dtype=np.int64)
        hand_to_hdf5(dset, out, positions, sizes, masks, grid_offsets(sizes.size, g, r, c, encoder.chunks))
        _spare.give(out)
