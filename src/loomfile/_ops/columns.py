"""File-level operations shared by connections: scan bands, orderings, appending columns."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sparse

from .. import _progress
from .._engine import memory as _memory
from .._engine import pools
from .._engine.chunks import ChunkLayout
from .._engine.stored import StoredColumns
from .._errors import LoomValueError
from .._format import spec as fmt
from .._progress import Tick
from .._selection import AxisSelection
from .._warn import warn_caller

# add_loom reads at most this much of every layer at once (batch_size columns, or fewer): bands
# land in buffers that are recycled, but touching them the first time costs a page fault per page,
# and smaller bands keep reading and writing overlapped.
BAND_BYTES = 64 << 20
SPARSE_BAND_BYTES = 16 << 20  # a sparse matrix being appended is made dense this much at a time

if TYPE_CHECKING:
    from .._core.connection import Connection


def _layers_dict(ds: Connection, layers: Any) -> dict[str, Any]:
    from .._core.layers import LayerManager

    layers = fmt.from_pandas(layers)
    if isinstance(layers, np.ndarray) or sparse.issparse(layers):
        return {"": layers}
    if isinstance(layers, LayerManager):
        return {k: layers[k] for k in layers.keys()}
    if isinstance(layers, Mapping):
        out = {name: fmt.from_pandas(matrix) for name, matrix in layers.items()}
    else:
        msg = f"layers must be a matrix, a dict of matrices or a LayerManager, not {type(layers).__name__}"
        raise LoomValueError(msg)
    return out  # (layers of another file stay lazy: a new file copies them band by band)


def _fill_value(fill_values: Any, name: str, like: np.ndarray) -> Any:
    if fill_values == "auto":
        return "" if like.dtype.kind == "O" else np.zeros(1, dtype=like.dtype)[0]
    return fill_values[name]


def add_columns(
    ds: Connection,
    layers: Any,
    col_attrs: Mapping[str, Any],
    *,
    row_attrs: Mapping[str, Any] | None = None,
    fill_values: Any = None,
) -> None:
    """Append columns to every layer and column attribute (loompy's ``add_columns``).

    Everything is checked before the file is touched. Attributes that cannot be kept (present on
    one side only, without ``fill_values``) are dropped as loompy does, but with a warning.
    """
    from .._core.layers import check_layer_value

    store = ds._store
    store.require_writable("add columns")
    new_layers = _layers_dict(ds, layers)
    shape = store.shape
    is_new = shape == (0, 0)
    if is_new and row_attrs is None:
        msg = "row_attrs must be provided when adding columns to an empty (new) Loom file"
        raise LoomValueError(msg)
    if not new_layers:
        msg = "add_columns needs at least one layer"
        raise LoomValueError(msg)
    if is_new and "" not in new_layers:
        msg = "add_columns on an empty file needs the main matrix (layer '')"
        raise LoomValueError(msg)
    n_rows = shape[0]
    if is_new:
        n_rows = int(np.asarray(new_layers[""].shape)[0])
    n_new = None
    for name, matrix in new_layers.items():
        if not is_new and name not in store.layer_names():
            msg = f"Layer {name!r} does not exist in the target file (layers: {store.layer_names()})"
            raise LoomValueError(msg)
        m_shape, _ = check_layer_value(matrix, name, None)
        if m_shape[0] != n_rows:
            msg = f"Layer {name!r} has {m_shape[0]} rows but the file has {n_rows}"
            raise LoomValueError(msg)
        if n_new is None:
            n_new = m_shape[1]
        elif m_shape[1] != n_new:
            msg = f"Layer {name!r} has {m_shape[1]} columns but the first layer had {n_new}"
            raise LoomValueError(msg)
    assert n_new is not None
    if not is_new:
        missing = [k for k in store.layer_names() if k not in new_layers]
        if missing:
            msg = f"add_columns needs values for every layer of the file; missing: {missing}"
            raise LoomValueError(msg)

    incoming = {k: fmt.normalize_values(v, f"Column attribute {k!r}") for k, v in col_attrs.items()}
    for k, v in incoming.items():
        if v.shape[0] != n_new:
            msg = f"Column attribute {k!r} has {v.shape[0]} values but {n_new} columns are being added"
            raise LoomValueError(msg)
    final, dropped = _merged_col_attrs(ds, incoming, n_new, fill_values, is_new)
    if is_new:
        assert row_attrs is not None
        for k, v in row_attrs.items():
            ds.ra[k] = v
        for name, matrix in [("", new_layers[""])] + [(k, v) for k, v in new_layers.items() if k != ""]:
            ds.layers[name] = matrix
        for k, v in final.items():
            ds.ca[k] = v
        return
    store.resize_columns(shape[1] + n_new)
    _write_columns(ds, new_layers, shape[1])
    _replace_col_attrs(ds, final, dropped)
    store.flush()


def _merged_col_attrs(
    ds: Connection, incoming: dict[str, np.ndarray], n_new: int, fill_values: Any, is_new: bool
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The column attributes after ``n_new`` columns with ``incoming`` attributes are appended, and
    the names dropped (present on one side only without ``fill_values``, or of another shape)."""
    shape = ds._store.shape
    existing = {} if is_new else {k: ds.ca[k] for k in ds.ca.keys()}
    final: dict[str, np.ndarray] = {}
    dropped: list[str] = []
    for k in sorted(set(existing) | set(incoming), key=lambda s: (s not in existing, s)):
        old = existing.get(k)
        new = incoming.get(k)
        if is_new:
            final[k] = new  # type: ignore[assignment]
            continue
        if old is None or new is None:
            if fill_values is None:
                dropped.append(k)
                continue
            like = new if old is None else old
            assert like is not None
            value = _fill_value(fill_values, k, like)
            n_fill = shape[1] if old is None else n_new
            filler = np.full((n_fill, *like.shape[1:]), value, dtype=like.dtype)
            old, new = (filler, new) if old is None else (old, filler)
        assert old is not None and new is not None
        if old.shape[1:] != new.shape[1:]:
            dropped.append(k)
            continue
        final[k] = np.concatenate([old, fmt.normalize_values(new, k)])
    return final, dropped


def _replace_col_attrs(ds: Connection, final: dict[str, np.ndarray], dropped: list[str]) -> None:
    """Write the merged column attributes, deleting (with a warning) those dropped: only once the
    layers are written, so that a call which fails does not warn of a drop that never happened."""
    if dropped:
        warn_caller(
            f"column attributes not present in both files were dropped: {dropped} "
            "(pass fill_values to keep them, e.g. fill_values='auto' for zeros and empty strings)"
        )
    for k in dropped:
        if k in ds.ca.keys():
            del ds.ca[k]
    for k, v in final.items():
        ds.ca[k] = v


def _write_columns(ds: Connection, blocks: Mapping[str, Any], at: int) -> None:
    """Write each layer's block into the (already allocated) columns from ``at`` on: stored chunks
    are copied as they are, other values are converted to the layer's dtype first."""
    from .._core.layers import LoomLayer, MemoryLoomLayer

    store = ds._store
    n_rows, total = store.shape
    for name, matrix in blocks.items():
        if isinstance(matrix, StoredColumns):
            store.copy_columns(name, matrix, at)
            continue
        if isinstance(matrix, LoomLayer | MemoryLoomLayer):
            matrix = matrix[:, :]
        what = "the main matrix" if name == "" else f"layer {name!r}"
        info = store.layer_info(name)
        dtype, chunk = info.dtype, (info.chunks or (1, 1))[1]
        for start, part in _column_parts(matrix, n_rows * dtype.itemsize, chunk, at):
            block = fmt.cast_for_layer(part, dtype, what)
            end = at + start + block.shape[1]
            cols = AxisSelection(total, np.arange(at + start, end, dtype=np.intp), contiguous=slice(at + start, end))
            store.write_layer(name, AxisSelection.full(n_rows), cols, block)


def _column_parts(matrix: Any, column_bytes: int, chunk: int, at: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first column, dense block) of ``matrix``, to be written from column ``at`` on: all of it for
    a dense one; a sparse one a band of whole chunk columns of the layer at a time (about
    SPARSE_BAND_BYTES dense), never dense as a whole."""
    if not sparse.issparse(matrix):
        yield 0, np.asarray(matrix)
        return
    if matrix.format not in ("csr", "csc"):
        matrix = matrix.tocsc()
    width = max(chunk, SPARSE_BAND_BYTES // max(1, column_bytes) // chunk * chunk)
    for band in aligned_bands(matrix.shape[1], at, width, chunk):
        yield band.start, matrix[:, band].toarray()


def key_ordering(
    this: np.ndarray, other: np.ndarray, key: str, other_name: str = "the other file", word: str = "row"
) -> np.ndarray:
    """Positions in ``other`` of each value of ``this`` (both unique keys), or a clear error naming
    the values that differ.

    Through dicts: numpy's set operations sort object arrays of strings with Python comparisons,
    seconds for 20000 genes."""
    mine, theirs = this.tolist(), other.tolist()
    where = {v: i for i, v in enumerate(theirs)}
    for values, whose in ((theirs, other_name), (mine, "the target")):
        if len(set(values)) != len(values):
            repeated = sorted(v for v, n in collections.Counter(values).items() if n > 1)
            msg = (
                f"{word.capitalize()} attribute {key!r} must have unique values to align on; {whose} repeats "
                f"{len(repeated)} (e.g. {repeated[:3]})"
            )
            raise LoomValueError(msg)
    missing = [v for v in mine if v not in where]
    extra = sorted(set(theirs) - set(mine))
    if missing or extra:
        msg = (
            f"{word.capitalize()} attribute {key!r} differs between the files: {len(missing)} values only in the target "
            f"(e.g. {sorted(missing)[:3]}), {len(extra)} only in {other_name} (e.g. {extra[:3]})"
        )
        raise LoomValueError(msg)
    return np.fromiter((where[v] for v in mine), dtype=np.intp, count=len(mine))


def add_loom(
    ds: Connection,
    other_file: str,
    key: str | None = None,
    fill_values: Any = None,
    batch_size: int = 1000,
    convert_attrs: bool = False,
    include_graphs: bool = False,
    *,
    progress: bool | None = None,
    tick: Tick | None = None,
    buffers: _memory.Recycler | None = None,
) -> None:
    """Append the columns of another Loom file (loompy's ``add_loom``).

    Progress goes to ``tick`` when an enclosing operation counts it, else to a bar of its own.
    ``buffers``: where bands are read, when an enclosing operation (combine) appends several files.
    """
    from .._core.connection import connect

    ds._store.require_writable("add a Loom file")
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(connect(other_file, "r"))
        if tick is None:
            tick = stack.enter_context(_progress.bar(other.shape[1], "add_loom", progress, "columns"))
        ordering = None
        if key is not None:  # first: differing keys are named, not only counted
            ordering = key_ordering(ds.ra[key], other.ra[key], key, other_file)
            if np.array_equal(ordering, np.arange(ordering.size)):
                ordering = None  # rows already in order: chunks may be copied as stored
        if other.shape[0] != ds.shape[0]:
            msg = f"{other_file} has {other.shape[0]} rows but the target file has {ds.shape[0]}"
            raise LoomValueError(msg)
        missing_layers = set(ds.layers.keys()) - set(other.layers.keys())
        if missing_layers:
            msg = f"{other_file} lacks layers {sorted(missing_layers)} of the target file"
            raise LoomValueError(msg)
        extra_ca: dict[str, np.ndarray] = {}
        if convert_attrs:
            extra_ca = _convert_globals(ds, other)
        n_before = ds.shape[1]
        rows = (
            AxisSelection.full(other.shape[0])
            if ordering is None
            else AxisSelection(other.shape[0], ordering)
        )
        chunk = (ds._store.layer_info("").chunks or (1, 1))[1]
        names = ds.layers.keys()
        per_column = other.shape[0] * sum(np.dtype(other.layers[k].dtype).itemsize for k in names)
        batch_size = min(batch_size, max(1, BAND_BYTES // max(1, per_column)))
        band_list = list(aligned_bands(other.shape[1], n_before, batch_size, chunk))
        copyable = _copyable(ds, other, names) if ordering is None and n_before % chunk == 0 else {}
        if copyable:
            # Copied chunks take no memory: one band for all whole chunk columns when every layer is
            # copied; the partial last chunk column (if any) is decoded and written on its own.
            cut = other.shape[1] // chunk * chunk
            head = (
                [slice(0, cut)]
                if len(copyable) == len(names)
                else list(aligned_bands(cut, 0, batch_size, chunk))
            )
            band_list = [b for b in (*head, slice(cut, other.shape[1])) if b.start < b.stop]

        widest = max((b.stop - b.start for b in band_list), default=0)
        if buffers is None:
            buffers = _memory.Recycler()  # bands land in recycled memory, not fresh pages

        def values_of(band: slice) -> dict[str, Any]:
            cols = AxisSelection.from_key(band, other.shape[1], 1)
            whole = band.stop % chunk == 0  # whole chunk columns: their stored chunks can be copied
            values: dict[str, Any] = {}
            for name in names:
                if whole and name in copyable:
                    values[name] = StoredColumns(copyable[name], band.start, band.stop)
                else:
                    dtype = other.layers[name].dtype
                    out = buffers.get(name, (rows.size, cols.size), dtype, rows.size * widest * dtype.itemsize)
                    values[name] = other._store.read_layer(name, rows, cols, out=out)
                    fmt.check_finite(values[name], f"Layer {name!r} of {other_file}")
            return values

        def read_band(band: slice) -> pools.Job[dict[str, Any]]:
            return (lambda: values_of(band)), lambda _: False

        incoming = {
            k: fmt.normalize_values(v, f"Column attribute {k!r}") for k, v in [*other.ca.items(), *extra_ca.items()]
        }
        final, dropped = _merged_col_attrs(ds, incoming, other.shape[1], fill_values, False)
        ds._store.resize_columns(n_before + other.shape[1])
        # the next band is read while this one is written (the other file is ours, read-only)
        bands_read = pools.ahead((read_band(b) for b in band_list), lambda: 0)
        for band, values in zip(band_list, bands_read, strict=True):
            _write_columns(ds, values, n_before + band.start)
            del values  # its buffers are free for the band after the one being read ahead
            tick(band.stop - band.start)
        _replace_col_attrs(ds, final, dropped)
        if include_graphs:
            n = n_before
            for name in ds.col_graphs.keys():
                if name in other.col_graphs:
                    g1, g2 = ds.col_graphs[name], other.col_graphs[name]
                    m = other.shape[1]
                    ds.col_graphs[name] = sparse.coo_matrix(
                        (
                            np.concatenate([g1.data, g2.data]),
                            (np.concatenate([g1.row, g2.row + n]), np.concatenate([g1.col, g2.col + n])),
                        ),
                        shape=(n + m, n + m),
                    )


def _copyable(ds: Connection, other: Connection, names: list[str]) -> dict[str, ChunkLayout]:
    """The layers whose stored chunks mean the same in both files, with the other file's index."""
    out = {}
    for name in names:
        layout = other._store.chunk_layout(name)
        if layout is not None and ds._store.can_copy(name, layout):
            out[name] = layout
    return out


def aligned_bands(n: int, offset: int, width: int, chunk: int) -> Iterator[slice]:
    """Slices covering ``range(n)``, about ``width`` wide, each ending where ``offset + stop`` is a
    multiple of ``chunk``: appended at column ``offset``, they fill whole chunks (written directly)."""
    width = max(chunk, width // chunk * chunk)
    lo, stop = 0, (-offset) % chunk + width
    while lo < n:
        yield slice(lo, min(n, stop))
        lo, stop = stop, stop + width


def _convert_globals(ds: Connection, other: Connection) -> dict[str, np.ndarray]:
    """Turn global attributes that differ between the files into column attributes."""
    extra: dict[str, np.ndarray] = {}
    for name in sorted(set(ds.attrs.keys()) | set(other.attrs.keys())):
        if name in (fmt.SPEC_VERSION_NAME, "CreationDate"):
            continue
        mine, theirs = ds.attrs.get(name), other.attrs.get(name)
        if mine is not None and theirs is not None and np.array_equal(np.asarray(mine), np.asarray(theirs)):
            continue
        if np.ndim(mine) > 0 or np.ndim(theirs) > 0:
            continue
        template = mine if mine is not None else theirs
        blank = "" if isinstance(template, str) else np.zeros(1, dtype=np.asarray(template).dtype)[0]
        if name not in ds.ca:
            ds.ca[name] = np.array([mine if mine is not None else blank] * ds.shape[1])
        extra[name] = np.array([theirs if theirs is not None else blank] * other.shape[1])
        if mine is not None:
            del ds.attrs[name]
    return extra
