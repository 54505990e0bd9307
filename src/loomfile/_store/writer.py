"""Writing a new layer's content: the streaming writer that ``LoomStore.create_layer`` hands to its
``fill`` callable.

Importers and ``LayerManager`` write a whole layer in bands (parsed text, sparse pieces, another
layer's stored chunks) as they come, without ever holding the HDF5 dataset: the writer is a thin
wrapper that passes each band straight to the chunk engine (``_engine.write``, no copy), so h5py
stays inside the storage layer.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from .._engine import stored as _hdf5chunks
from .._engine import write as _chunkwrite
from .._engine.chunks import ChunkLayout
from .._engine.stored import StoredColumns


class LayerWriter:
    """The 2-D layer being created: its shape, dtype and chunk shape, and the writes that fill it.

    Writes go to the chunk engine as they are given: whole chunks are compressed on the pool and
    handed to HDF5, partly covered ones merged with what the layer holds. A writer may be used
    from another thread than the one that created the layer (the importers write a band on a
    second thread while they read the next), one write at a time.
    """

    __slots__ = ("_dset", "chunks", "dtype", "shape")

    def __init__(self, dset: h5py.Dataset) -> None:
        self._dset = dset
        self.shape: tuple[int, int] = (int(dset.shape[0]), int(dset.shape[1]))
        self.dtype: np.dtype[Any] = np.dtype(dset.dtype)
        self.chunks: tuple[int, int] = (int(dset.chunks[0]), int(dset.chunks[1]))  # (layers are chunked)

    def write(self, row: int, col: int, block: np.ndarray[Any, Any]) -> None:
        """``layer[row : row + h, col : col + w] = block`` for a 2-D ``block`` of shape (h, w) in
        the layer's dtype; fastest when the box starts and ends on chunk boundaries."""
        _chunkwrite.write(self._dset, row, col, block)

    def write_matrix(self, matrix: Any) -> None:
        """``layer[:, :] = matrix`` for a dense array, a scipy.sparse matrix or a layer of the
        layer's shape, band by band (the whole matrix is never dense in memory)."""
        _chunkwrite.write_matrix(self._dset, matrix)

    def can_copy(self, layout: ChunkLayout | None) -> bool:
        """Whether chunks stored for ``layout`` can be copied into this layer as they are (same
        type, chunk shape, filters and fill value)."""
        return _hdf5chunks.can_copy(layout, self._dset)

    def copy_columns(self, source: StoredColumns, col: int) -> None:
        """Columns [col, col + width) get ``source``'s stored chunks as they are, byte for byte
        (``col`` on a chunk boundary; see ``can_copy``)."""
        _hdf5chunks.copy_chunks(source, self._dset, col)
