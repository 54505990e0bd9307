"""combine(..., how="inner" | "outer"): the columns of several files, their rows joined on a key.

``strict`` (loompy's combine, :mod:`loomfile._combine`) needs the same key values in every file.
Files from different annotations or pipelines rarely have them: one gene renamed or missing and
loompy refuses (or, in combine_faster, misaligns). Here the rows of the output are

- ``inner``: the key values every file has, in the first file's order;
- ``outer``: every key value of any file: the first file's in its order, then each later file's
  new ones in that file's order; a file's missing rows are zeros in every layer.

Row attributes come from the first file holding each row (an attribute some file lacks is filled
with zeros or empty strings for the rows only that file holds). Column attributes are concatenated
as in ``combine`` (dropped, with a warning, where a file lacks them, unless ``fill_values``).
Layers are read a band of columns at a time and written into the output's rows, so memory stays
at one band of the output's height.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._errors import LoomValueError
from ._ops import BAND_BYTES, aligned_bands, key_ordering
from ._progress import Tick
from ._selection import AxisSelection
from ._warn import warn

if TYPE_CHECKING:
    from .connection import LoomConnection

How = Literal["strict", "inner", "outer"]
HOWS = ("strict", "inner", "outer")


def joined_keys(keys: Sequence[np.ndarray], how: How, key: str, files: Sequence[str]) -> list[Any]:
    """The output's key values, in order (see the module docstring); unique keys in every file."""
    for values, path in zip(keys, files, strict=True):
        key_ordering(values, values, key, path)  # (an error naming repeated values)
    if how == "inner":
        shared = set(keys[0].tolist())
        for values in keys[1:]:
            shared &= set(values.tolist())
        result = [v for v in keys[0].tolist() if v in shared]
        if not result:
            msg = f"The files share no value of row attribute {key!r}: an inner join would have no rows"
            raise LoomValueError(msg)
        return result
    seen: set[Any] = set()
    result = []
    for values in keys:
        for v in values.tolist():
            if v not in seen:
                seen.add(v)
                result.append(v)
    return result


def combine_joined(
    files: Sequence[str],
    output_file: str,
    key: str,
    how: How,
    file_attrs: Mapping[str, Any] | None,
    fill_values: Any,
    tick: Tick,
) -> LoomConnection:
    """Write the joined file (see the module docstring) and return it open, for the caller to add
    sample columns and close."""
    from .connection import connect, new

    with contextlib.ExitStack() as stack:
        sources = [stack.enter_context(connect(path, "r")) for path in files]
        for ds, path in zip(sources, files, strict=True):
            if key not in ds.ra:
                msg = f"{path} has no row attribute {key!r} to join on (it has {ds.ra.keys()})"
                raise LoomValueError(msg)
        keys = [ds.ra[key] for ds in sources]
        order = joined_keys(keys, how, key, files)
        where = {v: i for i, v in enumerate(order)}
        # for each file: its rows kept, and their rows in the output
        placements = []
        for values in keys:
            out_rows = np.fromiter((where.get(v, -1) for v in values.tolist()), dtype=np.intp, count=values.size)
            kept = np.flatnonzero(out_rows >= 0)
            placements.append((kept, out_rows[kept]))
        layers = _layer_dtypes(sources, files)
        n_rows, n_cols = len(order), sum(ds.shape[1] for ds in sources)
        out = new(output_file, file_attrs={**dict(sources[0].attrs.items()), **dict(file_attrs or {})})
        try:
            for name in sorted(layers, key=lambda k: k != ""):
                out._store.create_layer(name, (n_rows, n_cols), layers[name])
            at = 0
            for ds, (kept, rows) in zip(sources, placements, strict=True):
                _place_columns(ds, out, kept, rows, at, layers, tick)
                at += ds.shape[1]
            for name, values in _row_attrs(sources, placements, n_rows).items():
                out.ra[name] = values
            for name, values in _col_attrs(sources, fill_values).items():
                out.ca[name] = values
        except BaseException:
            out._abandon()
            raise
        return out


def _layer_dtypes(sources: Sequence[LoomConnection], files: Sequence[str]) -> dict[str, np.dtype[Any]]:
    """Each layer's dtype in the output: the common type of the files' (all must have the layer)."""
    names = sources[0].layers.keys()
    for ds, path in zip(sources, files, strict=True):
        if sorted(ds.layers.keys()) != sorted(names):
            msg = f"{path} has layers {sorted(ds.layers.keys())}, the first file {sorted(names)}; combine needs the same"
            raise LoomValueError(msg)
    return {name: np.result_type(*(np.dtype(ds.layers[name].dtype) for ds in sources)) for name in names}


