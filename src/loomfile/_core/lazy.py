"""Layers as lazy ``dask.array`` s: blocks of whole chunk rows or columns, each read by a task
that opens the file by its path or URL (so the array pickles, and computes in other processes).

Needs ``pip install 'loomfile[dask]'``; dask is imported only when an array is made.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from .._errors import LoomValueError
from .._format import spec as fmt
from .._selection import normalize_key, result_shape
from .._store.opening import open_for_reading
from .._store.store import LoomStore

Options = Mapping[str, Any] | None  # fsspec storage options, for URLs


def import_dask(module: str = "dask") -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        msg = "loomfile.dask needs dask: pip install 'loomfile[dask]'"
        raise ImportError(msg) from e


def chunk_parts(n: int, chunk: int, other: int, itemsize: int, size: int | None) -> list[slice]:
    """Slices covering ``range(n)``, each ``size`` rows/columns (rounded down to whole chunks, at
    least one); by default about dask's ``array.chunk-size`` of values with ``other`` on the other axis."""
    if size is None:
        target = import_dask("dask.utils").parse_bytes(import_dask().config.get("array.chunk-size"))
        size = int(target) // max(1, other * itemsize)
    if size < 1:
        msg = f"The size of a block must be at least 1, not {size}"
        raise LoomValueError(msg)
    size = max(chunk, size // chunk * chunk)
    return [slice(lo, min(n, lo + size)) for lo in range(0, n, size)]


def blocks_of(
    path: str, layer: str, axis: int, block: int | None, storage_options: Options
) -> tuple[tuple[int, int], np.dtype[Any], list[slice]]:
    """The layer's shape and dtype (validating the file), and its blocks along ``axis``: whole
    chunk rows or columns, ``block`` wide (see ``chunk_parts``)."""
    store = open_for_reading(path, storage_options, validate=True)
    try:
        info = store.layer_info(layer)
        shape, dtype, chunks = (info.shape[0], info.shape[1]), info.dtype, fmt.work_chunks(info.chunks)
    finally:
        store.close()
    return shape, dtype, chunk_parts(shape[axis], int(chunks[axis]), shape[1 - axis], dtype.itemsize, block)



class _LayerBlocks:
    """A layer as dask.array.from_array wants it: shape, dtype and ``[key]``; each read opens the
    file by path (so it pickles as a path and works in any process that sees the file)."""

    def __init__(
        self, path: str, layer: str, shape: tuple[int, int], dtype: np.dtype[Any], storage_options: Options
    ) -> None:
        self.path, self.layer = path, layer
        self.shape, self.dtype, self.ndim = shape, dtype, 2
        self.storage_options = None if storage_options is None else dict(storage_options)

    def __getitem__(self, key: Any) -> np.ndarray[Any, Any]:
        store: LoomStore = open_for_reading(self.path, self.storage_options, validate=False)
        try:
            rows, cols = normalize_key(key, self.shape)
            block = store.read_layer(self.layer, rows, cols)
            return block.reshape(result_shape(rows, cols)) if (rows.drop or cols.drop) else block
        finally:
            store.close()

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        """What identifies the blocks' contents: the file (and its modification time, when local)."""
        stamp = os.stat(self.path).st_mtime_ns if os.path.exists(self.path) else None
        options = sorted((self.storage_options or {}).items(), key=lambda kv: kv[0])
        return ("loomfile", self.path, stamp, self.layer, self.shape, str(self.dtype), repr(options))


def layer_array(
    path: str | os.PathLike[str],
    layer: str = "",
    *,
    axis: int = 1,
    block: int | None = None,
    storage_options: Options = None,
) -> Any:
    """A layer of the Loom file at ``path`` as a lazy ``dask.array``: blocks of ``block`` whole chunk
    columns (axis 1) or rows (axis 0), each read by a task that opens the file (see
    ``LoomLayer.to_dask``)."""
    if axis not in (0, 1):
        msg = f"axis must be 0 (blocks of rows) or 1 (blocks of columns), not {axis!r}"
        raise LoomValueError(msg)
    path = os.fspath(path)
    shape, dtype, parts = blocks_of(path, layer, axis, block, storage_options)
    widths = tuple(p.stop - p.start for p in parts)
    blocks = ((shape[0],), widths) if axis == 1 else (widths, (shape[1],))
    source = _LayerBlocks(path, layer, shape, dtype, storage_options)
    da = import_dask("dask.array")
    return da.from_array(source, chunks=blocks, lock=False, fancy=False, meta=np.empty((0, 0), dtype=dtype))
