"""Decoding HDF5 chunks: the filter pipelines the read engine handles itself.

HDF5 stores each chunk of a filtered dataset as the output of its filter pipeline, applied in order
when writing and undone in reverse order when reading. Loom files use deflate (gzip) and sometimes
the byte-shuffle filter. The engine inflates with libdeflate: called through ctypes straight into
the output buffer when the ``deflate`` package exposes its symbols (no allocation per chunk, and the
GIL is released during each call), else through the package's own API or, last, ``zlib``. Batches of
chunks go through the compiled helper ``_batch`` when it was built: one call, one release of the GIL,
for the whole batch (two threads decoding chunk by chunk from Python spend much of their time
handing the GIL back and forth). Any other filter makes the dataset fall back to h5py.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import LoomFormatError

_deflate: Any
try:
    import deflate as _deflate
except ImportError:  # pragma: no cover - the dependency is declared; this keeps odd platforms working
    _deflate = None

FILTER_DEFLATE = 1
FILTER_SHUFFLE = 2
SUPPORTED_FILTERS = frozenset({FILTER_DEFLATE, FILTER_SHUFFLE})

Buffer = bytes | bytearray | memoryview
Decoder = Callable[[Buffer], Buffer]


class LibDeflate:
    """libdeflate's zlib decoder, writing into a caller's buffer; one decompressor per thread."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._alloc = library.libdeflate_alloc_decompressor
        self._alloc.restype = ctypes.c_void_p
        self._alloc.argtypes = []
        self.zlib_decompress = library.libdeflate_zlib_decompress
        self.zlib_decompress.restype = ctypes.c_int
        self.zlib_decompress.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
        ]
        self._alloc_compressor = library.libdeflate_alloc_compressor
        self._alloc_compressor.restype = ctypes.c_void_p
        self._alloc_compressor.argtypes = [ctypes.c_int]
        self.zlib_compress = library.libdeflate_zlib_compress
        self.zlib_compress.restype = ctypes.c_size_t
        self.zlib_compress.argtypes = [ctypes.c_void_p] * 2 + [
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        self._bound = library.libdeflate_zlib_compress_bound
        self._bound.restype = ctypes.c_size_t
        self._bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._local = threading.local()
        self.many = batch_function("loomfile_decode_many")
        self.encode_many = batch_function("loomfile_encode_many")
        self._address = ctypes.cast(self.zlib_decompress, ctypes.c_void_p).value
        self._compress_address = ctypes.cast(self.zlib_compress, ctypes.c_void_p).value

    def decompress_many(
        self,
        src: np.ndarray,
        positions: np.ndarray,
        sizes: np.ndarray,
        dst: np.ndarray,
        slots: np.ndarray,
        nbytes: int,
    ) -> int:
        """Inflate chunk i, ``sizes[i]`` bytes at ``src[positions[i]:]``, into
        ``dst[slots[i] * nbytes:]``; each must decode to exactly ``nbytes`` bytes.

        Returns -1, or the index of the first chunk that did not decode. The int64 index arrays must
        be contiguous; the caller keeps the buffers large enough.
        """
        d = self.decompressor()
        positions, sizes, slots = (np.ascontiguousarray(a, dtype=np.int64) for a in (positions, sizes, slots))
        if self.many is not None:
            return int(
                self.many(
                    self._address,
                    d,
                    src.ctypes.data,
                    positions.ctypes.data,
                    sizes.ctypes.data,
                    dst.ctypes.data,
                    slots.ctypes.data,
                    nbytes,
                    positions.size,
                )
            )
        a, b, decompress = src.ctypes.data, dst.ctypes.data, self.zlib_decompress
        for i, (p, n, s) in enumerate(zip(positions.tolist(), sizes.tolist(), slots.tolist(), strict=True)):
            if decompress(d, a + p, n, b + s * nbytes, nbytes, None):
                return i
        return -1

    def compress_many(
        self, src: np.ndarray, nbytes: int, level: int, buffer: Callable[[int], np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Deflate (zlib format, as HDF5's gzip filter writes) each ``nbytes`` piece of the
        contiguous uint8 ``src``. Returns (out, sizes, stride): piece i is
        ``out[i * stride : i * stride + sizes[i]]``; ``buffer(n)`` supplies ``out`` (n uint8)."""
        n = src.size // nbytes
        c = self.compressor(level)
        stride = int(self._bound(c, nbytes))
        out = np.empty(n * stride, dtype=np.uint8) if buffer is None else buffer(n * stride)
        sizes = np.empty(n, dtype=np.int64)
        if self.encode_many is not None:
            failed = int(
                self.encode_many(
                    self._compress_address,
                    c,
                    src.ctypes.data,
                    nbytes,
                    out.ctypes.data,
                    stride,
                    sizes.ctypes.data,
                    n,
                )
            )
        else:
            a, b, compress, failed = src.ctypes.data, out.ctypes.data, self.zlib_compress, -1
            for i in range(n):
                sizes[i] = compress(c, a + i * nbytes, nbytes, b + i * stride, stride)
                if sizes[i] == 0:
                    failed = i
                    break
        if failed >= 0:  # pragma: no cover - the bound makes room for any input
            msg = f"libdeflate could not compress piece {failed} within its bound"
            raise RuntimeError(msg)
        return out, sizes, stride

    def compressor(self, level: int) -> int:
        """This thread's compressor for ``level`` (not thread-safe; one per thread and level)."""
        pool: dict[int, int] = getattr(self._local, "c", None) or {}
        self._local.c = pool
        if level not in pool:
            c = self._alloc_compressor(level)
            if not c:
                msg = f"libdeflate could not allocate a compressor for level {level}"
                raise MemoryError(msg)
            pool[level] = int(c)
        return pool[level]

    def decompressor(self) -> int:
        """This thread's decompressor (they are not thread-safe; each lives as long as its thread)."""
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._alloc()
            if not d:
                msg = "libdeflate could not allocate a decompressor"
                raise MemoryError(msg)
            self._local.d = d
        return int(d)

    @classmethod
    def load(cls) -> LibDeflate | None:
        if _deflate is None:
            return None
        try:
            lib = cls(ctypes.CDLL(_deflate._deflate.__file__))
            return lib if lib._self_test() else None
        except (OSError, AttributeError):  # pragma: no cover - a build without exported symbols
            return None

    def _self_test(self) -> bool:
        data = np.arange(4096, dtype=np.uint8) % 7
        packed = np.frombuffer(zlib.compress(data.tobytes()), dtype=np.uint8)
        out = np.empty_like(data)
        code = self.zlib_decompress(
            self.decompressor(), packed.ctypes.data, packed.size, out.ctypes.data, out.size, None
        )
        return code == 0 and bool(np.array_equal(out, data))


_BLOCK_ARGTYPES = [ctypes.c_void_p] + [ctypes.c_int64] * 5  # values, k, h, c1, rows, cols (see _engine/_batch.c)
_NONZEROS_ARGTYPES = [*_BLOCK_ARGTYPES, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
_NONZEROS_ARGTYPES += [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
NONZERO_CODES = ("f4", "f8", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8")

_BATCH_ARGTYPES = {
    **{f"loomfile_nonzeros_{code}": _NONZEROS_ARGTYPES for code in NONZERO_CODES},
    **{f"loomfile_nonzeros_{code}_f8": _NONZEROS_ARGTYPES for code in NONZERO_CODES},
    **{f"loomfile_count_nonzero_{code}": _BLOCK_ARGTYPES for code in NONZERO_CODES},
    **{
        f"loomfile_column_sums_{code}": [ctypes.c_void_p] + [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2
        for code in ("f4", "f8")
    },
    "loomfile_write_chunks": [ctypes.c_void_p, ctypes.c_int64] + [ctypes.c_void_p] * 5 + [ctypes.c_int64],
    "loomfile_isal_encode_many": [ctypes.c_void_p] * 4
    + [ctypes.c_int64] * 2
    + [ctypes.c_void_p, ctypes.c_int64]
    + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64],
    "loomfile_decode_many": [ctypes.c_void_p] * 7 + [ctypes.c_int64] * 2,
    "loomfile_encode_many": [ctypes.c_void_p] * 3
    + [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
    + [ctypes.c_void_p, ctypes.c_int64],
}


def batch_function(name: str, keep_gil: bool = False) -> Any:
    """One of the compiled helper's batch loops (see _engine/_batch.c), or None when it was not built.
    ``keep_gil``: called holding the GIL (for loops that call into HDF5)."""
    spec = importlib.util.find_spec(f"{__package__}._batch")
    if spec is None or spec.origin is None or os.environ.get("LOOMFILE_NO_BATCH"):
        return None  # (LOOMFILE_NO_BATCH: the tests' switch to exercise the Python loop)
    try:
        fn = getattr((ctypes.PyDLL if keep_gil else ctypes.CDLL)(spec.origin), name)
    except (OSError, AttributeError):  # pragma: no cover - a build without the exported symbol
        return None
    fn.restype = ctypes.c_int64
    fn.argtypes = _BATCH_ARGTYPES[name]
    return fn


LIBDEFLATE = LibDeflate.load()


class Igzip:
    """ISA-L's igzip (from the ``isal`` package) compressing chunks in zlib format, through the
    compiled helper's loop (see _engine/_batch.c): about twice libdeflate's speed at the low levels Loom
    files use, with zlib level 2's ratio. Used only when its output passes a check against zlib."""

    STREAM_BYTES = 1 << 18  # the whole isal_zstream (82 KB in ISA-L 2.31), with room to spare
    LEVEL_BUFFER_BYTES = 1 << 19  # more than ISA-L's default for levels 1-3
    LEVEL = 1  # igzip's level for HDF5 levels 1-3

    def __init__(self, library: ctypes.CDLL, loop: Any) -> None:
        self._init = ctypes.cast(library.isal_deflate_stateless_init, ctypes.c_void_p).value
        self._deflate = ctypes.cast(library.isal_deflate_stateless, ctypes.c_void_p).value
        self._loop = loop
        self._local = threading.local()

    def compress_many(
        self, src: np.ndarray, nbytes: int, buffer: Callable[[int], np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """As LibDeflate.compress_many."""
        n = src.size // nbytes
        stride = nbytes + nbytes // 1000 + 1024  # stored blocks' overhead when nothing compresses
        out = np.empty(n * stride, dtype=np.uint8) if buffer is None else buffer(n * stride)
        sizes = np.empty(n, dtype=np.int64)
        stream, level_buffer = self._buffers()
        failed = self._loop(
            self._init,
            self._deflate,
            stream.ctypes.data,
            level_buffer.ctypes.data,
            level_buffer.size,
            self.LEVEL,
            src.ctypes.data,
            nbytes,
            out.ctypes.data,
            stride,
            sizes.ctypes.data,
            n,
        )
        if failed >= 0:  # pragma: no cover - the stride makes room for any input
            msg = f"igzip could not compress piece {failed}"
            raise RuntimeError(msg)
        return out, sizes, stride

    def _buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """This thread's stream and level buffer (a stream is not thread-safe)."""
        if not hasattr(self._local, "stream"):
            self._local.stream = np.zeros(self.STREAM_BYTES, dtype=np.uint8)
            self._local.level = np.zeros(self.LEVEL_BUFFER_BYTES, dtype=np.uint8)
        return self._local.stream, self._local.level

    @classmethod
    def load(cls) -> Igzip | None:
        loop = batch_function("loomfile_isal_encode_many")
        if loop is None or os.environ.get("LOOMFILE_NO_ISAL"):
            return None
        try:
            from isal import isal_zlib

            coder = cls(ctypes.CDLL(isal_zlib.__file__), loop)
            return coder if coder._self_test() else None
        except (ImportError, OSError, AttributeError):
            return None

    def _self_test(self) -> bool:
        rng = np.random.default_rng(0)
        data = (rng.poisson(0.3, 3 * 4096) * (rng.random(3 * 4096) < 0.3)).astype(np.float32).view(np.uint8)
        data[-4096:] = rng.integers(0, 256, 4096, dtype=np.uint8)  # and a piece that does not compress
        out, sizes, stride = self.compress_many(data, 4096)
        pieces = [out[i * stride : i * stride + sizes[i]].tobytes() for i in range(sizes.size)]
        return all(
            zlib.decompress(p) == data[i * 4096 : (i + 1) * 4096].tobytes() for i, p in enumerate(pieces)
        )


IGZIP = Igzip.load()


def inflate(data: Buffer, nbytes: int) -> Buffer:
    """The zlib stream ``data`` inflated; it must decode to exactly ``nbytes`` bytes."""
    if _deflate is not None:
        return _deflate.zlib_decompress(data, nbytes)
    out = zlib.decompress(data)
    if len(out) != nbytes:
        msg = f"decoded {len(out)} bytes, expected {nbytes}"
        raise zlib.error(msg)
    return out


def unshuffle(data: Any, itemsize: int) -> Any:
    """Undo HDF5's shuffle filter on uint8 ``data`` (..., nbytes): byte planes back to whole items."""
    if itemsize == 1:
        return data
    n = data.shape[-1] // itemsize
    planes = data[..., : n * itemsize].reshape(*data.shape[:-1], itemsize, n)
    out = np.empty_like(data)
    out[..., : n * itemsize] = planes.swapaxes(-1, -2).reshape(*data.shape[:-1], n * itemsize)
    out[..., n * itemsize :] = data[..., n * itemsize :]
    return out


class Pipeline:
    """The filters of one dataset, in the order HDF5 applied them when writing."""

    def __init__(self, filters: tuple[int, ...], itemsize: int, chunk_nbytes: int) -> None:
        unknown = set(filters) - SUPPORTED_FILTERS
        if unknown:
            msg = f"filters {sorted(unknown)} are not decoded by the engine"
            raise ValueError(msg)
        self.filters = filters
        self.itemsize = itemsize
        self.chunk_nbytes = chunk_nbytes
        # The common case decoded straight into the output: deflate alone, or shuffle then deflate.
        self.direct = LIBDEFLATE is not None and filters in (
            (FILTER_DEFLATE,),
            (FILTER_SHUFFLE, FILTER_DEFLATE),
        )
        self.shuffled = FILTER_SHUFFLE in filters

    def decode(self, data: Buffer, mask: int, where: str) -> np.ndarray[Any, Any]:
        """One chunk's stored bytes, decoded, as uint8; a clear error if they are corrupt.

        Bit i of ``mask`` set means HDF5 skipped filter i for this chunk.
        """
        out: Any = data
        try:
            for i in reversed(range(len(self.filters))):
                if mask & (1 << i):
                    continue
                if self.filters[i] == FILTER_DEFLATE:
                    out = inflate(out, self.chunk_nbytes)
                else:
                    out = unshuffle(np.frombuffer(out, dtype=np.uint8), self.itemsize)
        except (zlib.error, ValueError) as e:
            raise corrupt(where, f"its stored bytes do not decode ({e})") from None
        except Exception as e:
            if _deflate is not None and isinstance(e, _deflate.DeflateError):
                raise corrupt(where, "its stored bytes do not decode") from None
            raise
        arr = np.frombuffer(out, dtype=np.uint8)
        if arr.size != self.chunk_nbytes:
            raise corrupt(where, f"it decodes to {arr.size} bytes, expected {self.chunk_nbytes}")
        return arr


def corrupt(where: str, why: str) -> LoomFormatError:
    return LoomFormatError(f"{where} is corrupt: {why}")
