"""loompy's deprecated method names, kept working with a ``DeprecationWarning`` (once per name)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sparse

from .._core.connection import connect, create
from .._errors import LoomValueError
from .._ops.columns import add_columns

if TYPE_CHECKING:
    from .._core.attributes import AttributeManager
    from .._core.graphs import GraphManager
    from .._core.layers import LayerManager

_warned: set[str] = set()


def deprecated(old: str, new: str) -> None:
    """Warn once per process that ``old`` is deprecated in favour of ``new``."""
    if old in _warned:
        return
    _warned.add(old)
    warnings.warn(f"'{old}' is deprecated; use {new} instead", DeprecationWarning, stacklevel=3)


def _check_axis(axis: Any) -> int:
    if axis not in (0, 1):
        msg = f"axis must be 0 (rows) or 1 (columns), not {axis!r}"
        raise LoomValueError(msg)
    return int(axis)


class LoompyAliases:
    """Old loompy method names on a connection."""

    layers: LayerManager
    ra: AttributeManager
    ca: AttributeManager
    row_graphs: GraphManager
    col_graphs: GraphManager

    def set_layer(self, name: str, matrix: Any, *args: Any, **kwargs: Any) -> None:
        deprecated("set_layer", "ds.layers[name] = matrix")
        self.layers[name] = matrix

    def set_attr(self, name: str, values: Any, axis: int = 0, dtype: Any = None) -> None:
        deprecated("set_attr", "ds.ra[name] = values or ds.ca[name] = values")
        (self.ra if _check_axis(axis) == 0 else self.ca)[name] = values

    def delete_attr(self, name: str, axis: int = 0) -> None:
        deprecated("delete_attr", "del ds.ra[name] or del ds.ca[name]")
        del (self.ra if _check_axis(axis) == 0 else self.ca)[name]

    def list_edges(self, *, axis: int) -> list[str]:
        deprecated("list_edges", "ds.row_graphs.keys() or ds.col_graphs.keys()")
        return (self.row_graphs if _check_axis(axis) == 0 else self.col_graphs).keys()

    def get_edges(self, name: str, *, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        deprecated("get_edges", "ds.row_graphs[name] or ds.col_graphs[name]")
        g = (self.row_graphs if _check_axis(axis) == 0 else self.col_graphs)[name]
        return (g.row, g.col, g.data)

    def set_edges(self, name: str, a: Any, b: Any, w: Any, *, axis: int) -> None:
        deprecated("set_edges", "ds.row_graphs[name] = g or ds.col_graphs[name] = g")
        ax = _check_axis(axis)
        n = self.shape[ax]  # type: ignore[attr-defined]
        try:
            g = sparse.coo_matrix((np.asarray(w), (np.asarray(a), np.asarray(b))), shape=(n, n))
        except (ValueError, TypeError) as e:
            msg = f"Edges of graph {name!r} do not form a ({n}, {n}) graph: {e}"
            raise LoomValueError(msg) from None
        (self.row_graphs if ax == 0 else self.col_graphs)[name] = g

    def batch_scan(
        self,
        cells: Any = None,
        genes: Any = None,
        axis: int = 0,
        batch_size: int = 1000,
        layer: str | None = None,
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        deprecated("batch_scan", "ds.scan()")
        for ix, selection, values in self._batch_scan(
            cells, genes, axis, batch_size, ["" if layer is None else layer]
        ):
            yield ix, selection, next(iter(values.values()))

    def batch_scan_layers(
        self,
        cells: Any = None,
        genes: Any = None,
        axis: int = 0,
        batch_size: int = 1000,
        layers: Any = None,
    ) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
        deprecated("batch_scan_layers", "ds.scan()")
        yield from self._batch_scan(cells, genes, axis, batch_size, layers)

    def _batch_scan(
        self, cells: Any, genes: Any, axis: int, batch_size: int, layers: Any
    ) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
        ax = _check_axis(axis)
        names = self.layers.keys() if layers is None else list(layers)
        keep = (genes, cells)
        for ix, selection, view in self.scan(  # type: ignore[attr-defined]
            items=keep[ax], axis=ax, layers=names, what=["layers"], batch_size=batch_size
        ):
            other = keep[1 - ax]
            values = {}
            for name in names:
                block = view.layers[name].values
                if other is not None:
                    block = block[other, :] if ax == 1 else block[:, other]
                values[name] = block
            yield ix, selection, values


def create_append(
    filename: str,
    layers: Any,
    row_attrs: Any,
    col_attrs: Any,
    *,
    file_attrs: Any = None,
    fill_values: Any = None,
) -> None:
    """Create the file, or append columns to it if it exists (deprecated in loompy too)."""
    deprecated("create_append", "loomfile.new() and add_columns()")
    if os.path.exists(filename):
        with connect(filename) as ds, ds._store.transaction():
            add_columns(ds, layers, col_attrs, fill_values=fill_values)
    else:
        create(filename, layers, row_attrs, col_attrs, file_attrs=file_attrs)
