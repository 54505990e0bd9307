"""Handing stored chunks to HDF5: chunks the pool compressed, or chunks copied from another file
as they are stored (no decoding, no encoding), written a group at a time."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from .chunks import ChunkLayout, fill_of, filters_of
from .codec import batch_function


def _load_writer(keep_gil: bool) -> Callable[..., int] | None:
    """HDF5's own H5Dwrite_chunk, called by the compiled helper for a whole group of chunks at once
    (h5py's write_direct_chunk costs about 8 us per chunk, on the one thread that feeds HDF5).
    HDF5 is found among the libraries loaded for h5py (Linux); None elsewhere.

    ``keep_gil``: hold the GIL during the call, for files HDF5 writes through a Python file object
    (the journal): its callbacks need the GIL. Files written by HDF5's own driver release it, so
    the pool keeps encoding while HDF5 stores a group (h5py's lock still keeps HDF5 to one thread).
    """
    loop = batch_function("loomfile_write_chunks", keep_gil=keep_gil)
    if loop is None:
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libhdf5" in line and "libhdf5_hl" not in line}
    except OSError:  # not Linux: h5py's per-chunk call
        return None
    if len(paths) != 1:
        return None
    try:
        library = ctypes.CDLL(paths.pop())
        major, minor, release = (ctypes.c_uint() for _ in range(3))
        library.H5get_libversion(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(release))
        address = ctypes.cast(library.H5Dwrite_chunk, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
    if (major.value, minor.value, release.value) != h5py.version.hdf5_version_tuple[:3] or not address:
        return None
    return functools.partial(loop, address)


_writers = {keep_gil: _load_writer(keep_gil) for keep_gil in (True, False)}


def hand_to_hdf5(
    dset: h5py.Dataset,
    src: np.ndarray,
    positions: np.ndarray,
    sizes: np.ndarray,
    masks: np.ndarray,
    offsets: np.ndarray,
) -> None:
    """Write stored chunks into ``dset``: chunk i is ``sizes[i]`` bytes at ``src[positions[i]:]``,
    with filter mask ``masks[i]``, at element offset ``offsets[i]``; in one call when possible
    (h5py's lock held: HDF5 is not thread-safe)."""
    writer = _writers[dset.file.driver == "fileobj"]
    if writer is None:
        write_chunk = dset.id.write_direct_chunk
        for at, size, mask, (r, c) in zip(
            positions.tolist(), sizes.tolist(), masks.tolist(), offsets.tolist(), strict=True
        ):
            if size:
                write_chunk((r, c), src[at : at + size], filter_mask=mask)
        return
    positions, sizes, masks = (np.ascontiguousarray(a, dtype=np.int64) for a in (positions, sizes, masks))
    offsets = np.ascontiguousarray(offsets, dtype=np.uint64)
    with h5py._objects.phil:
        failed = writer(
            dset.id.id,
            src.ctypes.data,
            positions.ctypes.data,
            sizes.ctypes.data,
            masks.ctypes.data,
            offsets.ctypes.data,
            sizes.size,
        )
    if failed >= 0:
        msg = f"HDF5 could not write the chunk at {tuple(offsets[failed].tolist())} of {dset.name}"
        raise OSError(msg)


@dataclass
class StoredColumns:
    """Whole chunk columns [start, stop) of another file's layer, to be appended by copying their
    stored chunks as they are (see copy_chunks)."""

    layout: ChunkLayout
    start: int
    stop: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.layout.shape[0], self.stop - self.start)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.layout.dtype


def can_copy(layout: ChunkLayout | None, dst: h5py.Dataset) -> bool:
    """Whether chunks stored for ``layout`` mean the same in ``dst``: same type, chunk shape, filter
    pipeline and fill value (the value of chunks never written)."""
    if layout is None or dst.chunks is None or dst.ndim != 2:
        return False
    return (
        layout.ndim == 2
        and layout.dtype == np.dtype(dst.dtype)
        and layout.chunks == tuple(dst.chunks)
        and layout.pipeline.filters == tuple(code for code, _ in filters_of(dst))
        and layout.fill == fill_of(dst)
    )


def copy_chunks(source: StoredColumns, dst: h5py.Dataset, dst_col: int) -> None:
    """Write the stored chunks of ``source`` into ``dst`` from column ``dst_col`` (a chunk boundary)
    on, byte for byte: no decoding, no encoding. Chunks never written stay unwritten."""
    cr, cc = source.layout.chunks
    grid_cols = np.arange(source.start // cc, -(-source.stop // cc))
    raw, positions, sizes, masks = source.layout.stored(grid_cols)
    hand_to_hdf5(
        dst, raw, positions, sizes, masks, grid_offsets(sizes.size, grid_cols.size, 0, dst_col, (cr, cc))
    )


def grid_offsets(n: int, per_row: int, r: int, c: int, chunks: tuple[int, int]) -> np.ndarray:
    """Element offsets of n chunks laid out row-major, ``per_row`` to a row, from (r, c) on."""
    i = np.arange(n)
    return np.stack([r + i // per_row * chunks[0], c + i % per_row * chunks[1]], axis=1)
