"""loompy's deprecated method names still work, warn once, and agree with loompy itself."""

from __future__ import annotations

import os
import warnings

import loompy
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
from loomfile._api import loompy_aliases as _compat


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    _compat._warned.clear()


def test_deprecated_aliases_warn_and_work(loom_path: str, small_data: dict) -> None:
    with loomfile.connect(loom_path) as ds:
        with pytest.warns(DeprecationWarning, match="set_attr"):
            ds.set_attr("Score", np.arange(ds.shape[1]), axis=1)
        np.testing.assert_array_equal(ds.ca.Score, np.arange(ds.shape[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds.set_attr("Score2", np.arange(ds.shape[1]), axis=1)  # warned once already: silent now
        with pytest.warns(DeprecationWarning):
            ds.delete_attr("Score", axis=1)
        assert "Score" not in ds.ca
        n = ds.shape[1]
        with pytest.warns(DeprecationWarning):
            ds.set_edges("G", np.array([0, 1]), np.array([1, 2]), np.array([1.0, 2.0]), axis=1)
        with pytest.warns(DeprecationWarning):
            a, b, w = ds.get_edges("G", axis=1)
        assert sorted(zip(a.tolist(), b.tolist(), w.tolist(), strict=True)) == [(0, 1, 1.0), (1, 2, 2.0)]
        with pytest.warns(DeprecationWarning):
            assert ds.list_edges(axis=1) == ["G"]
        with pytest.warns(DeprecationWarning):
            ds.set_layer("twice", small_data["matrix"] * 2)
        np.testing.assert_array_equal(ds["twice"][:, :], small_data["matrix"] * 2)
        assert ds.col_graphs.G.shape == (n, n)
        with pytest.raises(ValueError, match="axis"):
            ds.set_attr("X", np.arange(n), axis=2)


@pytest.mark.parametrize("axis", [0, 1])
def test_batch_scan_matches_loompy(tmp_path, small_data: dict, axis: int) -> None:
    path = os.fspath(tmp_path / "lp.loom")
    loompy.create(path, small_data["matrix"], small_data["row_attrs"], small_data["col_attrs"])
    cells = np.array([1, 5, 70, 71, 129])
    genes = np.array([0, 2, 3, 100])
    with loompy.connect(path, "r") as lp, loomfile.connect(path, "r") as lf:
        expected = list(lp.batch_scan(cells=cells, genes=genes, axis=axis, batch_size=64))
        with pytest.warns(DeprecationWarning):
            got = list(lf.batch_scan(cells=cells, genes=genes, axis=axis, batch_size=64))
    assert len(got) == len(expected) > 1
    for (ix1, sel1, v1), (ix2, sel2, v2) in zip(expected, got, strict=True):
        assert ix1 == ix2
        np.testing.assert_array_equal(sel1, sel2)
        np.testing.assert_array_equal(v1, v2)


def test_create_append(tmp_path, small_data: dict) -> None:
    path = os.fspath(tmp_path / "ca.loom")
    m = sparse.csr_matrix(small_data["matrix"])
    with pytest.warns(DeprecationWarning):
        loomfile.create_append(path, m, small_data["row_attrs"], small_data["col_attrs"])
    loomfile.create_append(path, m, small_data["row_attrs"], small_data["col_attrs"])
    with loomfile.connect(path, "r") as ds:
        assert ds.shape == (m.shape[0], 2 * m.shape[1])
        np.testing.assert_array_equal(ds[:, m.shape[1] :], small_data["matrix"])
