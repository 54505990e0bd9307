"""Loom files in object storage or on web servers (``s3://``, ``gs://``, ``https://``...), read-only.

fsspec opens the file; one :class:`RemoteFile` per connection then serves both readers of it: h5py
reads the metadata through a file object (a :class:`_Cursor`), and the read engine reads chunk bytes
through ``RemoteFile.read_into`` (see ``_engine.btree.RangeReader``), so chunks are planned, fetched in runs
and decoded on every core exactly as for a local file.

Reads smaller than a block (HDF5's object headers and heaps, B-tree nodes, short runs of chunks) go
through one block cache of BLOCK_BYTES blocks: a few requests serve the scattered small reads of
opening a file and indexing a layer. Runs of chunks of a block or more are fetched with a request of
their own, in parallel from the engine's threads, and not cached (the engine reads each chunk once).

Limits: remote files are read-only, and every cache miss costs a request (tens of milliseconds on
object storage), so small scattered reads are slow; whole bands (map, scan, sparse) are not.
"""

from __future__ import annotations

import importlib
import io
import re
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from .._errors import LoomNotFoundError

# A block of the cache: about one request's worth at object-storage latency and bandwidth.
BLOCK_BYTES = 4 * 1024 * 1024
CACHE_BLOCKS = 16  # at most 64 MiB cached per open file

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(name: str) -> bool:
    """Whether ``name`` is a URL (``scheme://...``) rather than a local path."""
    return _URL.match(name) is not None


def _fsspec() -> ModuleType:
    try:
        return importlib.import_module("fsspec")
    except ImportError as e:
        msg = "Reading Loom files from URLs needs fsspec: pip install 'loomfile[remote]'"
        raise ImportError(msg) from e


class RemoteFile:
    """A remote file's bytes, read at offsets from any thread; the file object h5py reads through."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options = dict(storage_options or {})
        fs, path = _fsspec().core.url_to_fs(url, **self.storage_options)
        try:
            self._file = fs.open(
                path,
                "rb",
                block_size=BLOCK_BYTES,
                cache_type="blockcache",
                cache_options={"maxblocks": CACHE_BLOCKS},
            )
        except FileNotFoundError as e:
            msg = f"File '{url}' not found (or not readable with the credentials given)"
            raise LoomNotFoundError(msg) from e
        self._fs, self._path = fs, path
        self.size = int(self._file.size)
        self._lock = threading.Lock()  # the cached file has one position

    def read_into(self, into: memoryview, offset: int) -> int:
        """Fill ``into`` with the bytes at ``offset``; how many there were (fewer at the end)."""
        out = into.cast("B") if into.format != "B" else into
        n = max(0, min(out.nbytes, self.size - offset))
        if n >= BLOCK_BYTES:
            data = self._fs.cat_file(self._path, start=offset, end=offset + n)
        else:
            with self._lock:
                self._file.seek(offset)
                data = self._file.read(n)
        out[: len(data)] = data
        return len(data)

    def cursor(self) -> _Cursor:
        """A new read-only file object over the file, with its own position (for h5py)."""
        return _Cursor(self)

    def close(self) -> None:
        self._file.close()


class _Cursor(io.RawIOBase):
    """A file object reading a :class:`RemoteFile` from its own position."""

    def __init__(self, source: RemoteFile) -> None:
        super().__init__()
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._source.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = self._source.read_into(memoryview(buffer), self._pos)
        self._pos += n
        return n
