"""``scan``: a file visited in bands of rows or columns, each band a view, the next read ahead."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _progress
from .._core.view import View, make_view
from .._engine import memory as _memory
from .._engine import pools
from .._errors import LoomValueError, SelectionError
from .._format import spec as fmt
from .._selection import AxisSelection
from .._store.changes import META, layer_key

if TYPE_CHECKING:
    from .._core.connection import Connection

SCAN_WHAT = ("col_attrs", "row_attrs", "layers", "col_graphs", "row_graphs")


def scan(
    ds: Connection,
    *,
    items: Any = None,
    axis: int | None = None,
    layers: Iterable[str] | str | None = None,
    key: str | None = None,
    batch_size: int = 8 * 64,
    what: Sequence[str] = SCAN_WHAT,
    progress: bool | None = None,
) -> Iterator[tuple[int, np.ndarray, View]]:
    """``ds.scan(...)``: ``(ix, selection, view)`` for each band (see ``Connection.scan``)."""
    ax = check_scan_args(axis, what)
    names = ds.layers.keys() if layers is None else ([""] if layers == "" else list(layers))
    positions = scan_items(items, ds.shape[ax], ax)
    other = other_ordering(ds, ax, key)

    store = ds._store
    depends = {META, *(layer_key(n) for n in names)}
    fixed = FixedSide(ds, ax, other, what)
    buffers = _memory.Recycler()  # the bands of views the caller has dropped hold the next ones

    def band(ix: int, selection: np.ndarray) -> pools.Job[tuple[int, np.ndarray, View]]:
        along = AxisSelection(ds.shape[ax], selection)
        rows, cols = (along, other) if ax == 0 else (other, along)
        boxes = (rows.bounds(), cols.bounds())
        return (
            lambda: (
                ix,
                selection,
                make_view(ds, rows, cols, layers=names, what=what, buffers=buffers, **fixed.views()),
            ),
            lambda since: store.changes.changed_since(since, depends, *boxes),
        )

    # The next band is read while the caller works on this one: at most two bands in memory.
    bands = scan_bands(positions, ds.shape[ax], batch_size)
    views = pools.ahead((band(ix, sel) for ix, sel in bands), lambda: store.changes.generation)
    with _progress.bar(positions.size, "scan", progress, "rows" if ax == 0 else "columns") as tick:
        for ix, selection, view in views:
            yield ix, selection, view
            tick(selection.size)


def scan_items(items: Any, n: int, axis: int) -> np.ndarray:
    """The positions a scan visits: all, from an int onwards, a mask, or a list (order kept)."""
    if items is None:
        return np.arange(n, dtype=np.intp)
    if isinstance(items, int | np.integer) and not isinstance(items, bool):
        return np.arange(int(items), n, dtype=np.intp)
    return AxisSelection.from_key(np.asarray(items), n, axis).indices


def scan_bands(items: np.ndarray, n: int, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """loompy's scan bands: (ix, positions in [ix, ix + batch_size) selected, in the items' order).

    A band whose every position is selected comes back whole and in order, as in loompy.
    """
    if batch_size < 1:
        msg = f"batch_size must be at least 1, not {batch_size}"
        raise LoomValueError(msg)
    for ix in range(0, n, batch_size):
        width = min(n - ix, batch_size)
        local = items - ix
        local = local[(local >= 0) & (local < width)]
        if local.size == 0:
            continue
        if local.size == width:
            local = np.arange(width, dtype=np.intp)
        yield ix, ix + local


class FixedSide:
    """What a scan reads for every band besides the layers, read once per scan: the attributes and
    graphs of the axis it does not move along (already restricted to that axis's selection), and
    the graphs of the axis it moves along (whole, to be cut per band). Read again only if
    attributes or graphs change during the scan."""

    def __init__(self, ds: Connection, axis: int, other: AxisSelection, what: Sequence[str]) -> None:
        self._ds, self._other = ds, other
        fixed = ("col_attrs", "col_graphs") if axis == 0 else ("row_attrs", "row_graphs")
        moving = "row_graphs" if axis == 0 else "col_graphs"
        self._fixed = [k for k in fixed if k in what]
        self._moving = [moving] if moving in what else []
        self._n = ds.shape[axis]
        self._lock = threading.Lock()
        self._made: tuple[int, dict[str, Any], dict[str, Any]] | None = None

    def get(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(managers restricted to the fixed selection, whole managers of the moving axis)."""
        changes = self._ds._store.changes
        with self._lock:
            if self._made is None or changes.changed_since(self._made[0], (META,)):
                generation = changes.generation
                sources = {
                    "col_attrs": self._ds.ca,
                    "row_attrs": self._ds.ra,
                    "col_graphs": self._ds.col_graphs,
                    "row_graphs": self._ds.row_graphs,
                }
                ready = {k: sources[k]._select(self._other) for k in self._fixed}
                whole = {k: sources[k]._select(AxisSelection.full(self._n)) for k in self._moving}
                self._made = (generation, ready, whole)
            return self._made[1], self._made[2]

    def views(self) -> dict[str, dict[str, Any]]:
        """make_view's ``ready`` and ``whole`` arguments."""
        ready, whole = self.get()
        return {"ready": ready, "whole": whole}


def check_scan_args(axis: Any, what: Any) -> int:
    if axis not in (0, 1):
        msg = "scan needs axis=0 (rows) or axis=1 (columns)"
        raise LoomValueError(msg)
    if "layers" not in what:
        msg = "'layers' must be included in 'what' (select layers with the 'layers' argument)"
        raise LoomValueError(msg)
    return int(axis)


def other_ordering(ds: Any, axis: int, key: str | None) -> AxisSelection:
    """The order of the other axis in scan views: as stored, or sorted by the attribute ``key``."""
    other = 1 - axis
    n = ds.shape[other]
    if key is None:
        return AxisSelection.full(n)
    attrs = ds.ra if other == 0 else ds.ca
    if key not in attrs:
        msg = f"scan key {key!r} is not a {fmt.AXIS_NAMES[other]} attribute"
        raise SelectionError(msg)
    return AxisSelection(n, np.argsort(attrs[key], kind="stable").astype(np.intp))