def _place_columns(
    ds: LoomConnection,
    out: LoomConnection,
    kept: np.ndarray,
    rows: np.ndarray,
    at: int,
    layers: Mapping[str, np.dtype[Any]],
    tick: Tick,
) -> None:
    """The file's ``kept`` rows into the output's ``rows``, from column ``at`` on, a band at a time:
    each band is the output's full height (zeros where the file has no row), written as one block."""
    n_rows, n_cols = out.shape
    chunk = (out._store.layer("").chunks or (1, 1))[1]
    width = max(chunk, BAND_BYTES // max(1, n_rows * sum(d.itemsize for d in layers.values())) // chunk * chunk)
    source_rows = AxisSelection(ds.shape[0], kept)
    every_row = AxisSelection.full(n_rows)
    for band in aligned_bands(ds.shape[1], at, width, chunk):
        cols = AxisSelection.from_key(band, ds.shape[1], 1)
        dst = AxisSelection.from_key(slice(at + band.start, at + band.stop), n_cols, 1)
        for name, dtype in layers.items():
            block = np.zeros((n_rows, band.stop - band.start), dtype=dtype)
            block[rows] = ds._store.read_layer(name, source_rows, cols)
            out._store.write_layer(name, every_row, dst, block)
        tick(band.stop - band.start)


def _row_attrs(
    sources: Sequence[LoomConnection], placements: Sequence[tuple[np.ndarray, np.ndarray]], n_rows: int
) -> dict[str, np.ndarray]:
    """Every row attribute of any file, each row's value from the first file holding that row;
    zeros or empty strings where no file holding the row has the attribute. An attribute whose
    shape beyond the rows differs between files is dropped, with a warning."""
    names: list[str] = []
    for ds in sources:
        names += [n for n in ds.ra.keys() if n not in names]
    result: dict[str, np.ndarray] = {}
    dropped = []
    for name in names:
        parts = [(ds.ra[name], kept, rows) for ds, (kept, rows) in zip(sources, placements, strict=True) if name in ds.ra]
        trailing = {values.shape[1:] for values, _, _ in parts}
        if len(trailing) > 1:
            dropped.append(name)
            continue
        dtype = np.result_type(*(values.dtype for values, _, _ in parts))
        filled = np.full((n_rows, *trailing.pop()), "" if dtype.kind == "O" else 0, dtype=dtype)
        done = np.zeros(n_rows, dtype=bool)
        for values, kept, rows in parts:
            new = ~done[rows]
            filled[rows[new]] = values[kept[new]]
            done[rows] = True
        result[name] = filled
    if dropped:
        warn(f"row attributes of different shapes in different files were dropped: {dropped}")
    return result


def _col_attrs(sources: Sequence[LoomConnection], fill_values: Any) -> dict[str, np.ndarray]:
    """The column attributes concatenated, as ``combine`` does: one a file lacks is dropped with a
    warning, or filled with ``fill_values`` (``"auto"``: zeros, empty strings)."""
    names: list[str] = []
    for ds in sources:
        names += [n for n in ds.ca.keys() if n not in names]
    result: dict[str, np.ndarray] = {}
    dropped = []
    for name in names:
        having = [ds.ca[name] for ds in sources if name in ds.ca]
        if len(having) < len(sources) and fill_values is None:
            dropped.append(name)
            continue
        like = having[0]
        parts = []
        for ds in sources:
            if name in ds.ca:
                parts.append(ds.ca[name])
                continue
            value = ("" if like.dtype.kind == "O" else 0) if fill_values == "auto" else fill_values[name]
            parts.append(np.full((ds.shape[1], *like.shape[1:]), value, dtype=like.dtype))
        if len({p.shape[1:] for p in parts}) > 1:
            dropped.append(name)
            continue
        result[name] = np.concatenate(parts)
    if dropped:
        warn(
            f"column attributes not present in every file were dropped: {dropped} "
            "(pass fill_values to keep them, e.g. fill_values='auto' for zeros and empty strings)"
        )
    return result


def check_how(how: str, key: str | None) -> None:
    if how not in HOWS:
        msg = f"how must be one of {HOWS}, not {how!r}"
        raise LoomValueError(msg)
    if how != "strict" and key is None:
        msg = f"how={how!r} joins the files' rows on a key: pass key= (e.g. key='Accession')"
        raise LoomValueError(msg)

