"""Every key h5py and numpy accept on a 2-D dataset, and loompy passes through, works on loomfile's
connection, layers, views and in-memory layers.

Oracles: h5py reading the same dataset (for the keys h5py accepts) and numpy on the same matrix (for
negative steps, which h5py refuses but numpy and loomfile accept).
"""

from __future__ import annotations

import os
from typing import Any

import anndata
import h5py
import numpy as np
import pytest

import loomfile
from loomfile import SelectionError

# Keys h5py accepts on a 2-D dataset; loompy hands them to h5py unchanged.
H5PY_KEYS: list[Any] = [
    (),
    ...,
    (...,),
    (..., 3),
    (0, ...),
    (..., slice(1, 4)),
    (slice(2, 5), ...),
    (..., [0, 2, 5]),
    (1, ..., 2),
    (..., 1, 2),
    np.int64(3),
    (np.int64(3), np.int32(2)),
    (np.uint8(1), slice(None)),
    np.array(3),
    (np.array(1), np.array(2)),
    (slice(None), np.array(4)),
    (np.array(2), ...),
]

# Keys numpy accepts (h5py refuses negative steps: numpy is the oracle here).
NUMPY_KEYS: list[Any] = [
    (slice(None, None, -1), slice(None)),
    (slice(None, None, -2), slice(4, 0, -1)),
    (..., slice(None, None, -1)),
    (slice(3, None, -1), 2),
    (np.int64(-1), slice(None, None, -3)),
]


@pytest.fixture
def matrix_file(tmp_path) -> tuple[str, np.ndarray]:
    m = np.arange(7 * 9, dtype=np.float32).reshape(7, 9)
    path = os.fspath(tmp_path / "m.loom")
    loomfile.create(
        path,
        {"": m, "twice": (m * 2).astype(np.int32)},
        {"Gene": np.array([f"g{i}" for i in range(7)])},
        {"CellID": np.array([f"c{j}" for j in range(9)])},
    )
    return path, m


def h5py_read(path: str, dataset: str, key: Any) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.asarray(f[dataset][key])


def assert_same(got: Any, expected: Any) -> None:
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("key", H5PY_KEYS, ids=repr)
def test_h5py_keys_read_as_h5py_reads_them(matrix_file, key: Any) -> None:
    path, _ = matrix_file
    expected = h5py_read(path, "matrix", key)
    twice = h5py_read(path, "layers/twice", key)
    with loomfile.connect(path, "r") as ds:
        assert_same(ds[key], expected)
        assert_same(ds.layers[""][key], expected)
        assert_same(ds.layers["twice"][key], twice)
        assert_same(ds["twice"][key], twice)
        assert_same(ds.layer["twice"][key], twice)
        view = ds.view[:, :]
    assert_same(view[key], expected)
    assert_same(view.layers["twice"][key], twice)


@pytest.mark.parametrize("key", NUMPY_KEYS, ids=repr)
def test_negative_steps_read_as_numpy_reads_them(matrix_file, key: Any) -> None:
    path, m = matrix_file
    with loomfile.connect(path, "r") as ds:
        assert_same(ds[key], m[key])
        assert_same(ds.layers["twice"][key], (m * 2).astype(np.int32)[key])
        assert_same(ds.view[:, :][key], m[key])


@pytest.mark.parametrize("key", [(), ..., (..., slice(None, None, -1)), (slice(1, 3), ...)], ids=repr)
def test_layer_manager_slices_every_layer(matrix_file, key: Any) -> None:
    path, m = matrix_file
    with loomfile.connect(path, "r") as ds:
        sliced = ds.layers[key]
    assert_same(sliced[""].values, m[key])
    assert_same(sliced["twice"].values, (m * 2).astype(np.int32)[key])


@pytest.mark.parametrize("key", [(), ..., (...,), np.int64(2), np.array(2), slice(None, None, -2)], ids=repr)
def test_attribute_and_graph_managers_take_numpy_keys(matrix_file, key: Any) -> None:
    path, _ = matrix_file
    cells = np.array([f"c{j}" for j in range(9)])
    with loomfile.connect(path, "r+") as ds:
        ds.col_graphs["G"] = np.eye(9)
        sliced = ds.ca[key]
        graphs = ds.col_graphs[key]
    assert_same(sliced["CellID"], cells[key])
    n = np.atleast_1d(cells[key]).shape[0]
    assert graphs["G"].shape == (n, n)


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ((..., ...), "single ellipsis"),
        ((0, 1, 2), "3 parts"),
        ((None, 0), "newaxis"),
        ((np.array(True), 0), "integer"),
        ((np.ones((7, 9), bool), 0), "one-dimensional"),
        ((np.array(1.5), 0), "integer"),
    ],
    ids=repr,
)
def test_keys_nobody_can_mean_are_refused_clearly(matrix_file, key: Any, where: str) -> None:
    path, _ = matrix_file
    with loomfile.connect(path, "r") as ds, pytest.raises(SelectionError, match=where):
        ds[key]


@pytest.mark.parametrize("key", [(), ..., (..., slice(None)), (slice(None), ...)], ids=repr)
def test_whole_matrix_writes_match_h5py(matrix_file, key: Any) -> None:
    path, m = matrix_file
    new = -m
    with loomfile.connect(path, "r+") as ds:
        ds[key] = new
        ds.layers["twice"][key] = (new * 2).astype(np.int32)
    assert_same(h5py_read(path, "matrix", ()), new)
    assert_same(h5py_read(path, "layers/twice", ()), (new * 2).astype(np.int32))


def test_ellipsis_writes_one_column(matrix_file) -> None:
    path, m = matrix_file
    with loomfile.connect(path, "r+") as ds:
        ds[..., np.int64(3)] = np.full(7, 99, np.float32)
    expected = m.copy()
    expected[:, 3] = 99
    assert_same(h5py_read(path, "matrix", ()), expected)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_anndata_read_loom_dense_reads_the_whole_layer(matrix_file, monkeypatch) -> None:
    """anndata.read_loom(sparse=False) reads ``lc.layers[X_name][()]``; with loompy resolved to loomfile
    it returns the same matrix h5py reads (transposed: cells x genes)."""
    import sys

    path, _ = matrix_file
    monkeypatch.setitem(sys.modules, "loompy", loomfile)
    adata = anndata.io.read_loom(path, sparse=False, obs_names="CellID", var_names="Gene")
    assert_same(adata.X, h5py_read(path, "matrix", ()).T)
    assert_same(adata.layers["twice"], h5py_read(path, "layers/twice", ()).T)
