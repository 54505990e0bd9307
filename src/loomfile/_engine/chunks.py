"""Where each chunk of a 2-D HDF5 dataset lives on disk; fetching and decoding rows of chunks.

A :class:`ChunkLayout` is built once per dataset per connection (walking HDF5's chunk index is
cheap once and costly per query) and dropped whenever the dataset may have changed. It fetches
compressed chunk bytes with positioned reads on the file descriptor HDF5 already holds (or through
a range reader, for a remote file), bypassing HDF5's per-selection machinery, and decodes them into
a reusable per-thread buffer. Datasets it cannot read that way (contiguous storage, unknown filters,
in-memory or split-file drivers, non-numeric types) get no layout, and their reads go through h5py.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import h5py
import numpy as np

from .._errors import LoomFormatError
from .btree import Records, Source, Wanted, chunk_records, read_at, read_into
from .codec import LIBDEFLATE, SUPPORTED_FILTERS, Pipeline, corrupt, unshuffle

# Chunks whose stored bytes lie this close together are fetched with one read.
GAP_BYTES = 16 * 1024  # about what one read call costs, in bytes copied


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

    def __init__(
        self, dset: h5py.Dataset, fd: Source, filters: tuple[int, ...], wanted: Wanted | None = None
    ) -> None:
        self.name = dset.name
        self.fd = fd
        self.ndim = dset.ndim  # a 1-D dataset is read as one column: shape (n, 1), chunks (c, 1)
        self.shape = (int(dset.shape[0]), int(dset.shape[1]) if dset.ndim == 2 else 1)
        self.chunks = (int(dset.chunks[0]), int(dset.chunks[1]) if dset.ndim == 2 else 1)
        self.dtype = np.dtype(dset.dtype)
        self.chunk_nbytes = self.chunks[0] * self.chunks[1] * self.dtype.itemsize
        self.pipeline = Pipeline(filters, self.dtype.itemsize, self.chunk_nbytes)
        grid = (-(-self.shape[0] // self.chunks[0]), -(-self.shape[1] // self.chunks[1]))
        self.offsets = np.zeros(grid, dtype=np.int64)
        self.sizes = np.zeros(grid, dtype=np.int64)  # 0: never written, reads as the fill value
        self.masks = np.zeros(grid, dtype=np.int64)
        self.fill = fill_of(dset)
        self.trusted = False  # True once the chunk index has been read and checked
        # None: every chunk is indexed. Else only the chunks in these grid rows x columns are, and
        # only they may be read (a small read of a large layer, see _store).
        self.wanted = wanted
        self._present: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._index(dset)

    def _index(self, dset: h5py.Dataset) -> None:
        """Fill the grid from the file's B-tree if it can be parsed, else from HDF5's chunk iteration;
        either must pass the structural checks and the spot check, or the layout is not trusted.
        A partial index comes from the B-tree only. A B-tree that parses but cannot be right (and
        that HDF5 reads no better) is damage: LoomFormatError, never a fallback reading the same index."""
        sources = (self._from_btree, self._from_hdf5) if self.wanted is None else (self._from_btree,)
        problems: list[str | None] = []  # what each source's records say is wrong (None: unknown)
        for source in sources:
            records = source(dset)
            problem = self._place(*records) if records is not None else None
            if records is not None and problem is None:
                problem = self._spot_check(dset)
                if problem is None:
                    self.trusted = True
                    return
                if self.wanted is not None:
                    problem = None  # (a partial index that missed a chunk: read through h5py)
            problems.append(problem)
            self.offsets[:] = 0
            self.sizes[:] = 0
            self.masks[:] = 0
        if all(problems):
            msg = f"The chunk index of {self.name} is damaged: {problems[0]}"
            raise LoomFormatError(msg)
        # e.g. HDF5 2.0 misreports chunk positions in extensible-array indexes (libver="latest",
        # unlimited columns): trust nothing it said, let h5py read this dataset.
        self.trusted = False

    def _from_btree(self, dset: h5py.Dataset) -> Records | None:
        return chunk_records(dset, self.fd, self.wanted)

    def _from_hdf5(self, dset: h5py.Dataset) -> Records | None:
        found: list[Any] = []
        try:
            if hasattr(dset.id, "chunk_iter"):
                dset.id.chunk_iter(found.append)
            else:  # pragma: no cover - HDF5 < 1.12.3
                found = [dset.id.get_chunk_info(i) for i in range(dset.id.get_num_chunks())]
        except (RuntimeError, OSError, ValueError):  # a damaged index: h5py will report it on read
            return None
        coords = np.array([info.chunk_offset for info in found], dtype=np.int64).reshape(len(found), -1)
        return (
            coords,
            np.array([i.byte_offset for i in found], dtype=np.int64),
            np.array([i.size for i in found], dtype=np.int64),
            np.array([i.filter_mask for i in found], dtype=np.int64),
        )

    def _place(
        self, coords: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, masks: np.ndarray
    ) -> str | None:
        """Put chunk records on the grid; what is wrong with them if they cannot be right (outside
        the grid, off the chunk boundaries, repeated, empty, or beyond the end of the file)."""
        if coords.shape[0] == 0:
            return None
        c0, c1 = self.chunks
        rows = coords[:, 0] // c0
        cols = coords[:, 1] // c1 if self.ndim == 2 else np.zeros_like(rows)
        outside = (rows >= self.offsets.shape[0]) | (cols >= self.offsets.shape[1]) | (coords[:, 0] % c0 != 0)
        outside |= (coords[:, : self.ndim] < 0).any(axis=1)
        if self.ndim == 2:
            outside |= coords[:, 1] % c1 != 0
        for what, bad in (("a chunk off the chunk grid", outside), ("a chunk of 0 bytes", sizes <= 0)):
            if bad.any():
                return f"it lists {what} at element {tuple(coords[np.argmax(bad)].tolist())}"
        end = file_size(self.fd)
        beyond = (offsets < 0) | (offsets + sizes > end if end is not None else False)
        if beyond.any():
            i = int(np.argmax(beyond))
            return (
                f"chunk ({rows[i]}, {cols[i]}) lies at bytes {offsets[i]}..{offsets[i] + sizes[i]}, "
                f"outside the file ({end} bytes): the file is truncated or its index is damaged"
            )
        if np.unique(rows * self.offsets.shape[1] + cols).size != rows.size:
            return "it lists a chunk twice"
        self.offsets[rows, cols] = offsets
        self.sizes[rows, cols] = sizes
        self.masks[rows, cols] = masks
        self._present = (rows, cols)
        return None

    def _spot_check(self, dset: h5py.Dataset) -> str | None:
        """None if HDF5's own reader finds, at a few chunk positions, the bytes the index points to
        (and, for a partial index, no chunk where the index found none); else what it found."""
        rows, cols = self._present
        picks = {0, rows.size - 1, rows.size // 2} if rows.size else set()
        for i in picks:
            r, c = int(rows[i]), int(cols[i])
            where = (r * self.chunks[0], c * self.chunks[1])[: self.ndim]
            try:
                _mask, stored = dset.id.read_direct_chunk(where)
            except (RuntimeError, OSError, ValueError):  # HDF5 has no chunk there: the index lied
                return f"HDF5 finds no chunk ({r}, {c}), which the index lists"
            on_disk = read_at(self.fd, int(self.sizes[r, c]), int(self.offsets[r, c]))
            if bytes(stored) != on_disk:
                return f"HDF5 finds other bytes for chunk ({r}, {c}) than the index points to"
        if self.wanted is None or self._absent_check(dset):
            return None
        return "HDF5 finds a chunk the partial index missed"

    def _absent_check(self, dset: h5py.Dataset) -> bool:
        """A few of the wanted chunks the partial index did not find: HDF5 must not have them."""
        assert self.wanted is not None
        rows, cols = self.wanted
        cells = self.sizes[np.ix_(rows, cols)]
        missing = np.argwhere(cells == 0)
        for i in np.unique(np.linspace(0, len(missing) - 1, min(len(missing), 4)).astype(int)).tolist():
            r, c = int(rows[missing[i][0]]), int(cols[missing[i][1]])
            where = (r * self.chunks[0], c * self.chunks[1])[: self.ndim]
            try:
                info = dset.id.get_chunk_info_by_coord(where)
            except (RuntimeError, OSError, ValueError):
                return False
            if info.byte_offset is not None:
                return False
        return True

    @property
    def grid(self) -> tuple[int, int]:
        return (int(self.offsets.shape[0]), int(self.offsets.shape[1]))

    def _fetch(self, offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read the stored bytes of the given chunks into this thread's buffer.

        Returns the buffer and each chunk's position in it. Chunks whose bytes lie within GAP_BYTES
        of each other on disk are fetched with one read (few reads, few GIL hand-offs).
        """
        positions = np.zeros(len(offsets), dtype=np.int64)
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

    def stored(self, grid_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The stored bytes of the chunks in every grid row x ``grid_cols``, as they are on disk,
        row-major: (this thread's buffer, each chunk's position in it, sizes (0: never written),
        filter masks)."""
        sizes = self.sizes[:, grid_cols].ravel()
        raw, positions = self._fetch(self.offsets[:, grid_cols].ravel(), sizes)
        return raw, positions, sizes, self.masks[:, grid_cols].ravel()

    def _pread(self, into: np.ndarray, offset: int) -> None:
        if read_into(self.fd, into.data, offset) != into.size:
            msg = f"{self.name} is truncated: chunk bytes at {offset} lie beyond the end of the file"
            raise LoomFormatError(msg)

    def decode(self, grid_rows: np.ndarray, grid_cols: np.ndarray) -> np.ndarray[Any, Any]:
        """Chunks (r, c) for r in grid_rows and c in grid_cols, decoded: an array (nr, nc, c0, c1).

        The array lives in this thread's scratch buffer: use it before the next call.
        """
        cells = np.ix_(grid_rows, grid_cols)
        nr, nc = len(grid_rows), len(grid_cols)
        k, nb = nr * nc, self.chunk_nbytes
        sizes_arr = self.sizes[cells].ravel()
        masks_arr = self.masks[cells].ravel()
        raw, positions = self._fetch(self.offsets[cells].ravel(), sizes_arr)
        out = _scratch.get("out", k * nb)
        fast = np.flatnonzero((sizes_arr > 0) & (masks_arr == 0))
        if self.pipeline.direct and fast.size:
            assert LIBDEFLATE is not None
            bad = LIBDEFLATE.decompress_many(raw, positions[fast], sizes_arr[fast], out, fast, nb)
            if bad >= 0:
                j = int(fast[bad])
                where = self._where(int(grid_rows[j // nc]), int(grid_cols[j % nc]))
                self.pipeline.decode(raw[positions[j] : positions[j] + sizes_arr[j]].tobytes(), 0, where)
                raise corrupt(where, "libdeflate rejected it")  # (decode above raises first)
        else:
            fast = fast[:0]
        slow = np.flatnonzero(sizes_arr > 0) if not self.pipeline.direct else np.flatnonzero(masks_arr)
        for j in slow.tolist():
            p, size = int(positions[j]), int(sizes_arr[j])
            where = self._where(int(grid_rows[j // nc]), int(grid_cols[j % nc]))
            out[j * nb : (j + 1) * nb] = self.pipeline.decode(
                raw[p : p + size].tobytes(), int(masks_arr[j]), where
            )
        chunks = out.reshape(k, nb)
        if fast.size and self.pipeline.shuffled:
            chunks[fast] = unshuffle(chunks[fast], self.dtype.itemsize)
        values = chunks.view(self.dtype).reshape(k, *self.chunks)
        missing = np.flatnonzero(sizes_arr == 0)
        if missing.size:
            values[missing] = self.fill
        return values.reshape(nr, nc, *self.chunks)

    def decode_row(self, grid_row: int, grid_cols: np.ndarray) -> np.ndarray[Any, Any]:
        """One row of chunks, decoded: an array (len(grid_cols), c0, c1) (see ``decode``)."""
        return self.decode(np.array([grid_row]), grid_cols)[0]

    def _where(self, row: int, col: int) -> str:
        return f"Chunk ({row}, {col}) of {self.name}"


def file_size(source: Source) -> int | None:
    """The file's size in bytes, when the engine reads it through a descriptor or a reader that
    knows it (a file written through the journal)."""
    if isinstance(source, int):
        return os.fstat(source).st_size
    size = getattr(source, "file_size", None)
    return int(size()) if callable(size) else None


def filters_of(dset: h5py.Dataset) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """The dataset's filter pipeline, in the order HDF5 applies it when writing: (code, options)."""
    plist = dset.id.get_create_plist()
    return tuple((int(f[0]), tuple(f[2])) for f in (plist.get_filter(i) for i in range(plist.get_nfilters())))


def fill_of(dset: h5py.Dataset) -> Any:
    """What chunks never written read as."""
    return dset.fillvalue if dset.fillvalue is not None else 0


def layout_of(
    dset: h5py.Dataset, wanted: Wanted | None = None, fd: Source | None = None
) -> ChunkLayout | None:
    """The chunk layout of ``dset``, or None when the engine cannot read it (h5py reads it instead).

    ``wanted``: index only the chunks in these (sorted, unique) grid rows x columns (see ChunkLayout).
    ``fd``: where to read the file's bytes when HDF5 reads it through a file object: the file's
    descriptor (a writable connection) or a range reader (a remote file); otherwise HDF5's own
    descriptor is used, with the default driver only.
    """
    if dset.ndim not in (1, 2) or dset.chunks is None or dset.is_virtual or dset.external:
        return None
    if np.dtype(dset.dtype).kind not in "iuf" or (fd is None and dset.file.driver != "sec2"):
        return None
    filters = tuple(code for code, _ in filters_of(dset))
    if not set(filters) <= SUPPORTED_FILTERS:
        return None
    if fd is None:
        fd = dset.file.id.get_vfd_handle()
        if not isinstance(fd, int):
            return None
    layout = ChunkLayout(dset, fd, filters, wanted)
    return layout if layout.trusted else None
