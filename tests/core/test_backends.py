"""The managers' two backends (``_core/backends.py``): the same manager over the file and over a dict
in memory answers the same sequence of writes, reads and deletes alike, errors included; what only
one backend does (caching file reads, holding values shared in memory) is checked on it alone."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
from loomfile._core.attributes import AttributeManager, GlobalAttributeManager
from loomfile._core.backends import ATTRIBUTES, GLOBALS, GRAPHS, MemoryBackend, StoreBackend
from loomfile._core.graphs import GraphManager
from loomfile._errors import LoomKeyError, LoomReadOnlyError, LoomValueError
from loomfile._selection import AxisSelection
from looms import counts_file

N_ROWS, N_COLS = 6, 9


@dataclasses.dataclass
class Managers:
    ca: AttributeManager
    col_graphs: GraphManager
    attrs: GlobalAttributeManager


@pytest.fixture(params=["file", "memory"])
def managers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Managers]:
    """Column attributes, column graphs and global attributes, empty, on a file of N_ROWS x N_COLS
    or in memory for N_COLS columns."""
    if request.param == "memory":
        yield Managers(
            AttributeManager.in_memory(1, {}, N_COLS),
            GraphManager.in_memory(1, {}, N_COLS),
            GlobalAttributeManager.in_memory({}),
        )
        return
    path = os.fspath(tmp_path / "b.loom")
    loomfile.create(path, np.zeros((N_ROWS, N_COLS), dtype=np.float32), {}, {})
    with loomfile.connect(path, "r+") as ds:
        yield Managers(AttributeManager(ds, 1), GraphManager(ds, 1), GlobalAttributeManager(ds))


def test_attributes_behave_alike(managers: Managers) -> None:
    ca = managers.ca
    assert ca.keys() == []
    ca["Cell"] = np.array([f"c{i}" for i in range(N_COLS)])
    ca.Size = np.arange(N_COLS, dtype=np.int32)
    ca["XY"] = np.arange(2 * N_COLS, dtype=np.float64).reshape(N_COLS, 2)
    assert ca.keys() == ["Cell", "Size", "XY"]
    assert ca["Cell"].dtype == object and ca["Cell"][3] == "c3"
    mine = ca.Size
    mine[0] = 99  # the caller's copy
    np.testing.assert_array_equal(ca.Size, np.arange(N_COLS))
    ca["Size"] = np.arange(N_COLS)[::-1]  # replaced: the next read sees the new values
    np.testing.assert_array_equal(ca["Size"], np.arange(N_COLS)[::-1])
    np.testing.assert_array_equal(ca["Size", "Size"], np.column_stack([ca.Size, ca.Size]))
    picked = ca[2:5]
    assert isinstance(picked, AttributeManager) and picked.keys() == ca.keys()
    np.testing.assert_array_equal(picked.Size, [6, 5, 4])
    one = ca[4]
    assert one["Cell"] == "c4"
    with pytest.raises(LoomValueError, match=rf"Column attribute 'Bad' has 3 values; the file has {N_COLS} columns"):
        ca["Bad"] = [1, 2, 3]
    with pytest.raises(LoomKeyError, match=r"No column attribute named 'Sise'; did you mean 'Size'\?"):
        ca["Sise"]
    ca._permute(np.arange(N_COLS)[::-1])
    np.testing.assert_array_equal(ca.Size, np.arange(N_COLS))
    assert ca["Cell"][0] == f"c{N_COLS - 1}"
    del ca.Size
    assert ca.keys() == ["Cell", "XY"]
    assert "Size" not in ca
    with pytest.raises(LoomKeyError, match="No column attribute named 'Size'"):
        del ca["Size"]
    assert isinstance(ca.last_modified("Cell"), str) and isinstance(ca.last_modified(), str)


def test_graphs_behave_alike(managers: Managers) -> None:
    graphs = managers.col_graphs
    knn = sparse.coo_matrix(
        (np.linspace(0.5, 2, 5), ([0, 1, 2, 8, 8], [1, 2, 3, 0, 8])), shape=(N_COLS, N_COLS)
    )
    graphs.Dense = np.eye(N_COLS)
    graphs["KNN"] = knn
    assert graphs.keys() == ["Dense", "KNN"]
    got = graphs["KNN"]
    assert isinstance(got, sparse.coo_matrix) and got.dtype == np.float64
    np.testing.assert_array_equal(got.toarray(), knn.toarray())
    got.data[:] = 0  # the caller's copy
    np.testing.assert_array_equal(graphs["KNN"].toarray(), knn.toarray())
    np.testing.assert_array_equal(graphs[0:3]["KNN"].toarray(), knn.toarray()[:3, :3])
    np.testing.assert_array_equal(graphs[[8, 0]]["KNN"].toarray(), knn.toarray()[np.ix_([8, 0], [8, 0])])
    with pytest.raises(LoomValueError, match=rf"Column graph 'Bad' must be a \({N_COLS}, {N_COLS}\) adjacency"):
        graphs["Bad"] = np.eye(3)
    graphs._permute(np.arange(N_COLS)[::-1])
    np.testing.assert_array_equal(graphs.KNN.toarray(), knn.toarray()[::-1, ::-1])
    del graphs["Dense"]
    assert graphs.keys() == ["KNN"]
    with pytest.raises(LoomKeyError, match=r"No column graph named 'knn'; did you mean 'KNN'\?"):
        graphs["knn"]


def test_global_attributes_behave_alike(managers: Managers) -> None:
    attrs = managers.attrs
    before = attrs.keys()  # (a new file's: its spec version and creation date)
    attrs["Title"] = "cells"
    attrs.Count = 3
    attrs["Weights"] = [0.5, 1.5]
    attrs["Tags"] = ["a", "b"]
    added = [name for name in attrs.keys() if name not in before]
    assert sorted(added) == ["Count", "Tags", "Title", "Weights"]  # (in memory, in the order written)
    assert attrs.Title == "cells" and isinstance(attrs.Title, str)
    assert attrs["Count"] == 3
    np.testing.assert_array_equal(attrs.Weights, [0.5, 1.5])
    assert list(attrs.Tags) == ["a", "b"]
    mine = attrs.Weights
    mine[0] = 9
    np.testing.assert_array_equal(attrs.Weights, [0.5, 1.5])
    snap = attrs.snapshot()
    del attrs["Count"]
    assert "Count" not in attrs and snap["Count"] == 3
    assert attrs.get("Count", "none") == "none"
    with pytest.raises(LoomKeyError, match="No global attribute named 'Count'"):
        attrs["Count"]


def test_memory_backend_keeps_the_callers_dict_and_hands_out_copies() -> None:
    values = {"x": np.arange(4)}
    backend = MemoryBackend(ATTRIBUTES, values, 4)
    assert backend.n == 4 and backend.fixed_length and backend.names() == ["x"]
    assert backend.held("x") is values["x"]
    assert backend.get("x") is not values["x"]
    backend.set("y", np.ones(4))
    assert list(values) == ["x", "y"]  # written into the caller's dict
    backend.delete("x")
    assert list(values) == ["y"]
    backend.require_writable("write anything")  # memory is never read-only


def test_memory_global_attributes_read_back_as_from_a_file(tmp_path: Path) -> None:
    """A global attribute kept in memory (a view's) reads back as the file's does: a scalar
    written is a scalar, not a 0-d array. (The file's numbers are numpy scalars, memory's Python
    ones: equal, as they were before the backends.)"""
    path = os.fspath(tmp_path / "g.loom")
    loomfile.create(path, np.zeros((2, 2)), {}, {})
    with loomfile.connect(path, "r+") as ds:
        memory = GlobalAttributeManager.in_memory({})
        for name, value in (("i", 7), ("f", 0.25), ("s", "text"), ("a", [1, 2])):
            ds.attrs[name] = value
            memory[name] = value
            np.testing.assert_array_equal(memory[name], ds.attrs[name])
            assert np.ndim(memory[name]) == np.ndim(ds.attrs[name])
            assert isinstance(memory[name], np.ndarray) == isinstance(ds.attrs[name], np.ndarray)
        assert MemoryBackend(GLOBALS, {}).n == 0


def test_file_attribute_reads_are_cached_until_written(tmp_path: Path) -> None:
    path = tmp_path / "c.loom"
    counts_file(path, 5, 8, seed=1)
    reads: list[str] = []

    def counting(store: Any, axis: int, name: str) -> Any:
        reads.append(name)
        return ATTRIBUTES.read(store, axis, name)

    with loomfile.connect(os.fspath(path), "r+") as ds:
        backend = StoreBackend(ds._store, dataclasses.replace(ATTRIBUTES, read=counting), 1)
        name = backend.names()[0]
        assert backend.held(name) is None  # not read yet
        first = backend.get(name)
        np.testing.assert_array_equal(backend.get(name), first)
        assert reads == [name]
        assert backend.held(name) is not None
        backend.set(name, first[::-1].copy())
        np.testing.assert_array_equal(backend.get(name), first[::-1])
        assert reads == [name, name]


def test_file_graphs_are_read_each_time_and_not_held(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    counts_file(path, 5, 8, seed=2)
    reads: list[str] = []

    def counting(store: Any, axis: int, name: str) -> Any:
        reads.append(name)
        return GRAPHS.read(store, axis, name)

    with loomfile.connect(os.fspath(path), "r+") as ds:
        ds.col_graphs["G"] = sparse.eye(8)
        backend = StoreBackend(ds._store, dataclasses.replace(GRAPHS, read=counting), 1)
        backend.get("G")
        backend.get("G")
        assert reads == ["G", "G"] and backend.held("G") is None
        assert GraphManager(ds, 1)._select(AxisSelection(8, np.arange(2, 6)))["G"].nnz == 4


def test_a_read_only_file_refuses_before_the_value_is_checked(loom_path: str) -> None:
    """The file backend says the file is read-only even when the value is wrong as well; memory
    managers are never read-only."""
    with loomfile.connect(loom_path, "r") as ds:
        with pytest.raises(LoomReadOnlyError, match="Cannot write column attribute 'X'"):
            ds.ca["X"] = [1, 2, 3]
        with pytest.raises(LoomReadOnlyError, match="Cannot write row graph 'G'"):
            ds.row_graphs["G"] = np.eye(2)
        with pytest.raises(LoomReadOnlyError, match="Cannot write global attribute 'T'"):
            ds.attrs["T"] = "x"
        view = ds.view[:3, :4]
        view.ca["X"] = [1, 2, 3, 4]
        assert list(view.ca["X"]) == [1, 2, 3, 4]


def test_cached_attributes_follow_a_rollback_and_other_managers(tmp_path: Path) -> None:
    """The read cache does not outlive what it read: a transaction rolled back puts the old values
    back in the file (and so in what the manager returns), and a write through another manager
    over the same store is seen. The manager's own writes keep its other cached values."""
    path = os.fspath(tmp_path / "r.loom")
    loomfile.create(path, np.zeros((2, 3)), {}, {"X": np.arange(3), "Y": np.arange(3) * 2})
    with loomfile.connect(path, "r+") as ds:
        np.testing.assert_array_equal(ds.ca.X, [0, 1, 2])
        with pytest.raises(RuntimeError), ds._store.transaction():
            ds.ca.X = np.array([7, 8, 9])
            np.testing.assert_array_equal(ds.ca.X, [7, 8, 9])
            raise RuntimeError
        np.testing.assert_array_equal(ds.ca.X, [0, 1, 2])
        other = AttributeManager(ds, 1)
        np.testing.assert_array_equal(other.X, [0, 1, 2])
        ds.ca.X = np.array([4, 5, 6])
        np.testing.assert_array_equal(other.X, [4, 5, 6])
        backend = ds.ca._backend
        assert isinstance(backend, StoreBackend)
        ds.ca.Y  # noqa: B018 (read: cached)
        ds.ca.X = np.array([1, 1, 1])
        assert backend.held("Y") is not None and backend.held("X") is None
