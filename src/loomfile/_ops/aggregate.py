"""aggregate(): collapse columns into groups (clusters), loompy's semantics without numpy_groupies.

The matrix is read in bands of rows, each band reduced over the columns of every group at once:
the columns are put in group order and reduced with numpy's ``reduceat`` (or, for functions with no
such form, group by group): see the registry of reductions, ``_engine.reduce.REDUCTIONS``. Empty
groups cannot occur (groups come from the labels present).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._engine import reduce as _reduce
from .._errors import LoomValueError
from .._warn import warn_caller

if TYPE_CHECKING:
    from .._core.connection import Connection

CA_FUNCS = ("first", "mean", "mode", "tally")


class Groups:
    """Integer labels turned into groups 0..n-1 (in sorted label order, as ``np.unique``)."""

    def __init__(self, labels: np.ndarray) -> None:
        _, self.index = np.unique(labels, return_inverse=True)
        self.index = self.index.ravel()
        self.n = int(self.index.max()) + 1 if self.index.size else 0
        self.order = np.argsort(self.index, kind="stable")
        self.counts = np.bincount(self.index, minlength=self.n)
        self.starts = np.concatenate(([0], np.cumsum(self.counts)[:-1]))

    def reduce(self, values: np.ndarray, func: str | Callable[..., Any]) -> np.ndarray:
        """``values`` (rows x columns) reduced over each group's columns: (rows x groups), float64."""
        return np.ascontiguousarray(self._reduce_columns(np.asarray(values), func).T)

    def _reduce_columns(self, values: np.ndarray, func: str | Callable[..., Any]) -> np.ndarray:
        """(groups x rows): the columns, gathered group by group into consecutive rows of a
        (columns x rows) array, so that every reduction runs down whole contiguous rows (in the
        same order of additions as along the columns)."""
        v = np.take(values.T, self.order, axis=0).astype(np.float64, copy=False)
        grouped = _reduce.GroupedValues(v, self.starts, self.counts)
        if callable(func):
            return np.stack([np.apply_along_axis(func, 1, part.T) for part in grouped.parts()])
        reduction = _reduce.named(func)
        if reduction is None or reduction.grouped is None:
            msg = f"aggr_by must be one of {', '.join(_reduce.grouped_names())} or a function, not {func!r}"
            raise LoomValueError(msg)
        return reduction.grouped(grouped)

    def first(self, values: np.ndarray) -> np.ndarray:
        return values[self.order[self.starts]]


def _tally_name(key: str, value: Any) -> str:
    text = str(value)
    if isinstance(value, str):
        text = value.replace("/", "-").replace(".", "_")  # not allowed in attribute names
    return f"{key}_{text}"


def column_attributes(
    ds: Connection, groups: Groups, aggr_ca_by: Mapping[str, str] | None, if_equal: bool
) -> dict[str, np.ndarray]:
    """The aggregated file's column attributes, as loompy makes them."""
    ca: dict[str, np.ndarray] = {}
    if if_equal:
        for key in ds.ca.keys():
            values = ds.ca[key]
            if (aggr_ca_by is not None and key in aggr_ca_by) or values.ndim != 1:
                continue
            distinct = [np.unique(values[groups.index == g]).size for g in range(groups.n)]
            if all(d == 1 for d in distinct):
                ca[key] = groups.first(values)
    for key, func in (aggr_ca_by or {}).items():
        if key not in ds.ca.keys():
            warn_caller(f"aggr_ca_by names {key!r}, which is not a column attribute")
            continue
        values = ds.ca[key]
        if func == "tally":
            for value in sorted(set(values.tolist()), key=str):
                hits = (values == value).astype(int)
                ca[_tally_name(key, value)] = np.bincount(
                    groups.index, weights=hits, minlength=groups.n
                ).astype(int)
        elif func == "mode":
            modes = []
            for g in range(groups.n):
                uniq, counts = np.unique(values[groups.index == g], return_counts=True)
                modes.append(uniq[np.argmax(counts)])
            ca[key] = np.array(modes).astype(str)
        elif func == "mean":
            ca[key] = (
                np.bincount(groups.index, weights=values.astype(float), minlength=groups.n) / groups.counts
            )
        elif func == "first":
            ca[key] = groups.first(values)
    return ca


def aggregate(
    ds: Connection,
    out_file: str | None,
    select: Any,
    group_by: str | np.ndarray,
    aggr_by: str | Callable[..., Any],
    aggr_ca_by: Mapping[str, str] | None,
    layer: str,
    aggr_ca_if_equal: bool,
) -> np.ndarray:
    """See Connection.aggregate."""
    from .._core.connection import create
    from .._selection import AxisSelection

    if select is not None:
        msg = "The 'select' argument is deprecated (as in loompy): make a view or a new file first"
        raise LoomValueError(msg)
    labels = np.asarray(group_by) if isinstance(group_by, np.ndarray) else ds.ca[group_by].astype(int)
    if labels.ndim != 1 or labels.shape[0] != ds.shape[1]:
        msg = f"group_by must give one label per column ({ds.shape[1]}), not an array of shape {labels.shape}"
        raise LoomValueError(msg)
    if not callable(aggr_by) and aggr_by not in _reduce.grouped_names():
        msg = f"aggr_by must be one of {', '.join(_reduce.grouped_names())} or a function, not {aggr_by!r}"
        raise LoomValueError(msg)
    unknown = {k: f for k, f in (aggr_ca_by or {}).items() if f not in CA_FUNCS}
    if unknown:
        msg = f"aggr_ca_by functions must be one of {', '.join(CA_FUNCS)}; got {unknown}"
        raise LoomValueError(msg)
    groups = Groups(labels)
    ca = column_attributes(ds, groups, aggr_ca_by, aggr_ca_if_equal)
    m = np.empty((ds.shape[0], groups.n))
    for band, values in ds.layers[layer]._bands(0, AxisSelection.full(ds.shape[1])):
        m[band] = groups.reduce(values, aggr_by)
    if out_file is not None:
        create(out_file, m, {k: ds.ra[k] for k in ds.ra.keys()}, ca)
    return m
