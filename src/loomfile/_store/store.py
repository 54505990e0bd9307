"""The open HDF5 file behind a connection: every read and write of Loom elements goes through here.

``LoomStore`` knows where layers, attributes, graphs and global attributes live (via ``_format``), in
the spec-3 layout and in the older ones; managers and views never touch h5py themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, overload

import h5py
import numpy as np

from .._engine import matrix as _matrix_io
from .._engine import read as _engine
from .._engine import stored as _hdf5chunks
from .._engine.btree import Source, Wanted, chunk_records
from .._engine.chunks import ChunkLayout, filters_of, layout_of
from .._engine.stored import StoredColumns
from .._errors import (
    LoomClosedError,
    LoomError,
    LoomFormatError,
    LoomKeyError,
    LoomLockedError,
    LoomNotFoundError,
    LoomReadOnlyError,
    LoomValueError,
)
from .._format import spec as fmt
from .._format import versions
from .._format.versions import SpecVersion
from .._selection import AxisSelection
from . import elements, strings
from .changes import LAYERS, META, ChangeLog, layer_key
from .journal import Durability, JournaledFile, interrupts_deferred
from .writer import LayerWriter

if TYPE_CHECKING:
    from .remote import RemoteFile

log = logging.getLogger(__name__)

_KIND = ("row", "column")
_FILTER_NAMES = {1: "gzip", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32001: "blosc",
                 32004: "lz4", 32015: "zstd"}


def open_h5(path: str, mode: str) -> h5py.File:
    """Open an HDF5 file, turning h5py's errors into ones that name the problem."""
    _check_file(path)
    try:
        return h5py.File(path, mode)
    except OSError as e:
        raise _open_error(path, mode, e) from e


# An HDF5 file open for writing and the rollback journal it writes through (see open_journaled).
Writable = tuple[h5py.File, JournaledFile]


def open_journaled(path: str, durability: Durability = "full") -> Writable:
    """Open an HDF5 file for writing through a rollback journal (see ``_store.journal``); the caller has
    undone any write a dead process left half done (``recover``)."""
    _check_file(path)
    journal = JournaledFile(path, durability)
    try:
        return h5py.File(journal, "r+"), journal
    except OSError as e:
        journal.close()
        raise _open_error(path, "r+", e) from e
    except BaseException:
        journal.close()
        raise


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        msg = f"File '{path}' not found"
        raise LoomNotFoundError(msg)
    if os.path.isdir(path):
        msg = f"'{path}' is a directory, not a Loom file"
        raise LoomFormatError(msg)
    if not h5py.is_hdf5(path):
        msg = f"'{path}' is not an HDF5 file, so not a Loom file"
        raise LoomFormatError(msg)


def _open_error(path: str, mode: str, e: OSError) -> Exception:
    text = str(e)
    if "unable to lock file" in text.lower():
        msg = (
            f"Cannot open '{path}' in mode {mode!r}: another process holds the HDF5 file lock "
            f"(it is probably writing to the file). ({text})"
        )
        return LoomLockedError(msg)
    if mode != "r" and ("ermission" in text or "read-only" in text):
        return e
    return LoomFormatError(f"'{path}' is not a readable HDF5/Loom file ({text})")


@contextlib.contextmanager
def damaged(what: str) -> Iterator[None]:
    """HDF5's errors while opening or reading ``what`` (a file it cannot read: damaged, or gone from
    under it) as a LoomFormatError naming it."""
    try:
        yield
    except LoomError:
        raise
    except (OSError, RuntimeError, KeyError) as e:
        msg = f"Cannot read {what}; the file may be damaged ({e})"
        raise LoomFormatError(msg) from e


F = TypeVar("F", bound=Callable[..., Any])


