"""Layers: the main matrix ("") and named extra matrices of the same shape."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sparse

from .. import _progress
from .._engine import matrix as _matrix_io
from .._engine import reduce as _reduce
from .._engine.pools import Job, ahead, ordered
from .._engine.read import Tiles
from .._engine.sparse import build_coo
from .._engine.stored import StoredColumns
from .._errors import LoomLockedError, LoomValueError
from .._format import spec as fmt
from .._progress import Tick, nothing
from .._selection import AxisSelection, normalize_key, result_shape, take
from .._store.changes import layer_key
from .._store.store import store_of
from .lazy import layer_array
from .mapping import NamedMapping

T = TypeVar("T")

if TYPE_CHECKING:
    from .._engine.memory import Recycler
    from .._store.store import LayerInfo, LoomStore
    from .._store.writer import LayerWriter


def _shape_values(
    values: Any, rows: AxisSelection, cols: AxisSelection, dtype: np.dtype[Any], what: str
) -> Any:
    """Broadcast assigned values to the 2-D block (rows.size, cols.size) in the layer's dtype."""
    if sparse.issparse(values):
        values = values.toarray()
    arr = fmt.dense_array(values, f"Values assigned to {what}")
    if arr.dtype.kind not in "iufb":
        msg = f"Values assigned to {what} must be numbers, not {arr.dtype}"
        raise LoomValueError(msg)
    fmt.check_finite(arr, f"Values assigned to {what}")
    target = result_shape(rows, cols)
    try:
        arr = np.broadcast_to(arr, target)
    except ValueError:
        msg = f"Cannot assign values of shape {arr.shape} to a selection of shape {target} in {what}"
        raise LoomValueError(msg) from None
    return fmt.cast_for_layer(arr.reshape(rows.size, cols.size), dtype, what)


def bands(n: int, width: int, start: int = 0) -> Iterator[slice]:
    """Consecutive slices of at most ``width`` covering ``range(start, n)``."""
    width = max(1, width)
    for lo in range(start, n, width):
        yield slice(lo, min(n, lo + width))


