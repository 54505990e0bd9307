"""combine(..., how="inner" | "outer"): the columns of several files, their rows joined on a key.

``strict`` (loompy's combine, :mod:`loomfile._combine`) needs the same key values in every file.
Files from different annotations or pipelines rarely have them: one gene renamed or missing and
loompy refuses (or, in combine_faster, misaligns). Here the rows of the output are

- ``inner``: the key values every file has, in the first file's order;
- ``outer``: every key value of any file: the first file's in its order, then each later file's
  new ones in that file's order; a file's missing rows are zeros in every layer.

Row attributes come from the first file holding each row (an attribute some file lacks is filled
with zeros or empty strings for the rows only that file holds). Column attributes are concatenated
as in ``combine`` (dropped, with a warning, where a file lacks them, unless ``fill_values``). A
layer some file lacks is zeros for that file's part, with a warning. Layers are read a band of
columns at a time and written into the output's rows, so memory stays at one band of the output's
height. Graphs are not combined (a warning says so).

``axis=0`` is the same with the axes swapped: the files' rows one after another (the same cells
measured for other genes: split velocyto runs, antibody counts beside RNA), their columns joined
on a column attribute (``CellID``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._engine.stored import StoredColumns
from .._errors import LoomValueError
from .._format import spec as fmt
from .._progress import Tick
from .._selection import AxisSelection
from .._warn import warn_caller
from .columns import BAND_BYTES, _copyable, aligned_bands, key_ordering

if TYPE_CHECKING:
    from .._core.connection import Connection

How = Literal["strict", "inner", "outer"]
HOWS = ("strict", "inner", "outer")


def joined_keys(
    keys: Sequence[np.ndarray], how: How, key: str, files: Sequence[str], word: str = "row"
) -> list[Any]:
    """The output's key values, in order (see the module docstring); unique keys in every file.
    ``strict``: the same values in every file (an error naming those that differ), the first's order."""
    for values, path in zip(keys, files, strict=True):
        key_ordering(values, values, key, path, word)  # (an error naming repeated values)
    if how == "strict":
        for values, path in zip(keys[1:], files[1:], strict=True):
            key_ordering(keys[0], values, key, path, word)
        return list(keys[0].tolist())
    if how == "inner":
        shared = set(keys[0].tolist())
        for values in keys[1:]:
            shared &= set(values.tolist())
        result = [v for v in keys[0].tolist() if v in shared]
        if not result:
            msg = f"The files share no value of {word} attribute {key!r}: an inner join would be empty"
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
    axis: int = 1,
) -> Connection:
    """Write the joined file (see the module docstring) and return it open, for the caller to add
    sample columns and close. ``axis=1`` concatenates the files' columns and joins their rows on
    the row attribute ``key``; ``axis=0`` concatenates their rows (the same cells measured for
    other genes) and joins their columns on the column attribute ``key``."""
    from .._core.connection import connect, new

    joined = 1 - axis  # the axis whose items are matched by key
    word = fmt.AXIS_NAMES[joined]
    with contextlib.ExitStack() as stack:
        sources = [stack.enter_context(connect(path, "r")) for path in files]
        managers = [(ds.ra, ds.ca)[joined] for ds in sources]
        for attrs, path in zip(managers, files, strict=True):
            if key not in attrs:
                msg = f"{path} has no {word} attribute {key!r} to join on (it has {attrs.keys()})"
                raise LoomValueError(msg)
        keys = [attrs[key] for attrs in managers]
        order = joined_keys(keys, how, key, files, word)
        where = {v: i for i, v in enumerate(order)}
        # for each file: its items kept on the joined axis, and their places in the output
        placements = []
        for values in keys:
            places = np.fromiter((where.get(v, -1) for v in values.tolist()), dtype=np.intp, count=values.size)
            kept = np.flatnonzero(places >= 0)
            placements.append((kept, places[kept]))
        layers = _layer_dtypes(sources, files)
        shape = [0, 0]
        shape[joined], shape[axis] = len(order), sum(ds.shape[axis] for ds in sources)
        if any(len(g.keys()) for ds in sources for g in (ds.row_graphs, ds.col_graphs)):
            warn_caller("graphs are not combined by a join; the output has none (combine them from the inputs if needed)")
        out = new(output_file, file_attrs={**dict(sources[0].attrs.items()), **dict(file_attrs or {})})
        try:
            for name in sorted(layers, key=lambda k: k != ""):
                out._store.create_layer(name, (shape[0], shape[1]), layers[name])
            at = 0
            for ds, (kept, places) in zip(sources, placements, strict=True):
                _place(ds, out, kept, places, at, axis, layers, tick)
                at += ds.shape[axis]
            out_joined, out_concatenated = ((out.ra, out.ca)[joined], (out.ra, out.ca)[axis])
            for name, values in _joined_attrs(managers, placements, len(order), word).items():
                out_joined[name] = values
            concatenated = [(ds.ra, ds.ca)[axis] for ds in sources]
            sizes = [ds.shape[axis] for ds in sources]
            for name, values in _concatenated_attrs(concatenated, sizes, fill_values, fmt.AXIS_NAMES[axis]).items():
                out_concatenated[name] = values
        except BaseException:
            out._abandon()
            raise
        return out


def _every_name(managers: Sequence[Any]) -> list[str]:
    """The names in any of the managers (layers, attributes), in the order they first appear."""
    names: list[str] = []
    for manager in managers:
        names += [n for n in manager.keys() if n not in names]
    return names


