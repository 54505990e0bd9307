"""Row/column graphs (``ds.row_graphs``, ``ds.col_graphs``) as ``scipy.sparse.coo_matrix``.

The manager checks what is written (``to_coo``) and cuts graphs for views; the graphs live in a
backend (``backends.py``): the file, whose a/b/w vectors it reads and checks, or a dict in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sparse

from .._errors import LoomKeyError, LoomValueError
from .._format import spec as fmt
from .._selection import AxisSelection, normalize_axis_key
from .._store.store import store_of
from .backends import GRAPHS, BackedMapping, Backend, backend_over

_AXIS_WORD = ("Row", "Column")


def to_coo(value: Any, n: int, what: str) -> sparse.coo_matrix:
    """Check an adjacency matrix (any scipy format or dense) for a graph on ``n`` vertices."""
    if sparse.issparse(value):
        g = sparse.coo_matrix(value)
    else:
        dense = fmt.dense_array(value, what)
        if dense.ndim != 2:
            msg = f"{what} must be a 2-D adjacency matrix, got shape {dense.shape}"
            raise LoomValueError(msg)
        if dense.dtype.kind not in "iufb":
            msg = f"{what} has edge weights of dtype {dense.dtype}; weights must be numbers"
            raise LoomValueError(msg)
        g = sparse.coo_matrix(dense)
    if g.shape != (n, n):
        msg = f"{what} must be a ({n}, {n}) adjacency matrix, got shape {g.shape}"
        raise LoomValueError(msg)
    if g.dtype.kind not in "iufb":
        msg = f"{what} has edge weights of dtype {g.dtype}; weights must be numbers"
        raise LoomValueError(msg)
    w = g.data if g.dtype.kind == "f" else g.data.astype(np.float64)
    if w.size and not np.isfinite(w).all():
        msg = f"{what} has NaN or infinite edge weights"
        raise LoomValueError(msg)
    return sparse.coo_matrix((w, (g.row, g.col)), shape=(n, n))


class RowIndex:
    """A graph's edges sorted by their first vertex (stably): the edges inside a run of vertices
    are found by bisection, not by a pass over every edge (a scan cuts the graph once per band)."""

    def __init__(self, g: sparse.coo_matrix) -> None:
        self.graph = g
        self.order = np.argsort(g.row, kind="stable")
        self.rows = g.row[self.order]

    def run(self, lo: int, hi: int) -> sparse.coo_matrix:
        """The graph on vertices lo..hi-1 (renumbered from 0), edges in their original order: what
        ``subgraph(graph, np.arange(lo, hi))`` gives."""
        g = self.graph
        i0, i1 = np.searchsorted(self.rows, [lo, hi]).tolist()
        edges = self.order[i0:i1]
        cols = g.col[edges]
        edges = np.sort(edges[(cols >= lo) & (cols < hi)])
        return sparse.coo_matrix((g.data[edges], (g.row[edges] - lo, g.col[edges] - lo)), shape=(hi - lo, hi - lo))


def run_of(selection: AxisSelection) -> tuple[int, int] | None:
    """(lo, hi) when ``selection`` is the ascending run lo..hi-1, else None."""
    idx = selection.indices
    if idx.size == 0 or int(idx[-1]) - int(idx[0]) + 1 != idx.size:
        return None
    if selection.contiguous is None and not np.all(np.diff(idx) == 1):
        return None
    return int(idx[0]), int(idx[-1]) + 1


def subgraph(g: sparse.coo_matrix, indices: np.ndarray) -> sparse.coo_matrix:
    """The graph on the vertices ``indices`` (new vertex ``i`` is old vertex ``indices[i]``).

    Edges with an endpoint outside the selection are dropped. A vertex selected several times gets
    a copy of its edges at every position, so the result matches slicing the dense adjacency matrix.
    """
    m = indices.shape[0]
    n = g.shape[0]
    if m == n and np.array_equal(indices, np.arange(n)):
        return g.copy()  # every vertex, in order (scans along the other axis): nothing to renumber
    position = np.full(n, -1, dtype=np.int64)
    position[indices] = np.arange(m)
    if np.count_nonzero(position >= 0) == m:  # no vertex selected twice: a lookup table renumbers
        new_a, new_b = position[g.row], position[g.col]
        keep = (new_a >= 0) & (new_b >= 0)
        return sparse.coo_matrix((g.data[keep], (new_a[keep], new_b[keep])), shape=(m, m))
    order = np.argsort(indices, kind="stable")
    old_sorted = indices[order]
    a_lo = np.searchsorted(old_sorted, g.row, "left")
    a_count = np.searchsorted(old_sorted, g.row, "right") - a_lo
    b_lo = np.searchsorted(old_sorted, g.col, "left")
    b_count = np.searchsorted(old_sorted, g.col, "right") - b_lo
    pairs = a_count * b_count
    total = int(pairs.sum())
    edge = np.repeat(np.arange(g.nnz), pairs)
    within = np.arange(total) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    new_a = order[a_lo[edge] + within // np.maximum(b_count[edge], 1)]
    new_b = order[b_lo[edge] + within % np.maximum(b_count[edge], 1)]
    return sparse.coo_matrix((g.data[edge], (new_a, new_b)), shape=(m, m))


class GraphManager(BackedMapping[sparse.coo_matrix]):
    """Graphs whose vertices are the rows (axis 0) or the columns (axis 1).

    Examples
    --------
    >>> ds.col_graphs.KNN = knn            # any scipy.sparse matrix or dense adjacency matrix
    >>> g = ds.col_graphs["KNN"]           # scipy.sparse.coo_matrix of shape (M, M)
    """

    _fields = frozenset({"_backend", "_axis", "_indexes"})

    def __init__(
        self,
        ds: Any,
        axis: int,
        *,
        graphs: dict[str, sparse.coo_matrix] | None = None,
        length: int = 0,
    ) -> None:
        """``ds``: a connection (loomfile's or loompy's) or a LoomStore; None with ``graphs`` for
        graphs in memory."""
        store = store_of(ds)
        if ds is not None and store is None:
            msg = f"GraphManager needs a connection, not {type(ds).__name__}"
            raise LoomValueError(msg)
        self._axis = axis
        self._backend: Backend[sparse.coo_matrix] = backend_over(store, GRAPHS, axis, graphs, length)
        self._indexes: dict[str, RowIndex] = {}  # of graphs held in memory, built when runs are cut

    @classmethod
    def in_memory(cls, axis: int, graphs: dict[str, sparse.coo_matrix], length: int) -> GraphManager:
        return cls(None, axis, graphs=graphs, length=length)

    @property
    def _kind(self) -> str:  # type: ignore[override]
        return f"{_AXIS_WORD[self._axis].lower()} graph"

    def _set(self, name: str, value: Any) -> None:
        fmt.check_name(f"{_AXIS_WORD[self._axis]} graph", name)
        self._backend.require_writable(f"write {self._kind} {name!r}")
        g = to_coo(value, self._n(), f"{_AXIS_WORD[self._axis]} graph {name!r}")
        self._backend.set(name, g)

    def __getitem__(self, key: Any) -> Any:
        """A graph by name; the first existing of several names; or, for an index, subgraphs of all."""
        if isinstance(key, str):
            return super().__getitem__(key)
        if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
            for name in key:
                if name in self:
                    return self[name]
            msg = f"None of the {self._kind}s {list(key)} exist"
            raise LoomKeyError(msg)
        return self._select(normalize_axis_key(key, self._n(), self._axis))

    def _select(self, selection: AxisSelection) -> GraphManager:
        graphs = {name: self._cut(name, selection) for name in self._names()}
        return GraphManager.in_memory(self._axis, graphs, selection.size)

    def _cut(self, name: str, selection: AxisSelection) -> sparse.coo_matrix:
        """The subgraph on ``selection``. A run of vertices in a graph held in memory (a scan's
        bands of a whole axis read once) is cut through an index kept until the graph is replaced,
        not by a pass over every edge."""
        run = run_of(selection)
        g = None if run is None else self._backend.held(name)
        if run is None or g is None:
            return subgraph(self._get(name), selection.indices)
        index = self._indexes.get(name)
        if index is None or index.graph is not g:  # (a graph set since was stored as a new object)
            index = self._indexes[name] = RowIndex(g)
        return index.run(*run)

    def last_modified(self, name: str | None = None) -> str:
        return self._backend.last_modified(name)

    def _permute(self, ordering: np.ndarray) -> None:
        for name in self._names():
            self[name] = subgraph(self._get(name), ordering)