def band_width(other_extent: int, chunk: int, elements: int = _matrix_io.BLOCK_ELEMENTS) -> int:
    """How many rows/columns to handle at once: a multiple of the chunk edge, about ``elements``."""
    width = elements // max(1, other_extent)
    return max(chunk, width // chunk * chunk)


TASK_ELEMENTS = 4 * 1024 * 1024  # one block of work for a pool thread (16 MiB of float32)


def _band_key(band: slice, n: int, axis: int, other: AxisSelection) -> tuple[AxisSelection, AxisSelection]:
    """(rows, cols) of a band of rows (axis 0) or columns (axis 1) by ``other`` on the other axis."""
    along = AxisSelection.from_key(band, n, axis)
    return (along, other) if axis == 0 else (other, along)


def _as_selection(key: Any, n: int, axis: int) -> AxisSelection:
    return AxisSelection.full(n) if key is None else AxisSelection.from_key(key, n, axis)


class LoomLayer:
    """A layer in the file: index it like a numpy array (``layer[rows, cols]``), or assign to it."""

    def __init__(self, name: str, ds: Any) -> None:
        """Layer ``name`` of ``ds``: a connection (loomfile's or loompy's) or a LoomStore (loompy's
        argument order)."""
        store = store_of(ds)
        if store is None:
            msg = f"LoomLayer needs a connection, not {type(ds).__name__}"
            raise LoomValueError(msg)
        self._store = store
        self.name = name

    def _dataset(self) -> LayerInfo:
        """The layer's shape, dtype and chunk shape (the store holds the dataset itself)."""
        return self._store.layer_info(self.name)

    @property
    def shape(self) -> tuple[int, int]:
        s = self._store.layer_shape(self.name)
        return (s[0], s[1])

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._store.layer_dtype(self.name)

    def _what(self) -> str:
        return "the main matrix" if self.name == "" else f"layer {self.name!r}"

    def __repr__(self) -> str:
        return f"<LoomLayer {self.name!r} shape={self.shape} dtype={self.dtype}>"

    def __getitem__(self, key: Any) -> Any:
        rows, cols = normalize_key(key, self.shape)
        block = self._store.read_layer(self.name, rows, cols)
        return block.reshape(result_shape(rows, cols)) if (rows.drop or cols.drop) else block

    def __setitem__(self, key: Any, values: Any) -> None:
        self._store.require_writable(f"write to {self._what()}")
        rows, cols = normalize_key(key, self.shape)
        block = _shape_values(values, rows, cols, self.dtype, self._what())
        self._store.write_layer(self.name, rows, cols, block)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        full = self[:, :]
        return full if dtype is None else full.astype(dtype)

    def last_modified(self) -> str:
        return self._store.timestamp_of(fmt.layer_path(self.name)) or fmt.timestamp()

    def _blocks(
        self, blocks: Iterable[tuple[AxisSelection, AxisSelection, T]], transposed: bool = False
    ) -> Iterator[tuple[T, Any]]:
        """(tag, values) for each (rows, cols, tag), the next block read while the caller uses this one."""
        store = self._store
        depends = (layer_key(self.name),)

        def job(rows: AxisSelection, cols: AxisSelection, tag: T) -> Job[tuple[T, Any]]:
            boxes = (rows.bounds(), cols.bounds())
            return (
                lambda: (tag, store.read_layer(self.name, rows, cols, transposed)),
                lambda since: store.changes.changed_since(since, depends, *boxes),
            )

        return ahead((job(*b) for b in blocks), lambda: store.changes.generation)

    def _bands(
        self, axis: int, other: AxisSelection, part: slice | None = None
    ) -> Iterator[tuple[slice, Any]]:
        """(band, vectors) over every row (axis 0) or column (axis 1) (those in ``part`` if given), a
        chunk-aligned band at a time; one vector per row of ``vectors`` (column bands come transposed)."""
        n = self.shape[axis]
        chunk = fmt.work_chunks(self._dataset().chunks)[axis]
        lo, hi = (0, n) if part is None else (part.start, part.stop)
        blocks = ((*_band_key(b, n, axis, other), b) for b in bands(hi, band_width(other.size, chunk), lo))
        return self._blocks(blocks, transposed=axis == 1)

    def sparse(self, rows: Any = None, cols: Any = None, dtype: Any = None) -> sparse.coo_matrix:
        """The layer (or the given rows/columns: int arrays or bool masks) as a ``coo_matrix``.

        One pass, memory for the nonzeros found so far plus two blocks. The entries come in loompy's
        order (bands of 4096 columns, row-major within each) and, as in loompy, the values are
        float64 unless ``dtype`` is given (``dtype="float32"`` halves the memory).
        """
        n_rows, n_cols = self.shape
        row_sel = _as_selection(rows, n_rows, 0)
        col_sel = _as_selection(cols, n_cols, 1)
        out_dtype = np.dtype("float64" if dtype is None else dtype)
        store, name = self._store, self.name

        def read(rows_part: AxisSelection, cols_part: AxisSelection) -> np.ndarray | Tiles:
            # blocks on the chunk grid come as their decoded chunks, not placed
            return store.read_tiles(name, rows_part, cols_part, or_block=True)

        return build_coo(read, row_sel, col_sel, out_dtype, TASK_ELEMENTS)

    def map(
        self,
        f_list: Sequence[Callable[[np.ndarray], Any]],
        axis: int = 0,
        chunksize: int = 1000,
        selection: Any = None,
        *,
        progress: bool | None = None,
    ) -> list[np.ndarray]:
        """Apply each function to every row (axis 0) or column (axis 1); one float64 array per function.

        ``selection`` restricts the other axis (which columns each row function sees, or vice versa).
        numpy reductions (mean, std, sum, ...) run on whole bands at once; other functions are called
        once per row or column, as in loompy. ``chunksize`` is accepted for compatibility: bands
        follow the chunk grid instead, which does not change any result.
        """
        check_map_args(f_list, axis)
        shape = self.shape
        other = AxisSelection.from_key(
            slice(None) if selection is None else selection, shape[1 - axis], 1 - axis
        )
        with _progress.bar(shape[axis], "map", progress, "rows" if axis == 0 else "columns") as tick:
            return self._map_part(f_list, axis, other, slice(0, shape[axis]), tick)

    def _map_part(
        self,
        f_list: Sequence[Callable[[np.ndarray], Any]],
        axis: int,
        other: AxisSelection,
        part: slice,
        tick: Tick = nothing,
    ) -> list[np.ndarray]:
        """``map`` of the rows (axis 0) or columns (axis 1) in ``part`` only, a whole number of chunks
        from the start of the grid: the same functions on the same vectors, read and reduced the
        same way (``loomfile.dask`` maps a file one part per task)."""
        shape = self.shape
        results = [np.zeros(part.stop - part.start) for _ in f_list]

        # numpy reductions run on whole bands (see _engine.reduce.REDUCTIONS)
        at_once = _reduce.on_bands(f_list) if self.dtype.kind == "f" else None
        vectorised = at_once is not None
        # down the columns of bands read as stored, not transposed (see _engine.reduce)
        down = axis == 1 and _reduce.handles(f_list, self.dtype)

        def apply(vectors: Any) -> list[Any]:
            """The functions on a band read with one vector per row (columns come transposed)."""
            if down:
                return _reduce.down_columns(vectors, f_list)
            if at_once is not None:
                return [reduce(vectors) for reduce in at_once]
            return [np.apply_along_axis(f, 1, vectors) for f in f_list]

        if vectorised:
            # numpy reductions release the GIL: read and reduce each band on the pool.
            store, name = self._store, self.name
            n, chunk = shape[axis], fmt.work_chunks(self._dataset().chunks)[axis]

            def task(b: slice) -> tuple[slice, list[Any]]:
                key = _band_key(b, n, axis, other)
                return b, apply(store.read_layer(name, *key, transposed=axis == 1 and not down, reuse=True))

            done: Iterable[tuple[slice, list[Any]]] = ordered(
                task, bands(part.stop, band_width(other.size, chunk, TASK_ELEMENTS), part.start)
            )
        else:  # other functions are called one vector at a time, in this thread, as in loompy
            done = ((band, apply(vectors)) for band, vectors in self._bands(axis, other, part))
        for band, values in done:
            for out, v in zip(results, values, strict=True):
                out[band.start - part.start : band.stop - part.start] = v
            tick(band.stop - band.start)
        return results

    def to_dask(self, *, axis: int = 1, block: int | None = None) -> Any:
        """The layer as a lazy ``dask.array``, in blocks of whole chunk columns (``axis=1``) or whole
        chunk rows (``axis=0``), ``block`` columns (rows) each (rounded down to whole chunks; by
        default about dask's ``array.chunk-size``).

        Each block is read by a task that opens the file by its path (or URL) and reads through the
        chunk engine: the array can be computed by ``dask.distributed`` workers in other processes
        or on other machines that see the same file (as saved: connect with mode "r", since a
        connection open for writing locks the file). Needs ``pip install 'loomfile[dask]'``.
        """
        if self._store.mode != "r":
            msg = (
                f"to_dask() reads '{self._store.path}' in tasks that open it read-only, and this "
                "connection (mode 'r+') locks it: close it and connect with mode='r'"
            )
            raise LoomLockedError(msg)
        remote = self._store.remote
        options = None if remote is None else remote.storage_options
        return layer_array(self._store.path, self.name, axis=axis, block=block, storage_options=options)

    def _permute(self, ordering: np.ndarray, *, axis: int, tick: Tick = nothing) -> None:
        """Reorder the rows (axis 0) or columns (axis 1) in place, one band of the other axis at a time."""
        shape = self.shape
        chunk = fmt.work_chunks(self._dataset().chunks)[1 - axis]
        permuted = AxisSelection.full(shape[axis])
        for band in bands(shape[1 - axis], band_width(shape[axis], chunk)):
            other = AxisSelection.from_key(band, shape[1 - axis], 1 - axis)
            key = (permuted, other) if axis == 0 else (other, permuted)
            block = self._store.read_layer(self.name, *key)
            block = np.take(block, ordering, axis=axis)  # (5x faster than fancy indexing)
            self._store.write_layer(self.name, *key, block)
            tick(band.stop - band.start)


class MemoryLoomLayer:
    """A layer held in memory (a layer of a view)."""

    def __init__(self, name: str, matrix: np.ndarray[Any, Any]) -> None:
        self.name = name
        self.values = matrix

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.values.shape[0]), int(self.values.shape[1]))

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.values.dtype

    def __repr__(self) -> str:
        return f"<MemoryLoomLayer {self.name!r} shape={self.shape} dtype={self.dtype}>"

    def __getitem__(self, key: Any) -> Any:
        rows, cols = normalize_key(key, self.shape)
        block = take(self.values, rows, cols)
        return block.reshape(result_shape(rows, cols)) if (rows.drop or cols.drop) else block

    def __setitem__(self, key: Any, values: Any) -> None:
        rows, cols = normalize_key(key, self.shape)
        block = _shape_values(values, rows, cols, self.dtype, f"layer {self.name!r}")
        self.values[np.ix_(rows.indices, cols.indices)] = block

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        return self.values if dtype is None else self.values.astype(dtype)

    def sparse(self, rows: Any = None, cols: Any = None, dtype: Any = None) -> sparse.coo_matrix:
        row_sel = _as_selection(rows, self.shape[0], 0)
        col_sel = _as_selection(cols, self.shape[1], 1)
        block = take(self.values, row_sel, col_sel)
        return sparse.coo_matrix(block if dtype is None else block.astype(dtype))

    def last_modified(self) -> str:
        return fmt.timestamp()

    def permute(self, ordering: np.ndarray, *, axis: int) -> None:
        self.values = self.values[ordering, :] if axis == 0 else self.values[:, ordering]


