"""Concatenating Loom files along the columns into a new file: combine() and combine_faster()."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _progress
from .._engine import memory as _memory
from .._errors import LoomValueError
from .._format import spec as fmt
from .._progress import Tick
from .._selection import AxisSelection
from . import columns as _ops
from .columns import aligned_bands, key_ordering
from .join import How, check_how, combine_joined

if TYPE_CHECKING:
    from .._core.connection import Connection


def combine(
    files: list[str],
    output_file: str,
    key: str | None = None,
    file_attrs: Mapping[str, Any] | None = None,
    batch_size: int = 1000,
    convert_attrs: bool = False,
    *,
    how: How = "strict",
    fill_values: Any = None,
    sample_attr: str | None = None,
    samples: Sequence[str] | None = None,
    unique_ids: bool = False,
    axis: int = 1,
    progress: bool | None = None,
) -> None:
    """Concatenate Loom files along the columns into a new file (loompy's ``combine``).

    Parameters
    ----------
    files, output_file
        The files to concatenate, in order, and the new file (which appears only once complete).
    key
        A row attribute (e.g. ``"Accession"``) to align the files' rows on; without it the rows
        are taken in order (the files must have as many).
    how
        With ``key``: ``"strict"`` (loompy's behaviour: the same key values in every file, else an
        error naming those that differ; rows in the first file's order), ``"inner"`` (the values
        every file has) or ``"outer"`` (the values any file has; zeros where a file lacks a row).
        See ``loomfile._join``.
    fill_values
        A column attribute some files lack is dropped, with a warning, unless ``fill_values``
        gives its value there (``{"name": value}``, or ``"auto"``: zeros and empty strings).
    sample_attr, samples
        Add a column attribute ``sample_attr`` naming each column's file: ``samples`` (one name
        per file), or the file names without their extension.
    unique_ids
        Prefix every CellID with its sample and ``":"`` (as the 10x importer names cells), so that
        cells of two runs of one sample stay distinct.
    axis
        1 (default): the files' columns one after another. 0: their rows one after another (the
        same cells measured for other genes: split velocyto runs, antibody counts beside RNA),
        the columns matched on the column attribute ``key`` (default ``"CellID"``) with ``how``;
        ``sample_attr`` then names each row's file, and a row attribute some files lack is kept,
        zeros or empty strings for their rows (``fill_values="auto"`` is the default).
    file_attrs, batch_size, convert_attrs
        As loompy: global attributes added to the first file's, columns copied at a time, file
        attributes that differ between files turned into column attributes (strict only).
    progress
        Show a progress bar (default: when standard error is a terminal).

    Examples
    --------
    >>> loomfile.combine(["a.loom", "b.loom"], "ab.loom", key="Accession", how="outer",
    ...                  sample_attr="SampleID", unique_ids=True)
    """
    if len(files) == 0:
        msg = "The input file list was empty"
        raise LoomValueError(msg)
    if axis not in (0, 1):
        msg = f"axis must be 0 (rows) or 1 (columns), not {axis!r}"
        raise LoomValueError(msg)
    if axis == 0:
        key = key or "CellID"
        # no loompy behaviour to keep here: a row attribute one file lacks (an antibody file has no
        # Accession) is kept, empty for that file's rows, rather than dropped for every gene
        fill_values = "auto" if fill_values is None else fill_values
        if unique_ids:
            msg = "unique_ids makes CellIDs unique across files, which axis=0 matches on; it needs axis=1"
            raise LoomValueError(msg)
    check_how(how, key)
    names = _sample_names(files, samples) if (sample_attr is not None or unique_ids) else []
    total = _total(files, axis) if _progress.wanted(progress) else 0  # (opens every file once more)
    with _progress.bar(total, "combine", progress, fmt.AXIS_NAMES[axis] + "s") as tick:
        if how == "strict" and axis == 1:
            out = _combine(files, output_file, key, file_attrs, batch_size, convert_attrs, fill_values, tick)
        else:
            assert key is not None
            out = combine_joined(files, output_file, key, how, file_attrs, fill_values, tick, axis)
        try:
            if names:
                _add_samples(out, files, names, sample_attr, unique_ids, axis)
        except BaseException:
            out._abandon()
            raise
        out.close()


def _sample_names(files: Sequence[str], samples: Sequence[str] | None) -> list[str]:
    if samples is None:
        return [os.path.splitext(os.path.basename(os.fspath(path)))[0] for path in files]
    names = [str(s) for s in samples]
    if len(names) != len(files):
        msg = f"samples has {len(names)} names for {len(files)} files"
        raise LoomValueError(msg)
    return names


def _add_samples(
    out: Connection, files: Sequence[str], names: list[str], sample_attr: str | None, unique_ids: bool, axis: int
) -> None:
    """The sample attribute (of the columns, or of the rows with axis=0), and CellIDs made unique
    with the sample as prefix."""
    from .._core.connection import connect

    widths = []
    for path in files:
        with connect(path, "r", validate=False) as ds:
            widths.append(ds.shape[axis])
    per_column = np.repeat(np.array(names, dtype=object), widths)
    if sample_attr is not None:
        attrs = (out.ra, out.ca)[axis]
        if sample_attr in attrs:
            msg = f"{fmt.AXIS_NAMES[axis].capitalize()} attribute {sample_attr!r} exists already; choose another sample_attr"
            raise LoomValueError(msg)
        attrs[sample_attr] = per_column
    if unique_ids:
        if "CellID" not in out.ca:
            msg = "unique_ids=True prefixes CellIDs, but the files have no CellID column attribute"
            raise LoomValueError(msg)
        ids = out.ca["CellID"].astype(str).astype(object)
        out.ca["CellID"] = np.array([f"{s}:{c}" for s, c in zip(per_column, ids, strict=True)], dtype=object)


def _total(files: list[str], axis: int) -> int:
    from .._core.connection import connect

    total = 0
    for path in files:
        with connect(path, "r", validate=False) as ds:
            total += ds.shape[axis]
    return total


def _combine(
    files: list[str],
    output_file: str,
    key: str | None,
    file_attrs: Mapping[str, Any] | None,
    batch_size: int,
    convert_attrs: bool,
    fill_values: Any,
    tick: Tick,
) -> Connection:
    from .._core.connection import connect, new

    with connect(files[0], "r") as first:
        out = new(output_file, file_attrs={**dict(first.attrs.items()), **dict(file_attrs or {})})
        try:
            layers = {name: first.layers[name] for name in first.layers.keys()}
            with out._store.transaction():
                _ops.add_columns(out, layers, dict(first.ca.items()), row_attrs=dict(first.ra.items()))
            for name, graph in first.col_graphs.items():
                out.col_graphs[name] = graph
            for name, graph in first.row_graphs.items():
                out.row_graphs[name] = graph
            tick(first.shape[1])
        except BaseException:
            out._abandon()
            raise
    buffers = _memory.Recycler()  # the same band buffers for every file: fresh memory costs a page
    try:  # fault per page on first touch, about as much as placing the values there
        for path in files[1:]:
            with out._store.transaction():
                _ops.add_loom(
                    out,
                    path,
                    key,
                    fill_values,
                    batch_size=batch_size,
                    convert_attrs=convert_attrs,
                    tick=tick,
                    buffers=buffers,
                )
    except BaseException:
        out._abandon()
        raise
    return out


def combine_faster(
    files: list[str],
    output_file: str,
    file_attrs: Mapping[str, Any] | None = None,
    selections: list[Any] | None = None,
    key: str | None = None,
    skip_attrs: list[str] | None = None,
    *,
    progress: bool | None = None,
) -> None:
    """Concatenate the selected columns of Loom files into a new file (loompy's ``combine_faster``).

    ``selections``: one boolean mask (or None for every column) per file. With ``key``, the rows
    of every file are sorted by that row attribute. Layers missing from a file are zeros there,
    column attributes missing from a file are zeros or empty strings; ``skip_attrs`` are left out.
    Unlike loompy, which reads each file into memory in bands of 500 MB, the layers are copied
    band by band through the chunk engine, in bands that fill whole chunks of the output.
    """
    from .._core.connection import connect, new

    if len(files) == 0:
        msg = "The input file list was empty"
        raise LoomValueError(msg)
    masks = _selections(files, selections)
    skip = set(skip_attrs or [])
    layers: dict[str, np.dtype[Any]] = {}
    n_rows, n_cols = None, 0
    row_orders: list[np.ndarray | None] = []  # with a key: each file's rows in the output's order
    sorted_keys: np.ndarray | None = None
    for path, mask in zip(files, masks, strict=True):
        with connect(path, "r") as ds:
            if key is not None:
                # Every file is aligned on the first file's key values (sorted, as loompy sorts
                # them), so that a gene missing or renamed in one file is an error naming it, not
                # rows shifted under the wrong names (loompy sorts each file on its own).
                values = ds.ra[key]
                if sorted_keys is None:
                    first_order = np.argsort(values, kind="stable").astype(np.intp)
                    sorted_keys = values[first_order]
                    key_ordering(sorted_keys, values, key, path)  # unique values
                    row_orders.append(first_order)
                else:
                    row_orders.append(key_ordering(sorted_keys, values, key, path))
            else:
                row_orders.append(None)
            if n_rows is not None and ds.shape[0] != n_rows:
                msg = f"All files must have the same number of rows: {path} has {ds.shape[0]}, the first {n_rows}"
                raise LoomValueError(msg)
            n_rows = ds.shape[0]
            if mask is not None and mask.shape != (ds.shape[1],):
                msg = f"the selection for {path} has shape {mask.shape}; the file has {ds.shape[1]} columns"
                raise LoomValueError(msg)
            n_cols += ds.shape[1] if mask is None else int(np.count_nonzero(mask))
            for name in ds.layers.keys():
                dtype = np.dtype(ds.layers[name].dtype)
                if layers.setdefault(name, dtype) != dtype:
                    msg = f"Layer {name!r} is {dtype} in {path} but {layers[name]} in earlier files"
                    raise LoomValueError(msg)
    assert n_rows is not None
    with _progress.bar(n_cols, "combine", progress, "columns") as tick:
        out = new(output_file, file_attrs=file_attrs)
        try:
            store = out._store
            for name in sorted(layers, key=lambda k: k != ""):
                store.create_layer(name, (n_rows, n_cols), layers[name])
            col_attrs: dict[str, list[tuple[int, np.ndarray]]] = {}
            at = 0
            for path, mask, order in zip(files, masks, row_orders, strict=True):
                with connect(path, "r") as ds:
                    rows = AxisSelection.full(n_rows) if order is None else AxisSelection(n_rows, order)
                    picked = np.arange(ds.shape[1]) if mask is None else np.flatnonzero(mask)
                    _copy_layers(ds, out, rows, picked, at, tick)
                    for name, values in ds.ca.items():
                        if name not in skip:
                            col_attrs.setdefault(name, []).append((at, values[picked]))
                    if len(out.ra.keys()) == 0:
                        for name, values in ds.ra.items():
                            out.ra[name] = values[rows.indices]
                    at += picked.size
            for name, parts in col_attrs.items():
                out.ca[name] = _filled(parts, n_cols)
        except BaseException:
            out._abandon()
            raise
        out.close()


def _copy_layers(
    ds: Connection, out: Connection, rows: AxisSelection, picked: np.ndarray, at: int, tick: Tick
) -> None:
    """Every layer of ``ds`` (its ``rows`` in order, its ``picked`` columns) into ``out`` from column
    ``at`` on, in bands that fill whole chunks of the output."""
    store, n_rows, n_cols = out._store, out.shape[0], out.shape[1]
    every_row = AxisSelection.full(n_rows)
    chunk = (store.layer_info("").chunks or (1, 1))[1]
    for band in aligned_bands(picked.size, at, 1024, chunk):
        cols = AxisSelection(ds.shape[1], picked[band])
        dst = AxisSelection.from_key(slice(at + band.start, at + band.stop), n_cols, 1)
        for name in ds.layers.keys():
            store.write_layer(name, every_row, dst, ds._store.read_layer(name, rows, cols))
        tick(band.stop - band.start)


def _selections(files: list[str], selections: list[Any] | None) -> list[np.ndarray | None]:
    if selections is None:
        return [None] * len(files)
    if len(selections) != len(files):
        msg = f"selections has {len(selections)} entries for {len(files)} files"
        raise LoomValueError(msg)
    masks: list[np.ndarray | None] = []
    for path, s in zip(files, selections, strict=True):
        if s is not None:
            s = np.asarray(s)
            if s.dtype != bool:
                msg = f"the selection for {path} must be a boolean mask, not {s.dtype}"
                raise LoomValueError(msg)
        masks.append(s)
    return masks


def _filled(parts: list[tuple[int, np.ndarray]], n: int) -> np.ndarray:
    """One column attribute from the (offset, values) of the files that have it: zeros, or empty
    strings, where a file lacks it."""
    values = np.concatenate([v for _, v in parts])
    out = np.zeros((n, *values.shape[1:]), dtype=values.dtype)
    for offset, v in parts:
        out[offset : offset + v.shape[0]] = v
    return out