def _layer_dtypes(sources: Sequence[Connection], files: Sequence[str]) -> dict[str, np.dtype[Any]]:
    """Every layer of any file, with the common type of the files' that have it. A file without a
    layer contributes zeros to it, with a warning naming both."""
    names = _every_name([ds.layers for ds in sources])
    for ds, path in zip(sources, files, strict=True):
        missing = [n for n in names if n not in ds.layers]
        if missing:
            warn_caller(f"{path} has no layers {missing}: they are zeros for its part of the output")
    return {
        name: np.result_type(*(np.dtype(ds.layers[name].dtype) for ds in sources if name in ds.layers))
        for name in names
    }


def _place(
    ds: Connection,
    out: Connection,
    kept: np.ndarray,
    places: np.ndarray,
    at: int,
    axis: int,
    layers: Mapping[str, np.dtype[Any]],
    tick: Tick,
) -> None:
    """The file's ``kept`` items of the joined axis into the output's ``places``, its items of
    ``axis`` from ``at`` on, a band at a time: each band spans the output's whole joined axis (zeros
    where the file has no item), written as one block."""
    joined = 1 - axis
    n_joined = out.shape[joined]
    chunk = (out._store.layer_info("").chunks or (1, 1))[axis]
    width = max(chunk, BAND_BYTES // max(1, n_joined * sum(d.itemsize for d in layers.values())) // chunk * chunk)
    source_kept = AxisSelection(ds.shape[joined], kept)
    everything = AxisSelection.full(n_joined)
    # A file whose rows are the output's, in order (the first file of a join, usually), appended on
    # the chunk grid: its whole chunk columns are copied as stored, as combine does
    identity = axis == 1 and places.size == n_joined == ds.shape[0] and bool(np.all(places == np.arange(n_joined)))
    copyable = _copyable(out, ds, [n for n in layers if n in ds.layers]) if identity and at % chunk == 0 else {}
    for band in aligned_bands(ds.shape[axis], at, width, chunk):
        part = AxisSelection.from_key(band, ds.shape[axis], axis)
        dst = AxisSelection.from_key(slice(at + band.start, at + band.stop), out.shape[axis], axis)
        whole = band.stop % chunk == 0  # (at is on the grid: so is band.start)
        for name, dtype in layers.items():
            if name not in ds.layers:
                continue  # (the layer was created as zeros)
            if whole and name in copyable:
                out._store.copy_columns(name, StoredColumns(copyable[name], band.start, band.stop), at + band.start)
            elif axis == 1:
                block = np.zeros((n_joined, band.stop - band.start), dtype=dtype)
                block[places] = ds._store.read_layer(name, source_kept, part)
                out._store.write_layer(name, everything, dst, block)
            else:
                block = np.zeros((band.stop - band.start, n_joined), dtype=dtype)
                block[:, places] = ds._store.read_layer(name, part, source_kept)
                out._store.write_layer(name, dst, everything, block)
        tick(band.stop - band.start)


def _joined_attrs(
    managers: Sequence[Any], placements: Sequence[tuple[np.ndarray, np.ndarray]], n: int, word: str
) -> dict[str, np.ndarray]:
    """Every attribute of the joined axis in any file, each item's value from the first file
    holding that item; zeros or empty strings where no file holding it has the attribute. One whose
    shape beyond the items differs between files is dropped, with a warning."""
    names = _every_name(managers)
    result: dict[str, np.ndarray] = {}
    dropped = []
    for name in names:
        parts = [(attrs[name], kept, places) for attrs, (kept, places) in zip(managers, placements, strict=True)
                 if name in attrs]
        trailing = {values.shape[1:] for values, _, _ in parts}
        if len(trailing) > 1:
            dropped.append(name)
            continue
        dtype = np.result_type(*(values.dtype for values, _, _ in parts))
        filled = np.full((n, *trailing.pop()), "" if dtype.kind == "O" else 0, dtype=dtype)
        done = np.zeros(n, dtype=bool)
        for values, kept, places in parts:
            new = ~done[places]
            filled[places[new]] = values[kept[new]]
            done[places] = True
        result[name] = filled
    if dropped:
        warn_caller(f"{word} attributes of different shapes in different files were dropped: {dropped}")
    return result


def _concatenated_attrs(
    managers: Sequence[Any], sizes: Sequence[int], fill_values: Any, word: str
) -> dict[str, np.ndarray]:
    """The attributes of the concatenated axis, file after file, as ``combine`` does: one a file
    lacks is dropped with a warning, or filled with ``fill_values`` (``"auto"``: zeros, empty strings)."""
    names = _every_name(managers)
    result: dict[str, np.ndarray] = {}
    dropped = []
    for name in names:
        having = [attrs[name] for attrs in managers if name in attrs]
        if len(having) < len(managers) and fill_values is None:
            dropped.append(name)
            continue
        like = having[0]
        parts = []
        for attrs, size in zip(managers, sizes, strict=True):
            if name in attrs:
                parts.append(attrs[name])
                continue
            value = ("" if like.dtype.kind == "O" else 0) if fill_values == "auto" else fill_values[name]
            parts.append(np.full((size, *like.shape[1:]), value, dtype=like.dtype))
        if len({p.shape[1:] for p in parts}) > 1:
            dropped.append(name)
            continue
        result[name] = np.concatenate(parts)
    if dropped:
        warn_caller(
            f"{word} attributes not present in every file were dropped: {dropped} "
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