class _FileLayers:
    """The layers of a file: handles that read on demand, whole-layer writes through the store."""

    def __init__(self, store: LoomStore) -> None:
        self._store = store

    @property
    def shape(self) -> tuple[int, int]:
        return self._store.shape

    def store(self, action: str) -> LoomStore:
        return self._store

    def names(self) -> list[str]:
        return self._store.layer_names()

    def handle(self, name: str) -> LoomLayer:
        return LoomLayer(name, self._store)

    def block(self, name: str, rows: AxisSelection, cols: AxisSelection, buffers: Recycler | None) -> np.ndarray:
        out = None
        if buffers is not None:
            out = buffers.get(name, (rows.size, cols.size), self._store.layer_dtype(name))
        return self._store.read_layer(name, rows, cols, out=out)

    def set(self, name: str, value: Any) -> None:
        self._store.require_writable(f"write layer {name!r}")
        write_new_layer(self._store, name, value)

    def delete(self, name: str) -> None:
        self._store.delete_layer(name)

    def permute(self, name: str, ordering: np.ndarray, axis: int, tick: Tick) -> None:
        self.handle(name)._permute(ordering, axis=axis, tick=tick)


class _MemoryLayers:
    """The layers of a view: whole matrices in memory, of the view's shape."""

    def __init__(self, layers: dict[str, MemoryLoomLayer], shape: tuple[int, int]) -> None:
        self._layers = layers
        self.shape = shape

    def store(self, action: str) -> LoomStore:
        msg = f"A view's layers live in memory: cannot {action} (assign a whole matrix: view.layers[name] = m)"
        raise LoomValueError(msg)

    def names(self) -> list[str]:
        return list(self._layers)

    def handle(self, name: str) -> MemoryLoomLayer:
        return self._layers[name]

    def block(self, name: str, rows: AxisSelection, cols: AxisSelection, buffers: Recycler | None) -> np.ndarray:
        return take(self._layers[name].values, rows, cols)

    def set(self, name: str, value: Any) -> None:
        check_layer_value(value, name, None)  # dtype, NaN, 2-D: as for a file's layers
        matrix = value.values if isinstance(value, MemoryLoomLayer) else np.asarray(value)
        if name != "" and matrix.shape != self.shape:
            msg = f"Layer {name!r} has shape {matrix.shape}; the view has shape {self.shape}"
            raise LoomValueError(msg)
        self._layers[name] = MemoryLoomLayer(name, matrix)

    def delete(self, name: str) -> None:
        if name == "":
            msg = "The main matrix (layer '') cannot be deleted"
            raise LoomValueError(msg)
        del self._layers[name]

    def permute(self, name: str, ordering: np.ndarray, axis: int, tick: Tick) -> None:
        self._layers[name].permute(ordering, axis=axis)


