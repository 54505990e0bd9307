"""Cutting a graph to a run of vertices (a scan cuts the moving axis's graphs once per band) through
a row index gives exactly what the general subgraph does: same edges, same order, same types."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sparse
from hypothesis import given, settings
from hypothesis import strategies as st

import loomfile
from loomfile._core.graphs import GraphManager, RowIndex, subgraph
from loomfile._selection import AxisSelection
from looms import counts_file


@st.composite
def graphs_and_runs(draw: st.DrawFn) -> tuple[sparse.coo_matrix, int, int]:
    n = draw(st.integers(1, 40))
    edges = draw(st.integers(0, 120))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, edges), rng.integers(0, n, edges)  # repeats and self-loops included
    w = rng.random(edges).astype(draw(st.sampled_from(["float32", "float64"])))
    lo = draw(st.integers(0, n - 1))
    hi = draw(st.integers(lo + 1, n))
    return sparse.coo_matrix((w, (a, b)), shape=(n, n)), lo, hi


@settings(max_examples=300, deadline=None)
@given(graphs_and_runs())
def test_a_run_cut_through_the_index_is_the_subgraph(case: tuple[sparse.coo_matrix, int, int]) -> None:
    g, lo, hi = case
    expected = subgraph(g, np.arange(lo, hi))
    got = RowIndex(g).run(lo, hi)
    assert got.shape == expected.shape == (hi - lo, hi - lo)
    for mine, theirs in ((got.row, expected.row), (got.col, expected.col), (got.data, expected.data)):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(got.toarray(), g.toarray()[lo:hi, lo:hi])  # the dense oracle


def test_memory_managers_cut_runs_through_an_index_rebuilt_when_a_graph_is_replaced() -> None:
    rng = np.random.default_rng(1)
    first = sparse.coo_matrix(
        (rng.random(50), (rng.integers(0, 30, 50), rng.integers(0, 30, 50))), shape=(30, 30)
    )
    manager = GraphManager.in_memory(1, {"KNN": first}, 30)
    band = AxisSelection(30, np.arange(10, 20))  # a run given as indices, as scan's bands are
    np.testing.assert_array_equal(manager._select(band)["KNN"].toarray(), first.toarray()[10:20, 10:20])
    assert manager._indexes["KNN"].graph is first
    second = sparse.coo_matrix(np.eye(30))
    manager["KNN"] = second
    np.testing.assert_array_equal(manager._select(band)["KNN"].toarray(), np.eye(10))
    scattered = AxisSelection(30, np.array([3, 1, 2]))  # not a run: the general path
    np.testing.assert_array_equal(
        manager._select(scattered)["KNN"].toarray(), np.eye(30)[np.ix_([3, 1, 2], [3, 1, 2])]
    )


def test_scan_views_carry_each_bands_graph(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    counts_file(path, 80, 700, seed=3)
    rng = np.random.default_rng(4)
    knn = sparse.coo_matrix(
        (rng.random(3000), (rng.integers(0, 700, 3000), rng.integers(0, 700, 3000))), shape=(700, 700)
    )
    with loomfile.connect(os.fspath(path)) as ds:
        ds.col_graphs["KNN"] = knn
        for ix, _, view in ds.scan(axis=1, batch_size=128):
            hi = min(ix + 128, 700)
            np.testing.assert_array_equal(view.col_graphs["KNN"].toarray(), knn.toarray()[ix:hi, ix:hi])
