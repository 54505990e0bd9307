"""Band buffers used again instead of fresh memory.

Fresh memory costs a page fault per page on first touch: on the 2-core development VM, writing
700 MiB the first time took 0.12 to 1.6 s (huge pages, from memory the host had or had not backed
yet), the second time 0.08 s. Blocks that are reduced and dropped (map, sparse) land in a buffer
per thread; bands handed out one after another (scan's views, add_loom's bands) in a ``Recycler``,
which reuses a buffer only once nothing outside holds it.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np


class _Bands(threading.local):
    def __init__(self) -> None:
        self.buffer = np.empty(0, dtype=np.uint8)


_bands = _Bands()


def band_buffer(shape: tuple[int, int], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """An uninitialised array in this thread's reusable band buffer (valid until the thread's next
    call). Blocks that map() and sparse() reduce and drop land here instead of in fresh memory."""
    nbytes = shape[0] * shape[1] * dtype.itemsize
    if _bands.buffer.size < nbytes:
        _bands.buffer = np.empty(nbytes + (nbytes >> 3), dtype=np.uint8)
    return _bands.buffer[:nbytes].view(dtype).reshape(shape)


class Recycler:
    """Buffers for bands handed out one after another (scan's views, add_loom's bands), reused once
    nothing outside holds them.

    A buffer is free when its only reference is this pool's own: an array (or any slice or view of
    it) a caller keeps holds a reference to the buffer, so kept bands are never overwritten and the
    next band gets fresh memory instead. ``keep`` buffers per name: a band read ahead, the one the
    caller works on, and the one before, still named by the caller's loop until the next band
    arrives.
    """

    def __init__(self, keep: int = 3) -> None:
        self._keep = keep
        self._pools: dict[str, list[np.ndarray[Any, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, shape: tuple[int, int], dtype: Any, capacity: int = 0) -> np.ndarray[Any, Any]:
        """An uninitialised C-ordered array of ``shape`` for ``name``, in memory nobody else holds.

        A new buffer holds at least ``capacity`` bytes (the largest band the caller will ask for), so
        that bands of varying widths share the same buffers; free buffers too small are dropped."""
        dtype = np.dtype(dtype)
        nbytes = shape[0] * shape[1] * dtype.itemsize
        with self._lock:
            pool = self._pools.setdefault(name, [])
            small = []
            for i in range(len(pool)):
                if sys.getrefcount(pool[i]) == 2:  # the list's and the call's: nobody else holds it
                    if pool[i].size >= nbytes:
                        return pool[i][:nbytes].view(dtype).reshape(shape)
                    small.append(i)
            for i in reversed(small):
                del pool[i]  # free but too small: let it go rather than keep it alongside a new one
            buffer = np.empty(max(nbytes, capacity), dtype=np.uint8)
            pool.append(buffer)
            if len(pool) > self._keep:
                pool.pop(0)  # still alive while a caller holds it, then freed
            return buffer[:nbytes].view(dtype).reshape(shape)