class LayerManager(NamedMapping[Any]):
    """The layers of a file or view, by name; "" is the main matrix.

    Examples
    --------
    >>> ds.layers["spliced"] = counts            # dense or scipy.sparse, same shape as the file
    >>> ds.layers["empty"] = "float32"           # an all-zero layer
    >>> ds.layers["spliced"][:, 10]              # one column of a layer
    """

    _fields = frozenset({"_layers"})
    _kind = "layer"

    def __init__(
        self,
        ds: Any,
        *,
        layers: dict[str, MemoryLoomLayer] | None = None,
        shape: tuple[int, int] = (0, 0),
    ) -> None:
        """``ds``: a connection (loomfile's or loompy's) or a LoomStore; None with ``layers`` for
        layers in memory."""
        store = store_of(ds)
        if ds is not None and store is None:
            msg = f"LayerManager needs a connection, not {type(ds).__name__}"
            raise LoomValueError(msg)
        self._layers: _FileLayers | _MemoryLayers = (
            _FileLayers(store) if store is not None else _MemoryLayers({} if layers is None else layers, shape)
        )

    @classmethod
    def in_memory(cls, layers: dict[str, MemoryLoomLayer], shape: tuple[int, int]) -> LayerManager:
        return cls(None, layers=layers, shape=shape)

    @property
    def _shape(self) -> tuple[int, int]:
        return self._layers.shape

    def create(
        self,
        name: str,
        shape: tuple[int, int],
        dtype: npt.DTypeLike,
        fill: Callable[[LayerWriter], None] | None = None,
    ) -> None:
        """Create (or replace) layer ``name`` and write it piece by piece, for matrices larger than
        memory: ``fill(writer)`` calls ``writer.write(row, col, block)`` for each block, in any order
        (what it never writes reads as zeros). The layer appears only once ``fill`` returns; if
        ``fill`` raises, the file keeps what it had.

        Examples
        --------
        >>> def fill(writer):
        ...     for lo in range(0, n_cols, 1024):
        ...         writer.write(0, lo, next_band_of_columns())   # rows x up to 1024 columns
        >>> ds.layers.create("", (n_rows, n_cols), "int32", fill)
        """
        fmt.check_name("Layer", name, allow_empty=True)
        what = "The main matrix" if name == "" else f"Layer {name!r}"
        checked = fmt.check_matrix_dtype(dtype, what)
        if len(shape) != 2 or any(not isinstance(n, int | np.integer) or n < 0 for n in shape):
            msg = f"{what} needs a shape of two non-negative ints, not {shape!r}"
            raise LoomValueError(msg)
        size = (int(shape[0]), int(shape[1]))
        store = self._layers.store("create a layer piece by piece")
        current = store.shape
        if current == (0, 0) and name != "":
            msg = f"Layer {name!r} cannot be created before the main matrix"
            raise LoomValueError(msg)
        if current != (0, 0) and size != current:
            msg = f"{what} would be {size[0]} x {size[1]}; the file is {current[0]} x {current[1]}"
            raise LoomValueError(msg)
        store.require_writable(f"create {what[0].lower()}{what[1:]}")
        store.create_layer(name, size, checked, fill=fill)

    def _names(self) -> list[str]:
        return self._layers.names()

    def _get(self, name: str) -> Any:
        return self._layers.handle(name)

    def __getitem__(self, key: Any) -> Any:
        """A layer by name, or (for a 2-D index) every layer sliced, in memory."""
        if isinstance(key, str):
            return super().__getitem__(key)
        rows, cols = normalize_key(key, self._layers.shape)
        return self._select(rows, cols)

    def _select(
        self,
        rows: AxisSelection,
        cols: AxisSelection,
        names: Sequence[str] | None = None,
        buffers: Recycler | None = None,
    ) -> LayerManager:
        """Every layer (or those named) restricted to ``rows`` x ``cols``, in memory (read into
        ``buffers`` when given)."""
        selected = {
            name: MemoryLoomLayer(name, self._layers.block(name, rows, cols, buffers))
            for name in (self._names() if names is None else names)
        }
        return LayerManager.in_memory(selected, (rows.size, cols.size))

    def _set(self, name: str, value: Any) -> None:
        fmt.check_name("Layer", name, allow_empty=True)
        self._layers.set(name, value)

    def _delete(self, name: str) -> None:
        self._layers.delete(name)

    def last_modified(self, name: str | None = None) -> str:
        """When the layer (or, without a name, the most recently changed layer) was last modified."""
        if name is not None:
            return str(self[name].last_modified())
        stamps = [self[n].last_modified() for n in self._names()]
        return max(stamps) if stamps else fmt.timestamp()

    def _permute(self, ordering: np.ndarray, *, axis: int, tick: Tick = nothing) -> None:
        for name in self._names():
            self._layers.permute(name, ordering, axis, tick)