def reads(method: F) -> F:
    """A LoomStore method that looks up names in the file: HDF5's errors become a LoomFormatError
    (see ``damaged``)."""

    def wrapper(self: LoomStore, *args: Any, **kwargs: Any) -> Any:
        with damaged(f"'{self.path}' ({method.__name__.strip('_').replace('_', ' ')})"):
            return method(self, *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper  # type: ignore[return-value]


def atomic(method: F) -> F:
    """A LoomStore method that changes the file: all of it happens, or none (see ``transaction``)."""

    def wrapper(self: LoomStore, *args: Any, **kwargs: Any) -> Any:
        with self.transaction():
            return method(self, *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper  # type: ignore[return-value]


class LayerInfo(NamedTuple):
    """What a layer is, without its values (``LoomStore.layer_info``)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    chunks: tuple[int, ...] | None  # None: not chunked (written by another tool)


# Indexing a layer costs about 1/50 of reading one chunk through h5py per chunk of the layer.
INDEX_COST_RATIO = 50
# Whole attributes with fewer chunks are read by h5py (indexing them would cost more than it saves).
ENGINE_MIN_CHUNKS = 64


class LoomStore:
    """An open Loom file: layout-aware access to its elements."""

    def __init__(
        self,
        h5: h5py.File,
        path: str,
        journal: JournaledFile | None = None,
        *,
        remote: RemoteFile | None = None,
    ) -> None:
        self._h5: h5py.File | None = h5
        self.path = path
        self.journal = journal  # writable connections: undoes a write that fails half way
        self.remote = remote  # files opened by URL (read-only, see _store.remote)
        # Where the engine reads the file's bytes when HDF5 reads it through a file object (the
        # journal, which also serves the overwrites it holds back).
        self._source: Source | None = journal if journal is not None else remote
        self._depth = 0  # of nested transactions
        self.mode: str = h5.mode
        # The layout of the elements that differ between spec versions (global attributes, strings).
        self.spec = versions.of_layout(fmt.GLOBALS_GROUP in h5)
        self._globals = elements.globals_of(self.spec)
        # Every change is recorded before and after it is made (see _store.changes).
        self.changes = ChangeLog()
        # Chunk layouts of the layers read so far (None: read through h5py), with their generation.
        self._layouts: dict[str, tuple[int, ChunkLayout | None]] = {}
        self._small_reads: dict[str, int] = {}  # chunks read through h5py so far, per layer
        # A read-only store that becomes writable at the first write (allow_writes)
        self._reopen: Callable[[], Writable] | None = None

    def allow_writes(self, reopen: Callable[[], Writable]) -> None:
        """Let this read-only store be written: the first write (or transaction) closes the file
        and takes it back from ``reopen`` (open for writing through a journal, with the lock)."""
        self._reopen = reopen

    @property
    def writable(self) -> bool:
        """Whether writes are allowed (now, or after reopening at the first write)."""
        return self.mode != "r" or self._reopen is not None

    def _become_writable(self) -> None:
        """Reopen for writing (see allow_writes); if that fails, the file stays open for reading."""
        assert self._reopen is not None
        h5 = self.h5
        self._h5 = None
        h5.close()
        try:
            new, journal = self._reopen()
        except BaseException:
            self._h5 = open_h5(self.path, "r")
            raise
        self._h5, self.journal, self._source = new, journal, journal
        self.mode, self._reopen = new.mode, None
        self._layouts.clear()  # (another process may have written while the file was closed)
        self._small_reads.clear()
        self.changes.record(LAYERS)
        self.changes.record(META)

    # --- state -------------------------------------------------------------------------------------

    @property
    def h5(self) -> h5py.File:
        if self._h5 is None:
            msg = f"The connection to '{self.path}' is closed"
            raise LoomClosedError(msg)
        return self._h5

    @property
    def closed(self) -> bool:
        return self._h5 is None

    def close(self) -> None:
        if self._h5 is None:
            return
        h5 = self._h5
        try:
            if self.mode != "r":
                self.flush()
        finally:
            self._h5 = None
            h5.close()
            if self.remote is not None:
                self.remote.close()
            if self.journal is not None:
                self._finish_close(self.journal)

    @staticmethod
    def _finish_close(journal: JournaledFile) -> None:
        """Commit what HDF5 wrote while closing (or undo it, if a write failed), and let go."""
        try:
            failure = journal.failure
            if failure is None:
                journal.commit()
            else:
                journal.rollback()
                raise failure
        finally:
            journal.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Changes made inside happen completely or not at all; nested ones join the outermost.

        On success HDF5 flushes and the journal is committed. On any exception (including a
        write that failed inside HDF5, and Ctrl-C, which is deferred to the next safe point) the
        file is put back as it was before, HDF5 reopens it, and the exception propagates. If the
        process dies instead, the next connect() puts it back (see _store.journal).
        """
        outermost = self._depth == 0
        if outermost and self.mode == "r" and self._reopen is not None:
            self._become_writable()  # transactions are for writes: the journal must see them all
        journal = self.journal
        deferral = (
            interrupts_deferred(journal) if outermost and journal is not None else contextlib.nullcontext()
        )
        self._depth += 1
        try:
            with deferral:
                try:
                    self._checkpoint()
                    yield
                    if outermost:
                        self.h5.flush()
                        self._checkpoint()
                        if journal is not None:
                            journal.commit()
                except BaseException:
                    if outermost:
                        self._rollback()
                    raise
        finally:
            self._depth -= 1

    def _checkpoint(self) -> None:
        """Raise, at a point where that is safe, what went wrong inside HDF5's writes or a deferred
        Ctrl-C (see JournaledFile.write)."""
        journal = self.journal
        if journal is None:
            return
        if journal.failure is not None:
            raise journal.failure
        if journal.interrupted:
            raise KeyboardInterrupt

    def _rollback(self) -> None:
        if self.journal is None or self._h5 is None:
            return
        h5, self._h5 = self._h5, None
        self.journal.discard_writes()
        with contextlib.suppress(Exception):
            h5.close()
        self.journal.rollback()
        self._h5 = h5py.File(self.journal, "r+")
        self._layouts.clear()
        self._small_reads.clear()
        self.changes.record(LAYERS)
        self.changes.record(META)

    def require_writable(self, action: str) -> h5py.File:
        """The file, about to be changed (or an error if it is read-only)."""
        if self.mode == "r" and self._reopen is not None:
            self._become_writable()
        h5 = self.h5
        if self.mode == "r" and self.remote is not None:
            msg = f"Cannot {action}: '{self.path}' was opened by URL, and files opened by URL are read-only"
            raise LoomReadOnlyError(msg)
        if self.mode == "r":
            msg = f"Cannot {action}: '{self.path}' is open read-only (mode='r'); connect with mode='r+'"
            raise LoomReadOnlyError(msg)
        return h5

    def flush(self) -> None:
        with self.transaction():  # at the outermost level: flush, commit
            pass

    @property
    def shape(self) -> tuple[int, int]:
        h5 = self.h5
        if fmt.MATRIX_PATH in h5:
            s = h5[fmt.MATRIX_PATH].shape
            return (int(s[0]), int(s[1]))
        return (0, 0)

    @property
    def spec_version(self) -> tuple[int, ...]:
        h5 = self.h5
        if self.spec.globals == "datasets" and fmt.SPEC_VERSION_NAME in h5[fmt.GLOBALS_GROUP]:
            return fmt.parse_spec_version(h5[fmt.GLOBALS_GROUP][fmt.SPEC_VERSION_NAME][()])
        if fmt.SPEC_VERSION_NAME in h5.attrs:
            return fmt.parse_spec_version(h5.attrs[fmt.SPEC_VERSION_NAME])
        return (0, 0, 0)

    # --- timestamps --------------------------------------------------------------------------------

    def touch(self, path: str) -> None:
        """Stamp ``last_modified`` on the object at ``path``, its parent groups and the root."""
        h5 = self.h5
        now = fmt.timestamp()
        while path not in ("", "/"):
            if path in h5:
                h5[path].attrs[fmt.TIMESTAMP_ATTR] = now
            path = path.rsplit("/", 1)[0]
        h5.attrs[fmt.TIMESTAMP_ATTR] = now

    def timestamp_of(self, path: str) -> str | None:
        h5 = self.h5
        if path not in ("", "/") and path not in h5:
            return None
        value = h5[path or "/"].attrs.get(fmt.TIMESTAMP_ATTR)
        if value is None:
            return None
        return fmt.decode_text(value) if not isinstance(value, str) else value

    def _group(self, path: str) -> h5py.Group:
        h5 = self.h5
        if path not in h5:
            h5.create_group(path)
        return h5[path]

    def storage(self, path: str) -> dict[str, Any]:
        """How the dataset at ``path`` is stored, as plain values: dtype, shape, chunk shape, the
        filter pipeline (e.g. ``["shuffle", "gzip(2)"]``) and the bytes it takes in the file."""
        dset = self.h5[path]
        filters = [
            _FILTER_NAMES.get(code, f"filter {code}") + (f"({options[0]})" if code == 1 and options else "")
            for code, options in filters_of(dset)
        ]
        dtype = np.dtype(dset.dtype)
        return {
            "dtype": "string" if strings.is_string_dtype(dtype) else str(dtype),
            "shape": [int(n) for n in dset.shape],
            "chunks": [int(n) for n in dset.chunks] if dset.chunks else None,
            "filters": filters,
            "stored_bytes": int(dset.id.get_storage_size()),
        }

    # --- layers ------------------------------------------------------------------------------------

    @reads
    def layer_names(self) -> list[str]:
        h5 = self.h5
        names = [""] if fmt.MATRIX_PATH in h5 else []
        if fmt.LAYERS_GROUP in h5:
            names += [
                k for k in h5[fmt.LAYERS_GROUP] if isinstance(h5[fmt.LAYERS_GROUP].get(k), h5py.Dataset)
            ]
        return names

    def layer(self, name: str) -> h5py.Dataset:
        h5 = self.h5
        path = fmt.layer_path(name)
        with damaged(path):
            if path not in h5:
                what = "main matrix" if name == "" else f"layer {name!r}"
                msg = f"The file has no {what}"
                raise LoomKeyError(msg)
            return h5[path]

    def layer_shape(self, name: str) -> tuple[int, ...]:
        """The layer's shape (``layer_info`` costs more: it asks HDF5 for the dtype and chunks too)."""
        return tuple(int(n) for n in self.layer(name).shape)

    def layer_dtype(self, name: str) -> np.dtype[Any]:
        return np.dtype(self.layer(name).dtype)

    def can_copy(self, name: str, layout: ChunkLayout | None) -> bool:
        """Whether chunks stored for ``layout`` (another file's) mean the same in layer ``name``,
        and so can be copied into it as they are (see ``_engine.stored.can_copy``)."""
        return _hdf5chunks.can_copy(layout, self.layer(name))

    def layer_info(self, name: str) -> LayerInfo:
        """The layer's shape, dtype and chunk shape."""
        dset = self.layer(name)
        chunks = dset.chunks
        return LayerInfo(
            tuple(int(n) for n in dset.shape),
            np.dtype(dset.dtype),
            None if chunks is None else tuple(int(n) for n in chunks),
        )

    def read_layer(
        self,
        name: str,
        rows: AxisSelection,
        cols: AxisSelection,
        transposed: bool = False,
        reuse: bool = False,
        out: np.ndarray[Any, Any] | None = None,
    ) -> np.ndarray[Any, Any]:
        """``layer[rows, cols]`` (orthogonal); with ``transposed``, its transpose, C-ordered. With
        ``reuse``, the result may live in the calling thread's band buffer (``_engine.memory.band_buffer``);
        with ``out``, it is placed there."""
        dset = self.layer(name)
        with damaged(dset.name):
            layout = self._layout(name, dset, rows, cols)
            return _matrix_io.read(dset, rows, cols, layout, transposed, reuse, out)

    @overload
    def read_tiles(
        self, name: str, rows: AxisSelection, cols: AxisSelection, or_block: Literal[False] = False
    ) -> _engine.Tiles | None: ...

    @overload
    def read_tiles(
        self, name: str, rows: AxisSelection, cols: AxisSelection, or_block: Literal[True]
    ) -> _engine.Tiles | np.ndarray[Any, Any]: ...

    def read_tiles(
        self, name: str, rows: AxisSelection, cols: AxisSelection, or_block: bool = False
    ) -> _engine.Tiles | np.ndarray[Any, Any] | None:
        """The block ``layer[rows, cols]`` as decoded chunks (see ``_engine.read_tiles``), or None when
        the engine does not read this layer or the block does not start on the chunk grid. With
        ``or_block``, the block itself instead of None (in the band buffer, as ``read_layer(...,
        reuse=True)``), from the same chunk index."""
        dset = self.layer(name)
        with damaged(dset.name):
            layout = self._layout(name, dset, rows, cols)
            tiles = None if layout is None else _engine.read_tiles(layout, rows, cols)
            if tiles is None and or_block:
                return _matrix_io.read(dset, rows, cols, layout, reuse=True)
            return tiles

    def _layout(
        self, name: str, dset: h5py.Dataset, rows: AxisSelection, cols: AxisSelection
    ) -> ChunkLayout | None:
        """The layer's chunk layout for the engine, built on first use; None to read through h5py."""
        generation = self.changes.generation
        cached = self._layouts.get(name)
        if cached is not None and not self.changes.changed_since(cached[0], (layer_key(name),)):
            return cached[1]
        if dset.chunks is None:
            return None
        grid = -(-dset.shape[0] // dset.chunks[0]) * -(-dset.shape[1] // dset.chunks[1])
        # Small reads index only the chunks they touch, until together they have cost more than
        # indexing the whole layer.
        wanted = _engine.chunks_of(dset.chunks, rows, cols)
        touched = self._small_reads.get(name, 0) + wanted[0].size * wanted[1].size
        if touched * INDEX_COST_RATIO < grid:
            self._small_reads[name] = touched
            return self._fresh_layout(dset, wanted)
        self._small_reads.pop(name, None)
        layout = self._fresh_layout(dset)
        self._layouts[name] = (generation, layout)
        return layout

    def _fresh_layout(self, dset: h5py.Dataset, wanted: Wanted | None = None) -> ChunkLayout | None:
        """``dset``'s chunk layout (of the ``wanted`` chunks only, if given), built now (the engine
        reads the file's bytes, so HDF5's caches are flushed to disk first when the file is writable)."""
        if self.mode != "r":
            self.h5.flush()
        return layout_of(dset, wanted, self._source)

    @atomic
    def write_layer(
        self, name: str, rows: AxisSelection, cols: AxisSelection, values: np.ndarray[Any, Any]
    ) -> None:
        self.require_writable(f"write to layer {name!r}")
        box, cbox = rows.bounds(), cols.bounds()
        self.changes.record(layer_key(name), box, cbox)
        try:
            _matrix_io.write(self.layer(name), rows, cols, values)
        finally:
            self.changes.record(layer_key(name), box, cbox)
        self.touch(fmt.layer_path(name))

    @atomic
    def copy_columns(self, name: str, source: StoredColumns, col: int) -> None:
        """Columns [col, col + width) of the layer get ``source``'s stored chunks as they are."""
        self.require_writable(f"write to layer {name!r}")
        dset = self.layer(name)
        box, cbox = (0, dset.shape[0]), (col, col + source.shape[1])
        self.changes.record(layer_key(name), box, cbox)
        try:
            _hdf5chunks.copy_chunks(source, dset, col)
        finally:
            self.changes.record(layer_key(name), box, cbox)
        self.touch(fmt.layer_path(name))

    def chunk_layout(self, name: str) -> ChunkLayout | None:
        """The layer's whole chunk index (None when the engine cannot read it)."""
        dset = self.layer(name)
        every = (
            AxisSelection.full(dset.shape[0]),
            AxisSelection.full(dset.shape[1] if dset.ndim == 2 else 1),
        )
        return self._layout(name, dset, *every)

    def create_layer(
        self,
        name: str,
        shape: tuple[int, int],
        dtype: np.dtype[Any],
        fill: Callable[[LayerWriter], None] | None = None,
    ) -> None:
        """Create (or replace) a layer. ``fill(writer)`` writes its content through a
        :class:`LayerWriter` (in bands, as they come); zeros if None.

        The new data is written under a temporary name and moved into place only when complete,
        so a failure leaves any previous layer of that name intact.
        """
        self._create_layer(name, shape, dtype, None if fill is None else lambda dset: fill(LayerWriter(dset)))

    @atomic
    def _create_layer(
        self,
        name: str,
        shape: tuple[int, int],
        dtype: np.dtype[Any],
        fill: Callable[[h5py.Dataset], None] | None,
    ) -> None:
        """``create_layer``, with ``fill(dset)`` writing the new HDF5 dataset itself."""
        h5 = self.require_writable(f"create layer {name!r}")
        path = fmt.layer_path(name)
        parent = self._group(path.rsplit("/", 1)[0] or "/")
        tmp = f"{path}.__loomfile_tmp__"
        self.changes.record(LAYERS)
        if tmp in h5:
            del h5[tmp]
        dset = parent.create_dataset(tmp.rsplit("/", 1)[1], **fmt.matrix_dataset_options(shape, dtype))
        try:
            if fill is not None:
                fill(dset)
        except BaseException:
            del h5[tmp]
            raise
        if path in h5:
            del h5[path]
        h5.move(tmp, path)
        self.changes.record(LAYERS)
        self.touch(path)

    @atomic
    def delete_layer(self, name: str) -> None:
        h5 = self.require_writable(f"delete layer {name!r}")
        if name == "":
            msg = "The main matrix (layer '') cannot be deleted"
            raise LoomValueError(msg)
        self.layer(name)
        self.changes.record(LAYERS)
        del h5[fmt.layer_path(name)]
        self.touch(fmt.LAYERS_GROUP)

    @atomic
    def resize_columns(self, n_cols: int) -> None:
        """Grow every layer to ``n_cols`` columns (new cells are zero until written)."""
        self.require_writable("add columns")
        self.changes.record(LAYERS)
        for name in self.layer_names():
            dset = self.layer(name)
            if dset.maxshape[1] is None or dset.maxshape[1] >= n_cols:
                dset.resize(n_cols, axis=1)
                continue
            # Written by a tool that fixed the shape: rebuild it resizable, then swap it in.
            old = dset

            def copy(new: h5py.Dataset, old: h5py.Dataset = old) -> None:
                step = max(1, _matrix_io.BLOCK_ELEMENTS // max(1, old.shape[1]))
                for lo in range(0, old.shape[0], step):
                    new[lo : lo + step, : old.shape[1]] = old[lo : lo + step, :]

            self._create_layer(name, (dset.shape[0], n_cols), dset.dtype, fill=copy)
        self.changes.record(LAYERS)

    # --- row and column attributes -------------------------------------------------------------------

    @reads
    def attr_names(self, axis: int) -> list[str]:
        h5 = self.h5
        group = fmt.ATTR_GROUPS[axis]
        if group not in h5:
            return []
        return [k for k, v in h5[group].items() if isinstance(v, h5py.Dataset)]

    def read_attr(self, axis: int, name: str) -> np.ndarray[Any, Any]:
        h5 = self.h5
        path = fmt.attr_path(axis, name)
        with damaged(path):
            if path not in h5:
                msg = f"The file has no {_KIND[axis]} attribute {name!r}"
                raise LoomKeyError(msg)
            dset = h5[path]
        try:
            values = strings.decode_values(self._read_whole(dset), dset.dtype)
        except Exception as e:
            msg = f"Cannot read {_KIND[axis]} attribute {name!r} ({path}): {e}"
            raise LoomFormatError(msg) from e
        return np.asarray(values)

    @atomic
    def write_attr(self, axis: int, name: str, values: np.ndarray[Any, Any]) -> None:
        self.require_writable(f"write {_KIND[axis]} attribute {name!r}")
        self.changes.record(META)
        path = fmt.attr_path(axis, name)
        data, dtype = elements.encode(values, self.spec)
        self._replace_dataset(path, data=data, dtype=dtype, **fmt.attr_dataset_options(values))
        self.touch(path)
        self.changes.record(META)

    @atomic
    def delete_attr(self, axis: int, name: str) -> None:
        h5 = self.require_writable(f"delete {_KIND[axis]} attribute {name!r}")
        self.changes.record(META)
        path = fmt.attr_path(axis, name)
        if path not in h5:
            msg = f"The file has no {_KIND[axis]} attribute {name!r}"
            raise LoomKeyError(msg)
        del h5[path]
        self.touch(fmt.ATTR_GROUPS[axis])
        self.changes.record(META)

    def _read_whole(self, dset: h5py.Dataset) -> Any:
        """A whole (attribute) dataset: numeric ones with many chunks through the engine."""
        chunks = dset.chunks
        if chunks and dset.ndim in (1, 2) and dset.size // int(np.prod(chunks)) >= ENGINE_MIN_CHUNKS:
            layout = self._fresh_layout(dset)
            if layout is not None:
                values = _engine.read(
                    layout, AxisSelection.full(layout.shape[0]), AxisSelection.full(layout.shape[1])
                )
                return values.reshape(dset.shape)
        self._refuse_damaged_index(dset)
        return dset[()]

    def _refuse_damaged_index(self, dset: h5py.Dataset) -> None:
        """A LoomFormatError for a chunked dataset whose chunk index loops or points outside the
        file, before h5py reads it: HDF5 can loop forever or crash the process on such an index."""
        if dset.chunks is None or dset.is_virtual:
            return
        source = self._source
        if source is None and dset.file.driver == "sec2":
            source = dset.file.id.get_vfd_handle()
        if source is not None:
            chunk_records(dset, source)  # (raises on damage; None for index types it does not parse)

    def _replace_dataset(self, path: str, **options: Any) -> None:
        """Write a dataset under a temporary name, then swap it in (no window without the data)."""
        h5 = self.h5
        parent_path, leaf = path.rsplit("/", 1)
        parent = self._group(parent_path or "/")
        tmp_leaf = f"{leaf}.__loomfile_tmp__"
        if tmp_leaf in parent:
            del parent[tmp_leaf]
        parent.create_dataset(tmp_leaf, **options)
        if leaf in parent:
            del parent[leaf]
        h5.move(f"{parent_path}/{tmp_leaf}", path)

    # --- graphs ----------------------------------------------------------------------------------------

    @reads
    def graph_names(self, axis: int) -> list[str]:
        names: list[str] = []
        h5 = self.h5
        for path in (fmt.GRAPH_GROUPS[axis], fmt.LEGACY_GRAPH_GROUPS[axis]):
            if path in h5:
                names += [k for k, v in h5[path].items() if isinstance(v, h5py.Group) and k not in names]
        return names

    @reads
    def _graph_path(self, axis: int, name: str) -> str:
        h5 = self.h5
        for group in (fmt.GRAPH_GROUPS[axis], fmt.LEGACY_GRAPH_GROUPS[axis]):
            if f"{group}/{name}" in h5:
                return f"{group}/{name}"
        msg = f"The file has no {_KIND[axis]} graph {name!r}"
        raise LoomKeyError(msg)

    def read_graph(self, axis: int, name: str) -> tuple[np.ndarray[Any, Any], ...]:
        path = self._graph_path(axis, name)
        with damaged(path):
            group = self.h5[path]
            missing = [v for v in "abw" if v not in group]
            if missing:
                msg = f"{_KIND[axis].capitalize()} graph {name!r} lacks the vector(s) {', '.join(missing)}"
                raise LoomFormatError(msg)
            return tuple(np.asarray(group[v][()]) for v in "abw")

    @atomic
    def write_graph(
        self, axis: int, name: str, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], w: np.ndarray[Any, Any]
    ) -> None:
        h5 = self.require_writable(f"write {_KIND[axis]} graph {name!r}")
        path = fmt.graph_path(axis, name)
        tmp = f"{path}.__loomfile_tmp__"
        self.changes.record(META)
        if tmp in h5:
            del h5[tmp]
        group = self._group(tmp)
        for key, vec in (("a", a), ("b", b), ("w", w)):
            options: dict[str, Any] = {}
            if vec.size:
                options = {"compression": fmt.COMPRESSION, "compression_opts": fmt.COMPRESSION_LEVEL}
            group.create_dataset(key, data=vec, **options)
        for old in (path, f"{fmt.LEGACY_GRAPH_GROUPS[axis]}/{name}"):
            if old in h5:
                del h5[old]
        h5.move(tmp, path)
        self.touch(path)
        self.changes.record(META)

    @atomic
    def delete_graph(self, axis: int, name: str) -> None:
        h5 = self.require_writable(f"delete {_KIND[axis]} graph {name!r}")
        self.changes.record(META)
        path = self._graph_path(axis, name)
        del h5[path]
        self.touch(path.rsplit("/", 1)[0])
        self.changes.record(META)

    # --- global attributes ------------------------------------------------------------------------------

    @reads
    def global_names(self) -> list[str]:
        return self._globals.names(self.h5)

    def read_global(self, name: str) -> Any:
        if not self._globals.has(self.h5, name):
            msg = f"The file has no global attribute {name!r}"
            raise LoomKeyError(msg)
        with damaged(self._globals.where(name)):
            raw, dtype = self._globals.read(self.h5, name)
        return strings.decode_values(raw, dtype)

    @atomic
    def write_global(self, name: str, value: np.ndarray[Any, Any]) -> None:
        self.require_writable(f"write global attribute {name!r}")
        self.changes.record(META)
        data, dtype = elements.encode(value, self.spec)
        self._globals.write(self, name, data, dtype)
        self.changes.record(META)

    @atomic
    def delete_global(self, name: str) -> None:
        self.require_writable(f"delete global attribute {name!r}")
        self.changes.record(META)
        if name not in self.global_names():
            msg = f"The file has no global attribute {name!r}"
            raise LoomKeyError(msg)
        self._globals.delete(self, name)
        self.changes.record(META)

    # --- creation ---------------------------------------------------------------------------------------

    @staticmethod
    def create_empty(path: str, spec: SpecVersion = versions.CURRENT) -> None:
        """Write an empty Loom file of version ``spec`` at ``path`` (replacing what is there) and
        close it."""
        with h5py.File(path, "w") as h5:
            elements.initialize(h5, spec)


def store_of(source: Any) -> LoomStore | None:
    """The LoomStore behind what loompy builds its managers from: a loomfile connection or store,
    an h5py file, or an object whose ``_file`` is an h5py file (a loompy connection). None for
    None and for anything else (the caller decides what that means)."""
    if source is None or isinstance(source, LoomStore):
        return source
    inner = getattr(source, "_store", None)
    if isinstance(inner, LoomStore):
        return inner
    h5 = source if isinstance(source, h5py.File) else getattr(source, "_file", None)
    if isinstance(h5, h5py.File):
        return LoomStore(h5, h5.filename)
    return None
