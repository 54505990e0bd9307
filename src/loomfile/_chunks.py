"""Where each chunk of a 2-D HDF5 dataset lives on disk; fetching and decoding rows of chunks.

A :class:`ChunkLayout` is built once per dataset per connection (walking HDF5's chunk index is
cheap once and costly per query) and dropped whenever the dataset may have changed. It fetches
compressed chunk bytes with positioned reads on the file descriptor HDF5 already holds, bypassing
HDF5's per-selection machinery, and decodes them into a reusable per-thread buffer. Datasets it
cannot read that way (contiguous storage, unknown filters, in-memory or split-file drivers,
non-numeric types) get no layout, and their reads go through h5py.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import h5py
import numpy as np

from ._codec import LIBDEFLATE, SUPPORTED_FILTERS, Pipeline, corrupt, unshuffle
from ._errors import LoomFormatError

# Chunks whose stored bytes lie this close together are fetched with one read.
GAP_BYTES = 256 * 1024


class _Scratch(threading.local):
    """Per-thread buffers for fetched and decoded bytes, grown as needed and reused."""

    def __init__(self) -> None:
        self.raw = np.empty(0, dtype=np.uint8)
        self.out = np.empty(0, dtype=np.uint8)

    def get(self, which: str, n: int) -> np.ndarray[Any, Any]:
        buf: np.ndarray[Any, Any] = getattr(self, which)
        if buf.size < n:
            buf = np.empty(n + (n >> 3), dtype=np.uint8)
            setattr(self, which, buf)
        return buf[:n]


_scratch = _Scratch()


class ChunkLayout:
    """The chunk grid of one dataset: file offsets, stored sizes and filter masks per chunk."""

    def __init__(self, dset: h5py.Dataset, fd: int, filters: tuple[int, ...]) -> None:
        self.name = dset.name
        self.fd = fd
        self.shape = (int(dset.shape[0]), int(dset.shape[1]))
        self.chunks = (int(dset.chunks[0]), int(dset.chunks[1]))
        self.dtype = np.dtype(dset.dtype)
        self.chunk_nbytes = self.chunks[0] * self.chunks[1] * self.dtype.itemsize
        self.pipeline = Pipeline(filters, self.dtype.itemsize, self.chunk_nbytes)
        grid = (-(-self.shape[0] // self.chunks[0]), -(-self.shape[1] // self.chunks[1]))
        self.offsets = np.zeros(grid, dtype=np.int64)
        self.sizes = np.zeros(grid, dtype=np.int64)  # 0: never written, reads as the fill value
        self.masks = np.zeros(grid, dtype=np.int64)
        self.fill = dset.fillvalue if dset.fillvalue is not None else 0
        self.trusted = True  # False when HDF5's chunk index could not be relied on
        self._index(dset)

    def _index(self, dset: h5py.Dataset) -> None:
        c0, c1 = self.chunks
        found: list[Any] = []
        if hasattr(dset.id, "chunk_iter"):
            dset.id.chunk_iter(found.append)
        else:  # pragma: no cover - HDF5 < 1.12.3
            found = [dset.id.get_chunk_info(i) for i in range(dset.id.get_num_chunks())]
        if not found:
            return
        coords = np.array([info.chunk_offset for info in found], dtype=np.int64)
        rows, cols = coords[:, 0] // c0, coords[:, 1] // c1
        if (rows >= self.offsets.shape[0]).any() or (cols >= self.offsets.shape[1]).any():
            # HDF5 2.0 misreports chunk positions in extensible-array indexes (libver="latest",
            # unlimited columns): trust nothing it said, let h5py read this dataset.
            self.trusted = False
            return
        self.offsets[rows, cols] = np.array([i.byte_offset for i in found], dtype=np.int64)
        self.sizes[rows, cols] = np.array([i.size for i in found], dtype=np.int64)
        self.masks[rows, cols] = np.array([i.filter_mask for i in found], dtype=np.int64)
        self.trusted = self._spot_check(dset)

    def _spot_check(self, dset: h5py.Dataset) -> bool:
        """Whether HDF5's own reader finds, at a few chunk positions, the bytes the index points to."""
        present = np.argwhere(self.sizes > 0)
        picks = {0, len(present) - 1, len(present) // 2} if len(present) else set()
        for i in picks:
            r, c = (int(x) for x in present[i])
            try:
                _mask, stored = dset.id.read_direct_chunk((r * self.chunks[0], c * self.chunks[1]))
            except (RuntimeError, OSError, ValueError):  # HDF5 has no chunk there: the index lied
                return False
            on_disk = os.pread(self.fd, int(self.sizes[r, c]), int(self.offsets[r, c]))
            if bytes(stored) != on_disk:
                return False
        return True

    @property
    def grid(self) -> tuple[int, int]:
        return (int(self.offsets.shape[0]), int(self.offsets.shape[1]))

    def _fetch(self, grid_row: int, grid_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read the stored bytes of chunks (grid_row, c) for each c into this thread's buffer.

        Returns the buffer and each chunk's position in it. Chunks whose bytes lie within GAP_BYTES
        of each other on disk are fetched with one read (few reads, few GIL hand-offs).
        """
        offsets = self.offsets[grid_row, grid_cols]
        sizes = self.sizes[grid_row, grid_cols]
        positions = np.zeros(len(grid_cols), dtype=np.int64)
        present = np.flatnonzero(sizes)
        if present.size == 0:
            return _scratch.get("raw", 0), positions
        order = present[np.argsort(offsets[present], kind="stable")]
        starts, ends = offsets[order], offsets[order] + sizes[order]
        # A new run wherever the next chunk starts more than GAP_BYTES past everything before it.
        reach = np.maximum.accumulate(ends)
        new_run = np.concatenate(([True], starts[1:] > reach[:-1] + GAP_BYTES))
        run_id = np.cumsum(new_run) - 1
        run_lo = starts[new_run]
        run_hi = np.maximum.reduceat(ends, np.flatnonzero(new_run))
        run_base = np.concatenate(([0], np.cumsum(run_hi - run_lo)))
        raw = _scratch.get("raw", int(run_base[-1]))
        for lo, hi, base in zip(run_lo.tolist(), run_hi.tolist(), run_base.tolist(), strict=False):
            self._pread(raw[base : base + hi - lo], lo)
        positions[order] = run_base[run_id] + starts - run_lo[run_id]
        return raw, positions

    def _pread(self, into: np.ndarray, offset: int) -> None:
        if os.preadv(self.fd, [into.data], offset) != into.size:
            msg = f"{self.name} is truncated: chunk bytes at {offset} lie beyond the end of the file"
            raise LoomFormatError(msg)

    def decode_row(self, grid_row: int, grid_cols: np.ndarray) -> np.ndarray[Any, Any]:
        """Chunks (grid_row, c) for each c, decoded, as an array (len(grid_cols), c0, c1).

        The array lives in this thread's scratch buffer: use it before the next call.
        """
        k, nb = len(grid_cols), self.chunk_nbytes
        raw, positions = self._fetch(grid_row, grid_cols)
        out = _scratch.get("out", k * nb)
        sizes = self.sizes[grid_row, grid_cols].tolist()
        masks = self.masks[grid_row, grid_cols].tolist()
        fast = np.flatnonzero((self.sizes[grid_row, grid_cols] > 0) & (self.masks[grid_row, grid_cols] == 0))
        if self.pipeline.direct and fast.size:
            assert LIBDEFLATE is not None
            decompress, d = LIBDEFLATE.zlib_decompress, LIBDEFLATE.decompressor()
            srcs = (positions[fast] + raw.ctypes.data).tolist()
            dsts = (fast * nb + out.ctypes.data).tolist()
            lens = [sizes[j] for j in fast.tolist()]
            # The hot loop: one C call per chunk, the GIL released inside it.
            failed = [
                j
                for j, a, n, b in zip(fast.tolist(), srcs, lens, dsts, strict=True)
                if decompress(d, a, n, b, nb, None)
            ]
            for j in failed:
                p = int(positions[j])
                self._decode_one(raw, p, sizes[j], 0, grid_row, int(grid_cols[j]))  # raises the error
                raise corrupt(self._where(grid_row, int(grid_cols[j])), "libdeflate rejected it")
        else:
            fast = fast[:0]
        for j, (p, s, m) in enumerate(zip(positions.tolist(), sizes, masks, strict=True)):
            if s and (m or not self.pipeline.direct):
                out[j * nb : (j + 1) * nb] = self._decode_one(raw, p, s, m, grid_row, int(grid_cols[j]))
        chunks = out.reshape(k, nb)
        if fast.size and self.pipeline.shuffled:
            chunks[fast] = unshuffle(chunks[fast], self.dtype.itemsize)
        values = chunks.view(self.dtype).reshape(k, *self.chunks)
        missing = [j for j, s in enumerate(sizes) if not s]
        if missing:
            values[missing] = self.fill
        return values

    def _decode_one(self, raw: np.ndarray, p: int, s: int, mask: int, row: int, col: int) -> np.ndarray:
        return self.pipeline.decode(raw[p : p + s].tobytes(), mask, self._where(row, col))

    def _where(self, row: int, col: int) -> str:
        return f"Chunk ({row}, {col}) of {self.name}"


def layout_of(dset: h5py.Dataset) -> ChunkLayout | None:
    """The chunk layout of ``dset``, or None when the engine cannot read it (h5py reads it instead)."""
    if dset.ndim != 2 or dset.chunks is None or dset.is_virtual or dset.external:
        return None
    if np.dtype(dset.dtype).kind not in "iuf" or dset.file.driver != "sec2":
        return None
    plist = dset.id.get_create_plist()
    filters = tuple(int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters()))
    if not set(filters) <= SUPPORTED_FILTERS:
        return None
    fd = dset.file.id.get_vfd_handle()
    if not isinstance(fd, int):
        return None
    layout = ChunkLayout(dset, fd, filters)
    return layout if layout.trusted else None