def check_map_args(f_list: Any, axis: Any) -> None:
    """map()'s arguments: a list of functions (not one function) and an axis, 0 or 1."""
    if callable(f_list):
        msg = "f_list must be a list of functions, not a function itself"
        raise LoomValueError(msg)
    if axis not in (0, 1):
        msg = f"axis must be 0 (rows) or 1 (columns), not {axis!r}"
        raise LoomValueError(msg)


def check_layer_value(
    value: Any, name: str, shape: tuple[int, int] | None
) -> tuple[tuple[int, int], np.dtype[Any]]:
    """Validate a value for a whole layer (dense, sparse, or a dtype name); return its shape and dtype."""
    what = "The main matrix" if name == "" else f"Layer {name!r}"
    if isinstance(value, str):
        if shape is None or 0 in shape:
            msg = f"{what}: an empty layer of dtype {value!r} needs a file that already has a main matrix"
            raise LoomValueError(msg)
        try:
            dtype = np.dtype(value)
        except TypeError:
            msg = f"{what}: {value!r} is not a dtype name"
            raise LoomValueError(msg) from None
        return shape, fmt.check_matrix_dtype(dtype, what)
    if isinstance(value, LoomLayer | MemoryLoomLayer | StoredColumns):
        value_shape, dtype = value.shape, value.dtype
    elif sparse.issparse(value):
        value_shape, dtype = value.shape, value.dtype
        stored = value.data if value.format in ("csr", "csc", "coo", "bsr") else value.tocoo().data
        fmt.check_finite(np.asarray(stored), what)
    else:
        if value is None:
            msg = f"{what} is None; a 2-D matrix is needed"
            raise LoomValueError(msg)
        arr = fmt.dense_array(value, what)
        if arr.ndim != 2:
            msg = f"{what} must be a 2-D matrix, got shape {arr.shape}"
            raise LoomValueError(msg)
        value_shape, dtype = arr.shape, arr.dtype
        fmt.check_matrix_dtype(dtype, what)
        fmt.check_finite(arr, what)
    value_shape = (int(value_shape[0]), int(value_shape[1]))
    fmt.check_matrix_dtype(dtype, what)
    if 0 in value_shape:
        msg = f"{what} is empty (shape {value_shape}); Loom matrices need at least one row and one column"
        raise LoomValueError(msg)
    if shape is not None and 0 not in shape and value_shape != shape:
        msg = f"{what} has shape {value_shape}; the file's layers have shape {shape}"
        raise LoomValueError(msg)
    return value_shape, np.dtype(dtype)


def write_new_layer(store: LoomStore, name: str, value: Any) -> None:
    """Create or replace a whole layer from a dense/sparse matrix, another layer, or a dtype name."""
    value = fmt.from_pandas(value)
    current = store.shape
    shape, dtype = check_layer_value(value, name, None if current == (0, 0) else current)
    if name != "" and current == (0, 0):
        msg = f"Layer {name!r} cannot be created before the main matrix"
        raise LoomValueError(msg)
    if isinstance(value, str):
        store.create_layer(name, shape, dtype)
        return
    if not (isinstance(value, np.ndarray | LoomLayer | MemoryLoomLayer | StoredColumns) or sparse.issparse(value)):
        value = fmt.dense_array(value, "The main matrix" if name == "" else f"Layer {name!r}")  # nested lists

    def fill(writer: LayerWriter) -> None:
        layout = value._store.chunk_layout(value.name) if isinstance(value, LoomLayer) else None
        if layout is None or not writer.can_copy(layout):
            writer.write_matrix(value)
            return
        # Another layer stored the same way: its chunks are copied as they are, except a partial
        # last chunk column (its padding must hold the fill value once the layer grows).
        whole = shape[1] // layout.chunks[1] * layout.chunks[1]
        if whole:
            writer.copy_columns(StoredColumns(layout, 0, whole), 0)
        if whole < shape[1]:
            writer.write(0, whole, value[:, whole:])

    store.create_layer(name, shape, dtype, fill=fill)
