"""Differential tests: the same calls on loompy 3.0.8 (the oracle) and on loomfile must agree.

Each test runs one sequence of calls on both libraries, over the same data (each library writes its
own file, or loomfile reads/modifies a copy of the file loompy wrote), and compares the results
exactly. Where loompy itself is wrong (crash, data loss, non-ASCII stripping, h5py indexing
limits...), loomfile is compared with a numpy oracle instead, and the comment names the loompy bug.

Differential data are ASCII only: loompy 3.0.8 strips non-ASCII characters on read under h5py 3.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loompy
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
from oracle import axis_indices, orthogonal

N_ROWS, N_COLS = 100, 140  # both cross the 64-element chunk edge
LIBS = (loompy, loomfile)
ROW_MASK = np.arange(N_ROWS) % 3 == 0
COL_MASK = (np.arange(N_COLS) % 5 == 1) | (np.arange(N_COLS) > 120)
IGNORED_GLOBALS = {"last_modified"}  # loompy adds it lazily on read (last_modified() in r+)
VOLATILE_GLOBALS = {"last_modified", "CreationDate"}  # timestamps differ between two writes


# --- data ------------------------------------------------------------------------------------------


@dataclass
class Data:
    matrix: np.ndarray
    layers: dict[str, Any]
    ra: dict[str, np.ndarray]
    ca: dict[str, np.ndarray]
    row_graphs: dict[str, sparse.coo_matrix] = field(default_factory=dict)
    col_graphs: dict[str, sparse.coo_matrix] = field(default_factory=dict)
    globals_: dict[str, Any] = field(default_factory=dict)

    def dense_layers(self) -> dict[str, np.ndarray]:
        return {k: (v.toarray() if sparse.issparse(v) else np.asarray(v)) for k, v in self.layers.items()}


def _graph(rng: np.random.Generator, n: int, k: int = 4) -> sparse.coo_matrix:
    """A KNN-like graph without duplicate edges, with float weights."""
    rows = np.repeat(np.arange(n), k)
    cols = rng.integers(0, n, n * k)
    g = sparse.coo_matrix((rng.random(n * k) + 0.1, (rows, cols)), shape=(n, n)).tocsr()
    g.sum_duplicates()
    return g.tocoo()


def make_data(
    seed: int = 7, dtype: Any = np.float32, n_rows: int = N_ROWS, n_cols: int = N_COLS, graphs: bool = True
) -> Data:
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(1, 0.4, size=(n_rows, n_cols))
    counts[rng.random((n_rows, n_cols)) < 0.7] = 0
    matrix = counts.astype(dtype)
    spliced = (counts * 2).astype(np.int32)
    unspliced = rng.random((n_rows, n_cols)) * (rng.random((n_rows, n_cols)) < 0.2)
    ra = {
        "Gene": np.array([f"Gene{i}" for i in range(n_rows)], dtype=object),
        "Accession": np.array([f"ENSG{i:08d}" for i in rng.permutation(n_rows)], dtype=object),
        "Selected": (rng.random(n_rows) < 0.5).astype(np.int64),
        "Score": rng.normal(size=n_rows),
        "Embedding": rng.normal(size=(n_rows, 2)),
    }
    ca = {
        "CellID": np.array([f"cell_{j}" for j in range(n_cols)], dtype=object),
        "Barcode": np.array([f"BC{j:05d}" for j in rng.permutation(n_cols)], dtype=object),
        "ClusterID": rng.integers(0, 5, n_cols),
        "Total": counts.sum(axis=0).astype(np.float64),
        "PCA": rng.normal(size=(n_cols, 4)),
    }
    data = Data(
        matrix=matrix,
        layers={"": matrix, "spliced": sparse.csr_matrix(spliced), "unspliced": unspliced},
        ra=ra,
        ca=ca,
        globals_={"title": "A differential dataset", "n_samples": 3, "ratio": 0.25},
    )
    if graphs:
        data.row_graphs = {"RG": _graph(rng, n_rows, 3)}
        data.col_graphs = {"KNN": _graph(rng, n_cols, 5), "MKNN": _graph(rng, n_cols, 2)}
    return data


def populate(lib: Any, path: str, data: Data) -> None:
    """Write ``data`` into a new file at ``path`` using ``lib`` (loompy or loomfile)."""
    lib.create(path, dict(data.layers), dict(data.ra), dict(data.ca))
    with lib.connect(path) as ds:
        for name, g in data.row_graphs.items():
            ds.row_graphs[name] = g
        for name, g in data.col_graphs.items():
            ds.col_graphs[name] = g
        for name, value in data.globals_.items():
            ds.attrs[name] = value


@dataclass
class Pair:
    """Two files with the same content: ``ref`` for loompy, ``new`` for loomfile."""

    ref: str
    new: str
    data: Data

    @contextlib.contextmanager
    def open(self, mode: str = "r+") -> Iterator[tuple[Any, Any]]:
        with loompy.connect(self.ref, mode) as a, loomfile.connect(self.new, mode) as b:
            yield a, b


def make_pair(directory: Path, data: Data, source: str = "own") -> Pair:
    """``source="own"``: each library writes its own file; ``"loompy"``: loomfile gets a copy of loompy's."""
    ref = os.fspath(directory / "ref.loom")
    new = os.fspath(directory / "new.loom")
    populate(loompy, ref, data)
    if source == "own":
        populate(loomfile, new, data)
    else:
        shutil.copyfile(ref, new)
    return Pair(ref, new, data)


@pytest.fixture(params=["own", "loompy"], ids=["each_writes", "reads_loompy_file"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Pair:
    return make_pair(tmp_path, make_data(), request.param)


@pytest.fixture(scope="module", params=["own", "loompy"], ids=["each_writes", "reads_loompy_file"])
def read_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """A pair shared by read-only tests (they connect with mode 'r')."""
    return make_pair(tmp_path_factory.mktemp(f"read_{request.param}"), make_data(), request.param)


# --- comparison helpers ------------------------------------------------------------------------------


def assert_same_values(expected: Any, actual: Any, what: str = "") -> None:
    """Same shape, dtype and values (strings compared as str)."""
    exp, act = np.asarray(expected), np.asarray(actual)
    assert exp.shape == act.shape, f"{what}: shape {act.shape} != {exp.shape}"
    if exp.dtype.kind in "OUS" or act.dtype.kind in "OUS":
        assert act.dtype.kind == exp.dtype.kind, f"{what}: dtype {act.dtype} != {exp.dtype}"
        assert [str(x) for x in act.ravel()] == [str(x) for x in exp.ravel()], what
        return
    assert exp.dtype == act.dtype, f"{what}: dtype {act.dtype} != {exp.dtype}"
    np.testing.assert_array_equal(act, exp, err_msg=what)


def assert_same_attrs(a: Any, b: Any, what: str = "attrs") -> None:
    assert sorted(a.keys()) == sorted(b.keys()), what
    for name in a.keys():
        assert_same_values(a[name], b[name], f"{what}.{name}")


def assert_same_graphs(a: Any, b: Any, what: str = "graphs") -> None:
    assert sorted(a.keys()) == sorted(b.keys()), what
    for name in a.keys():
        ga, gb = a[name], b[name]
        assert isinstance(gb, sparse.coo_matrix), f"{what}.{name} is {type(gb).__name__}"
        assert ga.shape == gb.shape, f"{what}.{name}"
        np.testing.assert_array_equal(gb.toarray(), ga.toarray(), err_msg=f"{what}.{name}")


def assert_same_layers(a: Any, b: Any, what: str = "layers") -> None:
    assert sorted(a.keys()) == sorted(b.keys()), what
    for name in a.keys():
        assert_same_values(a[name][:, :], b[name][:, :], f"{what}[{name!r}]")


def assert_same_globals(a: Any, b: Any, *, skip: set[str] = VOLATILE_GLOBALS) -> None:
    keys_a = sorted(set(a.keys()) - IGNORED_GLOBALS)
    keys_b = sorted(set(b.keys()) - IGNORED_GLOBALS)
    assert keys_a == keys_b
    for name in keys_a:
        if name not in skip:
            assert_same_values(a[name], b[name], f"attrs.{name}")


def assert_same_content(a: Any, b: Any, *, graphs: bool = True) -> None:
    """Connections or views: shape, layers, row/column attributes and (optionally) graphs agree."""
    assert tuple(a.shape) == tuple(b.shape)
    assert_same_layers(a.layers, b.layers)
    assert_same_attrs(a.ra, b.ra, "ra")
    assert_same_attrs(a.ca, b.ca, "ca")
    if graphs:
        assert_same_graphs(a.row_graphs, b.row_graphs, "row_graphs")
        assert_same_graphs(a.col_graphs, b.col_graphs, "col_graphs")


def assert_same_files(ref: str, new: str, *, graphs: bool = True) -> None:
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        assert_same_content(a, b, graphs=graphs)
        assert_same_globals(a.attrs, b.attrs)


def assert_matches_data(path: str, data: Data) -> None:
    """The numpy oracle: a file written from ``data`` holds exactly ``data``."""
    with loomfile.connect(path, "r") as ds:
        assert ds.shape == data.matrix.shape
        assert sorted(ds.layers.keys()) == sorted(data.layers.keys())
        for name, dense in data.dense_layers().items():
            assert_same_values(dense, ds.layers[name][:, :], f"layer {name!r}")
        for name, values in data.ra.items():
            assert_same_values(values, ds.ra[name], f"ra.{name}")
        for name, values in data.ca.items():
            assert_same_values(values, ds.ca[name], f"ca.{name}")
        for name, g in data.row_graphs.items():
            np.testing.assert_array_equal(ds.row_graphs[name].toarray(), g.toarray())
        for name, g in data.col_graphs.items():
            np.testing.assert_array_equal(ds.col_graphs[name].toarray(), g.toarray())


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the warnings both libraries emit for expected situations (dropped attributes...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- creating and connecting ---------------------------------------------------------------------------

DTYPES = ["float32", "float64", "int16", "int32", "int64", "uint8", "uint16", "uint32"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_create_from_dense(tmp_path: Path, dtype: str) -> None:
    data = make_data(dtype=dtype, graphs=False)
    data.layers = {"": data.matrix}
    paths = [os.fspath(tmp_path / f"{lib.__name__}.loom") for lib in LIBS]
    for lib, path in zip(LIBS, paths, strict=True):
        lib.create(path, data.matrix, data.ra, data.ca)
    assert_same_files(*paths)
    assert_matches_data(paths[1], data)


@pytest.mark.parametrize("fmt", ["coo", "csr", "csc"])
@pytest.mark.parametrize("dtype", ["float32", "int64", "uint16"])
def test_create_from_sparse(tmp_path: Path, fmt: str, dtype: str) -> None:
    data = make_data(dtype=dtype, graphs=False)
    matrix = sparse.coo_matrix(data.matrix).asformat(fmt)
    data.layers = {"": data.matrix}
    paths = [os.fspath(tmp_path / f"{lib.__name__}.loom") for lib in LIBS]
    for lib, path in zip(LIBS, paths, strict=True):
        lib.create(path, matrix, data.ra, data.ca)
    assert_same_files(*paths)
    assert_matches_data(paths[1], data)


def test_create_walkthrough_examples(tmp_path: Path) -> None:
    """The two create() examples of the API walkthrough, verbatim."""
    for i, matrix in enumerate([np.arange(10000).reshape(100, 100), sparse.coo_matrix((100, 100))]):
        paths = [os.fspath(tmp_path / f"{lib.__name__}{i}.loom") for lib in LIBS]
        for lib, path in zip(LIBS, paths, strict=True):
            lib.create(path, matrix, {"SomeRowAttr": np.arange(100)}, {"SomeColAttr": np.arange(100)})
        assert_same_files(*paths)
        with loomfile.connect(paths[1], "r") as ds:
            dense = matrix.toarray() if sparse.issparse(matrix) else matrix
            assert_same_values(dense, ds[:, :])


def test_create_from_dict_of_layers(tmp_path: Path) -> None:
    data = make_data(graphs=False)
    data.layers["empty_ints"] = sparse.csc_matrix(data.matrix.shape, dtype=np.int16)
    data.layers["coo_floats"] = sparse.coo_matrix(data.layers["unspliced"].astype(np.float32))
    paths = [os.fspath(tmp_path / f"{lib.__name__}.loom") for lib in LIBS]
    for lib, path in zip(LIBS, paths, strict=True):
        lib.create(path, data.layers, data.ra, data.ca)
    assert_same_files(*paths)
    assert_matches_data(paths[1], data)


def test_create_from_connection_managers(pair: Pair, tmp_path: Path) -> None:
    """create() accepts a LayerManager and AttributeManagers (copying a file)."""
    outs = [os.fspath(tmp_path / f"copy_{lib.__name__}.loom") for lib in LIBS]
    with pair.open("r") as (a, b):
        loompy.create(outs[0], a.layers, a.ra, a.ca)
        loomfile.create(outs[1], b.layers, b.ra, b.ca)
    assert_same_files(*outs, graphs=False)


def test_create_from_view_managers(pair: Pair, tmp_path: Path) -> None:
    outs = [os.fspath(tmp_path / f"copy_{lib.__name__}.loom") for lib in LIBS]
    with pair.open("r") as (a, b):
        va, vb = a.view[:, 5:77], b.view[:, 5:77]
        loompy.create(outs[0], va.layers, va.ra, va.ca)
        loomfile.create(outs[1], vb.layers, vb.ra, vb.ca)
    assert_same_files(*outs, graphs=False)
    with loomfile.connect(outs[1], "r") as ds:
        assert_same_values(pair.data.matrix[:, 5:77], ds[:, :])


def test_create_with_file_attrs(tmp_path: Path) -> None:
    data = make_data(graphs=False)
    file_attrs = {"title": "Created", "n_cells": 140, "ratio": 0.5}
    paths = [os.fspath(tmp_path / f"{lib.__name__}.loom") for lib in LIBS]
    for lib, path in zip(LIBS, paths, strict=True):
        lib.create(path, data.matrix, data.ra, data.ca, file_attrs=dict(file_attrs))
    assert_same_files(*paths, graphs=False)
    with loomfile.connect(paths[1], "r") as ds:
        for name, value in file_attrs.items():
            assert ds.attrs[name] == value
        assert ds.attrs.LOOM_SPEC_VERSION == "3.0.0"
        assert "CreationDate" in ds.attrs


@pytest.mark.parametrize("mode", ["r", "r+"])
def test_connect_modes_and_shape(read_pair: Pair, mode: str, tmp_path: Path) -> None:
    # r+ on the shared module files would let loompy write timestamps into them: use copies.
    ref = os.fspath(tmp_path / "ref.loom")
    new = os.fspath(tmp_path / "new.loom")
    shutil.copyfile(read_pair.ref, ref)
    shutil.copyfile(read_pair.new, new)
    a = loompy.connect(ref, mode)
    b = loomfile.connect(new, mode)
    try:
        assert a.mode == b.mode == mode
        assert tuple(a.shape) == b.shape == (N_ROWS, N_COLS)
        assert a.closed is b.closed is False
        assert sorted(a.layers.keys()) == sorted(b.layers.keys())
    finally:
        a.close()
        b.close()
    assert a.closed is b.closed is True


def test_connect_accepts_pathlike(read_pair: Pair) -> None:
    with loomfile.connect(Path(read_pair.new), "r") as b, loompy.connect(read_pair.ref, "r") as a:
        assert tuple(a.shape) == b.shape


def test_read_only_connection_refuses_writes_like_loompy(read_pair: Pair, tmp_path: Path) -> None:
    """In mode 'r', writing the matrix or a layer raises an OSError in both (loompy: h5py/IOError)."""
    new = os.fspath(tmp_path / "new.loom")
    shutil.copyfile(read_pair.new, new)
    ref = os.fspath(tmp_path / "ref.loom")
    shutil.copyfile(read_pair.ref, ref)
    actions: list[Callable[[Any], Any]] = [
        lambda ds: ds.__setitem__((0, 0), 5),
        lambda ds: ds.layers.__setitem__("x", np.zeros((N_ROWS, N_COLS), np.float32)),
    ]
    for action in actions:
        with loompy.connect(ref, "r") as a, pytest.raises(Exception) as ref_exc:
            action(a)
        with loomfile.connect(new, "r") as b, pytest.raises(type(ref_exc.value)):
            action(b)
    with loomfile.connect(new, "r") as b:
        assert_same_values(read_pair.data.matrix, b[:, :])


# --- errors: loomfile's exceptions are instances of what loompy raised --------------------------------

ERROR_CASES: dict[str, Callable[[Any], Any]] = {
    "row_out_of_range": lambda ds: ds[N_ROWS, 0],
    "list_out_of_range": lambda ds: ds[[1, N_ROWS + 5], 0],
    "missing_attr_by_attribute": lambda ds: ds.ra.NoSuchAttr,
    "missing_attr_by_item": lambda ds: ds.ca["NoSuchAttr"],
    "missing_layer": lambda ds: ds.layers["nope"],
    "missing_graph": lambda ds: ds.col_graphs.nope,
    "missing_global": lambda ds: ds.attrs.nope,
    "stack_different_dtypes": lambda ds: ds.ra["Gene", "Selected"],
    "stack_none_exist": lambda ds: ds.ra["Nope1", "Nope2"],
    "attr_wrong_length": lambda ds: ds.ca.__setitem__("x", np.arange(5)),
    "layer_wrong_shape": lambda ds: ds.layers.__setitem__("x", np.zeros((3, 3))),
    "layer_with_nan": lambda ds: ds.layers.__setitem__("x", np.full((N_ROWS, N_COLS), np.nan)),
    "delete_main_layer": lambda ds: ds.layers.__delitem__(""),
    "graph_wrong_shape": lambda ds: ds.col_graphs.__setitem__("g", sparse.eye(5)),
    "scan_without_axis": lambda ds: next(iter(ds.scan())),
    "map_with_a_function": lambda ds: ds.map(np.mean),
    "attr_default_wrong_length": lambda ds: ds.ra.get("nope", np.zeros(3)),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_instances_of_loompys(pair: Pair, case: str) -> None:
    action = ERROR_CASES[case]
    with pair.open() as (a, b):
        with pytest.raises(Exception) as ref_exc:
            action(a)
        with pytest.raises(type(ref_exc.value)):
            action(b)


# --- reading: indexing and slicing ---------------------------------------------------------------------

READ_KEYS: dict[str, tuple[Any, Any]] = {
    "int_int": (5, 7),
    "negint_negint": (-1, -1),
    "negint_int": (-37, 64),
    "npint_npint": (np.int64(63), np.int32(64)),
    "int_fullslice": (64, slice(None)),
    "fullslice_int": (slice(None), 63),
    "fullslice_negint": (slice(None), -1),
    "full": (slice(None), slice(None)),
    "slice_slice": (slice(10, 80), slice(5, 130)),
    "slice_past_end": (slice(90, 500), slice(130, 1000)),
    "step_slices": (slice(None, None, 3), slice(1, None, 7)),
    "step_slice_int": (slice(5, 95, 4), -2),
    "negative_bounds_slices": (slice(-30, -2), slice(-70, None, 2)),
    "empty_slice": (slice(5, 5), slice(None)),
    "sorted_list_rows": ([0, 3, 63, 64, 65, 99], slice(None)),
    "sorted_list_cols": (slice(None), [2, 63, 64, 128, 139]),
    "sorted_array_rows_int_col": (np.array([1, 2, 70]), 5),
    "int_row_sorted_array_cols": (7, np.array([0, 64, 139])),
    "sorted_negative_list": ([-5, -2, -1], slice(0, 10)),
    "step_slice_and_list": (slice(3, 90, 5), [0, 1, 127]),
    "single_element_list": ([64], slice(60, 75)),
    "mask_rows": (ROW_MASK, slice(2, 50)),
    "mask_cols": (slice(None), COL_MASK),
    "mask_rows_negint": (ROW_MASK, -3),
    "int_mask_cols": (99, COL_MASK),
    "all_false_mask": (np.zeros(N_ROWS, bool), slice(None)),
    "empty_list": ([], slice(None)),
}


@pytest.mark.parametrize("layer", ["", "spliced", "unspliced"])
@pytest.mark.parametrize("key", list(READ_KEYS))
def test_read_matches_loompy(read_pair: Pair, key: str, layer: str) -> None:
    k = READ_KEYS[key]
    with read_pair.open("r") as (a, b):
        expected = a.layers[layer][k]
        assert_same_values(expected, b.layers[layer][k], "ds.layers[name][key]")
        assert_same_values(expected, b[layer][k], "ds[name][key]")
        if layer == "":
            assert_same_values(expected, b[k], "ds[key]")
    # and the numpy oracle (one fancy axis at most, so numpy and orthogonal semantics agree)
    dense = read_pair.data.dense_layers()[layer]
    assert_same_values(dense[k], np.asarray(expected).astype(dense.dtype), "numpy oracle")


def test_read_with_attribute_masks(read_pair: Pair) -> None:
    """The walkthrough's mask idioms: ds[ds.ra.Gene == "X", :], ds[(a) | (b), :], ds[:, ds.ca.CellID == id]."""
    with read_pair.open("r") as (a, b):
        assert_same_values(a[a.ra.Gene == "Gene3", :], b[b.ra.Gene == "Gene3", :])
        sel_a = (a.ra.Gene == "Gene3") | (a.ra.Gene == "Gene70")
        sel_b = (b.ra.Gene == "Gene3") | (b.ra.Gene == "Gene70")
        assert sel_b.sum() == 2
        assert_same_values(a[sel_a, :], b[sel_b, :])
        assert_same_values(a[:, a.ca.CellID == "cell_99"], b[:, b.ca.CellID == "cell_99"])
        assert_same_values(a[:, a.ca.ClusterID == 2], b[:, b.ca.ClusterID == 2])


# --- numpy oracle for what loompy (h5py) cannot index ------------------------------------------------------

ORACLE_KEYS: dict[str, tuple[Any, Any]] = {
    # loompy: "Indexing elements must be in increasing order" (h5py fancy-indexing limit)
    "unsorted_rows": ([5, 2, 99, 64], slice(None)),
    "unsorted_cols": (slice(None), [139, 0, 64, 63]),
    "repeated_rows": ([3, 3, 70, 3], slice(0, 20)),
    "repeated_cols": (slice(10, 90), [64, 1, 64, 64]),
    "unsorted_negative": ([-1, 0, -100], 3),
    "unsorted_int_array_cols_int_row": (2, np.array([100, 7, 7, 100])),
    # loompy: "Step must be >= 1" (h5py has no negative steps)
    "negative_step_rows": (slice(None, None, -1), slice(None)),
    "negative_step_both": (slice(80, 10, -7), slice(None, None, -3)),
    # loompy: h5py allows only one fancy axis at a time; loomfile selects the sub-matrix (np.ix_)
    "two_lists": ([2, 0], [1, 1]),
    "two_sorted_lists": ([0, 64, 99], [1, 65, 139]),
    "two_masks": (ROW_MASK, COL_MASK),
    "mask_and_unsorted_list": (ROW_MASK, [139, 3, 64]),
    "unsorted_list_and_mask": ([99, 0, 50, 50], COL_MASK),
    "two_arrays": (np.array([70, 3]), np.array([5, 130, 5])),
    "two_single_element_lists": ([64], [70]),
}


def test_orthogonal_helper_is_np_ix() -> None:
    """The oracle itself: the brief's example, ds[[2,0],[1,1]] == m[np.ix_([2,0],[1,1])]."""
    m = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(orthogonal(m, ([2, 0], [1, 1])), [[9, 9], [1, 1]])
    np.testing.assert_array_equal(orthogonal(m, (1, [3, 0])), [7, 4])
    assert orthogonal(m, (-1, -1)) == 11


@pytest.mark.parametrize("layer", ["", "spliced"])
@pytest.mark.parametrize("key", list(ORACLE_KEYS))
def test_read_beyond_loompy_matches_numpy(read_pair: Pair, key: str, layer: str) -> None:
    k = ORACLE_KEYS[key]
    dense = read_pair.data.dense_layers()[layer]
    with loomfile.connect(read_pair.new, "r") as ds:
        assert_same_values(orthogonal(dense, k), ds.layers[layer][k])
        if layer == "":
            assert_same_values(orthogonal(dense, k), ds[k])


def test_loompy_really_cannot_read_unsorted(read_pair: Pair) -> None:
    """Documents why the oracle tests above do not compare with loompy."""
    with loompy.connect(read_pair.ref, "r") as a:
        with pytest.raises((TypeError, ValueError, IndexError)):
            a[[5, 2], :]
        with pytest.raises((TypeError, ValueError, IndexError)):
            a[::-1, :]


# --- writing: the walkthrough's assignment forms -----------------------------------------------------------


def write_ops(shape: tuple[int, int], dtype: Any) -> dict[str, tuple[tuple[Any, Any], Any]]:
    r = np.random.default_rng(99)
    n, m = shape

    def vals(s: Any) -> np.ndarray:
        return r.integers(1, 50, s).astype(dtype)

    return {
        "full_matrix": ((slice(None), slice(None)), vals((n, m))),
        "element": ((3, 5), 31),
        "row": ((9, slice(None)), vals(m)),
        "column": ((slice(None), 9), vals(n)),
        "negative_element": ((-1, -1), 7),
        "block_across_chunks": ((slice(60, 70), slice(60, 70)), vals((10, 10))),
        "sorted_rows": (([1, 4, 70], slice(None)), vals((3, m))),
        "mask_cols": ((slice(None), COL_MASK), vals((n, int(COL_MASK.sum())))),
        "step_rows_int_col": ((slice(None, None, 5), 2), vals(len(range(0, n, 5)))),
        "scalar_broadcast": ((slice(10, 20), slice(None)), 0),
        "row_broadcast": ((slice(10, 20), slice(None)), vals(m)),
        "int_row_sorted_cols": ((64, [0, 63, 64, 139]), vals(4)),
    }


@pytest.mark.parametrize("layer", ["", "spliced"])
@pytest.mark.parametrize("op", list(write_ops((N_ROWS, N_COLS), np.float32)))
def test_write_matches_loompy(tmp_path: Path, op: str, layer: str) -> None:
    data = make_data(graphs=False)
    pair = make_pair(tmp_path, data, "own")
    dense = data.dense_layers()[layer].copy()
    key, value = write_ops(dense.shape, dense.dtype)[op]
    with pair.open() as (a, b):
        a.layers[layer][key] = value
        if layer == "":
            b[key] = value
        else:
            b[layer][key] = value
        assert_same_values(a.layers[layer][:, :], b.layers[layer][:, :], "in session")
    dense[key] = value
    assert_same_files(pair.ref, pair.new, graphs=False)
    with loomfile.connect(pair.new, "r") as ds:
        assert_same_values(dense, ds.layers[layer][:, :], "numpy oracle")


@pytest.mark.parametrize("dtype", ["float32", "int32", "uint16", "float64"])
def test_walkthrough_write_sequence(tmp_path: Path, dtype: str) -> None:
    """ds[:, :] = newdata; ds[3, 5] = 31; ds[9, :] = rowdata; ds[:, 9] = coldata, in one session."""
    data = make_data(dtype=dtype, graphs=False)
    pair = make_pair(tmp_path, data, "loompy")  # loomfile modifies loompy's file
    r = np.random.default_rng(5)
    newdata = r.integers(0, 100, data.matrix.shape).astype(dtype)
    rowdata = r.integers(0, 100, N_COLS).astype(dtype)
    coldata = r.integers(0, 100, N_ROWS).astype(dtype)
    expected = newdata.copy()
    expected[3, 5] = 31
    expected[9, :] = rowdata
    expected[:, 9] = coldata
    with pair.open() as (a, b):
        for ds in (a, b):
            ds[:, :] = newdata
            ds[3, 5] = 31
            ds[9, :] = rowdata
            ds[:, 9] = coldata
        assert_same_values(a[:, :], b[:, :])
    assert_same_files(pair.ref, pair.new, graphs=False)
    with loomfile.connect(pair.new, "r") as ds:
        assert_same_values(expected, ds[:, :])


def test_float_values_into_integer_layer(pair: Pair) -> None:
    # loompy (through HDF5) silently truncates 2.7 to 2 in an integer layer; loomfile refuses
    # fractional values (a documented difference) and writes integral floats exactly.
    fractional = np.array([2.7, -2.7, 2.5, 3.5, -0.5, 0.99])
    integral = np.array([2.0, -3.0, 7.0, 0.0, 1.0, 5.0])
    with pair.open() as (a, b):
        before = b.layers["spliced"][:, :]
        with pytest.raises(loomfile.LoomValueError, match="fractional"):
            b.layers["spliced"][0, :6] = fractional
        assert_same_values(before, b.layers["spliced"][:, :], "unchanged after a refused write")
        for ds in (a, b):
            ds.layers["spliced"][0, :6] = integral
        assert_same_values(a.layers["spliced"][0, :6], b.layers["spliced"][0, :6])
    with loomfile.connect(pair.new, "r") as b:
        assert_same_values(integral.astype(np.int32), b.layers["spliced"][0, :6], "numpy oracle")


OUT_OF_RANGE: dict[str, tuple[str, np.ndarray]] = {
    "uint16_negative_and_too_big": ("uint16", np.array([-1, 70000, 65536, -70000])),
    "int8_too_big": ("int8", np.array([200, -200, 128, -129])),
    "int32_from_huge_floats": ("int32", np.array([1e12, -1e12, 3e9, -3e9])),
}


@pytest.mark.parametrize("how", ["setitem", "add_columns"])
@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_out_of_range_integer_writes_are_refused(tmp_path: Path, case: str, how: str) -> None:
    # loompy/HDF5 silently clip (70000 -> 65535 in uint16) and numpy's astype wraps; both change the
    # user's data, so loomfile refuses the write and leaves the file as it was.
    dtype, values = OUT_OF_RANGE[case]
    path = os.fspath(tmp_path / "lf.loom")
    loomfile.create(path, np.zeros((3, 4), dtype), {"R": np.arange(3)}, {"C": np.arange(4)})
    with loomfile.connect(path) as ds:
        with pytest.raises(loomfile.LoomValueError, match="do not fit"):
            if how == "setitem":
                ds[1, :] = values
            else:
                ds.add_columns(np.tile(values, (3, 1)), {"C": np.arange(4, 8)})
        assert ds.shape == (3, 4)
        assert not ds[:, :].any()
        assert_same_values(np.arange(4), ds.ca.C, "column attributes unchanged")


def test_out_of_range_scalar_write_is_refused(tmp_path: Path) -> None:
    paths = [os.fspath(tmp_path / f"{lib.__name__}.loom") for lib in LIBS]
    for lib, path in zip(LIBS, paths, strict=True):
        lib.create(path, np.zeros((3, 4), np.int8), {}, {})
    with loompy.connect(paths[0]) as a, pytest.raises(OverflowError):
        a[1, :] = 300
    with loomfile.connect(paths[1]) as b:
        with pytest.raises((OverflowError, ValueError)):
            b[1, :] = 300
        assert not b[:, :].any()


WRITE_ORACLE_KEYS: dict[str, tuple[Any, Any]] = {
    # loompy/h5py: "Indexing elements must be in increasing order"
    "unsorted_rows": ([70, 2, 64], slice(None)),
    "unsorted_cols": (slice(5, 60), [139, 0, 63, 64]),
    # loompy/h5py: only one fancy axis per selection
    "two_lists": ([99, 0, 64], [1, 65, 3]),
    "two_masks": (ROW_MASK, COL_MASK),
    "negative_step": (slice(None, None, -2), slice(10, 0, -1)),
}


@pytest.mark.parametrize("key", list(WRITE_ORACLE_KEYS))
def test_write_beyond_loompy_matches_numpy(tmp_path: Path, key: str) -> None:
    data = make_data(graphs=False)
    path = os.fspath(tmp_path / "new.loom")
    populate(loomfile, path, data)
    k = WRITE_ORACLE_KEYS[key]
    expected = data.matrix.copy()
    r_ix, _ = axis_indices(k[0], N_ROWS)
    c_ix, _ = axis_indices(k[1], N_COLS)
    values = np.random.default_rng(3).integers(100, 200, (r_ix.size, c_ix.size)).astype(np.float32)
    expected[np.ix_(r_ix, c_ix)] = values
    with loomfile.connect(path) as ds:
        ds[k] = values
        assert_same_values(expected, ds[:, :])
    with loomfile.connect(path, "r") as ds:
        assert_same_values(expected, ds[:, :])


def test_write_repeated_indices_last_value_wins(tmp_path: Path) -> None:
    """Repeated positions in a write: the last value wins, as in numpy (loompy/h5py cannot do this)."""
    data = make_data(graphs=False)
    path = os.fspath(tmp_path / "new.loom")
    populate(loomfile, path, data)
    expected = data.matrix.copy()
    values = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32)
    expected[np.ix_([7, 3, 7], [10, 80])] = values
    with loomfile.connect(path) as ds:
        ds[[7, 3, 7], [10, 80]] = values
    with loomfile.connect(path, "r") as ds:
        assert_same_values(expected, ds[:, :])
        assert ds[7, 10] == 5 and ds[7, 80] == 6


# --- layers --------------------------------------------------------------------------------------------------


def test_layers_keys_set_and_delete(pair: Pair) -> None:
    r = np.random.default_rng(11)
    dense64 = r.random((N_ROWS, N_COLS))
    sparse_ints = sparse.random(N_ROWS, N_COLS, density=0.1, format="csr", random_state=3, dtype=np.float64)
    sparse_ints = (sparse_ints * 100).astype(np.int64)
    with pair.open() as (a, b):
        assert sorted(a.layers.keys()) == sorted(b.layers.keys())
        assert "" in a.layers and "" in b.layers and "spliced" in b.layers
        assert len(a.layers) == len(b.layers)
        for ds in (a, b):
            ds.layers["dense64"] = dense64
            ds["sparse_ints"] = sparse_ints  # the connection's shortcut
            ds.layers["coo"] = sparse.coo_matrix(dense64.astype(np.float32))
            ds["empty_floats"] = "float32"
            ds["empty_ints"] = "int64"
        assert_same_layers(a.layers, b.layers)
        assert b.layers["empty_floats"].dtype == a.layers["empty_floats"].dtype == np.float32
        assert b.layers["empty_ints"].dtype == a.layers["empty_ints"].dtype == np.int64
        assert not b["empty_ints"][:, :].any()
        assert_same_values(sparse_ints.toarray(), b["sparse_ints"][:, :])
        # replace a layer, and the main matrix, with same-shape data
        for ds in (a, b):
            ds.layers["spliced"] = dense64.astype(np.float32)
            ds.layers[""] = (dense64 * 10).astype(np.int32)
        assert_same_layers(a.layers, b.layers)
        for ds in (a, b):
            del ds.layers["dense64"]
            del ds.layers.coo
        # loompy bug: deleting a layer does not remove it from its in-memory key list, so compare
        # loomfile's keys with a fresh loompy connection below instead of with this one.
        assert "dense64" not in b.layers and "coo" not in b.layers
        assert sorted(b.layers.keys()) == sorted(
            ["", "spliced", "unspliced", "sparse_ints", "empty_floats", "empty_ints"]
        )
    with loompy.connect(pair.ref, "r") as a, loomfile.connect(pair.new, "r") as b:
        assert sorted(a.layers.keys()) == sorted(b.layers.keys())
    assert_same_files(pair.ref, pair.new)


def test_layer_iteration_and_items(read_pair: Pair) -> None:
    with read_pair.open("r") as (a, b):
        assert sorted(a.layers) == sorted(b.layers)
        items_a = {k: v[:, :] for k, v in a.layers.items()}
        items_b = {k: v[:, :] for k, v in b.layers.items()}
        assert sorted(items_a) == sorted(items_b)
        for k in items_a:
            assert_same_values(items_a[k], items_b[k], k)
        assert tuple(a.layers["spliced"].shape) == tuple(b.layers["spliced"].shape)
        assert a.layers["spliced"].dtype == b.layers["spliced"].dtype


def test_delete_layer_on_connection(tmp_path: Path) -> None:
    """``del ds["layer"]`` as the walkthrough shows (loompy's LoomConnection has no __delitem__)."""
    data = make_data(graphs=False)
    path = os.fspath(tmp_path / "new.loom")
    populate(loomfile, path, data)
    with loomfile.connect(path) as ds:
        del ds["spliced"]
        assert "spliced" not in ds.layers
    with loomfile.connect(path, "r") as ds:
        assert sorted(ds.layers.keys()) == ["", "unspliced"]


SPARSE_SELECTIONS: dict[str, tuple[Any, Any]] = {
    "all": (None, None),
    "int_arrays": (np.array([1, 5, 63, 64, 99]), np.array([0, 64, 65, 70, 139])),
    "masks": (ROW_MASK, COL_MASK),
    "rows_only": (np.array([0, 99]), None),
    "cols_only": (None, COL_MASK),
}


@pytest.mark.parametrize("layer", ["", "spliced", "unspliced"])
@pytest.mark.parametrize("sel", list(SPARSE_SELECTIONS))
def test_sparse_matches_loompy(read_pair: Pair, sel: str, layer: str) -> None:
    rows, cols = SPARSE_SELECTIONS[sel]
    with read_pair.open("r") as (a, b):
        expected = a.layers[layer].sparse(rows, cols)
        got = b.layers[layer].sparse(rows, cols)
        assert isinstance(got, sparse.coo_matrix)
        assert got.shape == expected.shape
        # loompy's sparse() returns float64 data whatever the layer's dtype: compare values only
        np.testing.assert_array_equal(got.toarray(), expected.toarray())
        got2 = b.sparse(rows, cols, layer=layer or None)
        np.testing.assert_array_equal(got2.toarray(), a.sparse(rows, cols, layer=layer or None).toarray())
    dense = read_pair.data.dense_layers()[layer]
    r_ix = np.arange(N_ROWS) if rows is None else axis_indices(rows, N_ROWS)[0]
    c_ix = np.arange(N_COLS) if cols is None else axis_indices(cols, N_COLS)[0]
    np.testing.assert_array_equal(got.toarray(), dense[np.ix_(r_ix, c_ix)])


def test_sparse_unsorted_columns_matches_numpy(read_pair: Pair) -> None:
    """loompy bug: sparse(cols=unsorted) scans in file order, so columns come back sorted by band."""
    rows, cols = np.array([99, 0, 50, 50]), np.array([130, 2, 64, 2])
    dense = read_pair.data.dense_layers()["spliced"]
    with loomfile.connect(read_pair.new, "r") as b:
        got = b.layers["spliced"].sparse(rows, cols)
    np.testing.assert_array_equal(got.toarray(), dense[np.ix_(rows, cols)])


# --- global attributes ------------------------------------------------------------------------------------------


def test_global_attrs(pair: Pair) -> None:
    with pair.open() as (a, b):
        assert_same_globals(a.attrs, b.attrs)
        assert a.attrs.title == "A differential dataset"
        assert_same_values(a.attrs.title, b.attrs.title)
        assert_same_values(a.attrs["n_samples"], b.attrs["n_samples"])
        assert_same_values(a.attrs.ratio, b.attrs.ratio)
        for ds in (a, b):
            ds.attrs.title = "New title"
            ds.attrs["description"] = "Fancy dataset"
            ds.attrs.count = 42
            ds.attrs.vector = np.arange(5)
            ds.attrs.matrix2d = np.arange(6).reshape(2, 3) * 0.5
        assert_same_values(a.attrs["title"], b.attrs["title"])
        assert b.attrs["title"] == "New title"
        for name in ("description", "count", "vector", "matrix2d"):
            assert_same_values(a.attrs[name], b.attrs[name], name)
            assert (name in a.attrs) == (name in b.attrs) is True
        assert ("nope" in a.attrs) == ("nope" in b.attrs) is False
        assert a.attrs.get("nope") is None and b.attrs.get("nope") is None
        assert a.attrs.get("nope", "dflt") == b.attrs.get("nope", "dflt") == "dflt"
        assert_same_values(a.attrs.get("count"), b.attrs.get("count"))
        assert_same_globals(a.attrs, b.attrs)
        assert sorted(set(k for k, _ in a.attrs.items()) - IGNORED_GLOBALS) == sorted(
            set(k for k, _ in b.attrs.items()) - IGNORED_GLOBALS
        )
        for ds in (a, b):
            del ds.attrs.title
        assert ("title" in a.attrs) == ("title" in b.attrs) is False
        assert_same_globals(a.attrs, b.attrs)
    assert_same_files(pair.ref, pair.new)


def test_global_attrs_delete_by_item(tmp_path: Path) -> None:
    """``del ds.attrs["x"]`` (loompy's GlobalAttributeManager has no __delitem__: only del ds.attrs.x)."""
    path = os.fspath(tmp_path / "new.loom")
    populate(loomfile, path, make_data(graphs=False))
    with loomfile.connect(path) as ds:
        del ds.attrs["title"]
        assert "title" not in ds.attrs
    with loomfile.connect(path, "r") as ds:
        assert "title" not in ds.attrs.keys()
        assert ds.attrs.n_samples == 3


GLOBAL_VALUES: dict[str, Any] = {
    "py_int": 42,
    "py_float": 0.125,
    "py_bool": True,  # stored as uint8 by loompy
    "np_int32": np.int32(5),
    "np_float32": np.float32(1.5),
    "uint8_array": np.array([1, 2], np.uint8),
    "float_list": [1.5, 2.5],
    "int_matrix": np.arange(6).reshape(2, 3),
    "text": "plain ascii",
}


@pytest.mark.parametrize("name", list(GLOBAL_VALUES))
def test_global_attr_value_types(pair: Pair, name: str) -> None:
    value = GLOBAL_VALUES[name]
    with pair.open() as (a, b):
        for ds in (a, b):
            ds.attrs[name] = value
        assert_same_values(a.attrs[name], b.attrs[name], "in session")
        assert np.ndim(b.attrs[name]) == np.ndim(value)
    with loompy.connect(pair.ref, "r") as a, loomfile.connect(pair.new, "r") as b:
        assert_same_values(a.attrs[name], b.attrs[name], "reopened")
        np.testing.assert_array_equal(np.asarray(b.attrs[name]), np.asarray(value))


def test_global_attrs_non_ascii_and_string_arrays(tmp_path: Path) -> None:
    """numpy/Python oracle. loompy bugs: non-ASCII is stripped on read ("Müller" -> "Mller"), and a
    string *array* as a global attribute crashes (GlobalAttributeManager uses an unset ``self.ds``)."""
    path = os.fspath(tmp_path / "new.loom")
    populate(loomfile, path, make_data(graphs=False))
    names = np.array(["Müller", "日本語", "🧬", "A&amp;B"], dtype=object)
    with loomfile.connect(path) as ds:
        ds.attrs.title = "Tëst 日本"
        ds.attrs.names = names
    with loomfile.connect(path, "r") as ds:
        assert ds.attrs.title == "Tëst 日本"
        assert_same_values(names, ds.attrs.names)


def test_loompy_written_non_ascii_reads_exactly(tmp_path: Path) -> None:
    """loompy writes UTF-8 but strips non-ASCII on read (documented loompy bug): loomfile reads it all."""
    data = make_data(graphs=False)
    data.ra["Gene"] = data.ra["Gene"].copy()
    data.ra["Gene"][:3] = ["Müller", "S6Kβ", "A&amp;B"]
    path = os.fspath(tmp_path / "ref.loom")
    loompy.create(path, data.matrix, data.ra, data.ca)
    with loomfile.connect(path, "r") as ds:
        assert_same_values(data.ra["Gene"], ds.ra.Gene)
    with loompy.connect(path, "r") as a:
        assert a.ra.Gene[0] == "Mller"  # the bug itself, so this test notices if loompy changes


# --- row and column attributes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_attributes_read(read_pair: Pair, axis: int) -> None:
    with read_pair.open("r") as (a, b):
        ma, mb = (a.ra, b.ra) if axis == 0 else (a.ca, b.ca)
        assert ma.keys() == mb.keys()  # file order
        assert len(ma) == len(mb)
        assert sorted(ma) == sorted(mb)
        assert_same_attrs(ma, mb)
        for name in ma.keys():
            assert_same_values(ma[name], getattr(mb, name), f"attribute access {name}")
            assert isinstance(mb[name], np.ndarray)
        assert ("nope" in ma) == ("nope" in mb) is False
        items_b = dict(mb.items())
        for name, value in ma.items():
            assert_same_values(value, items_b[name])
        # get: existing, and missing with a default of the right length
        n = (N_ROWS, N_COLS)[axis]
        first = ma.keys()[0]
        assert_same_values(ma.get(first, np.zeros(n)), mb.get(first, np.zeros(n)))
        assert_same_values(ma.get("nope", np.arange(n)), mb.get("nope", np.arange(n)))
        # row/col_attrs aliases
        alias_a, alias_b = (a.row_attrs, b.row_attrs) if axis == 0 else (a.col_attrs, b.col_attrs)
        assert_same_attrs(alias_a, alias_b)
    data = read_pair.data.ra if axis == 0 else read_pair.data.ca
    with loomfile.connect(read_pair.new, "r") as ds:
        for name, values in data.items():
            assert_same_values(values, (ds.ra if axis == 0 else ds.ca)[name], f"numpy oracle {name}")


def test_multidimensional_attributes(read_pair: Pair) -> None:
    with read_pair.open("r") as (a, b):
        assert b.ca.PCA.shape == a.ca.PCA.shape == (N_COLS, 4)
        assert b.ra.Embedding.shape == (N_ROWS, 2)
        assert_same_values(a.ca.PCA, b.ca.PCA)
        assert_same_values(a.ra["Embedding"], b.ra["Embedding"])


STACKS: dict[str, tuple[int, tuple[str, ...]]] = {
    "two_strings": (0, ("Gene", "Accession")),
    "two_numbers": (1, ("Total", "Total")),
    "one_missing_first": (0, ("NoSuchName", "Gene")),
    "one_missing_last": (1, ("ClusterID", "UMAP")),
    "one_only": (1, ("Barcode",)),
    "two_floats": (0, ("Score", "Score")),
}


@pytest.mark.parametrize("case", list(STACKS))
def test_attribute_stacking(read_pair: Pair, case: str) -> None:
    axis, names = STACKS[case]
    with read_pair.open("r") as (a, b):
        ma, mb = (a.ra, b.ra) if axis == 0 else (a.ca, b.ca)
        expected = ma[names]
        assert_same_values(expected, mb[names])
    data = read_pair.data.ra if axis == 0 else read_pair.data.ca
    found = [data[n] for n in names if n in data]
    oracle = found[0] if len(found) == 1 else np.column_stack(found)
    assert_same_values(oracle, np.asarray(expected).astype(oracle.dtype))


ATTR_SLICES: dict[str, Any] = {
    "sorted_array": np.array([0, 5, 63, 64, 99]),
    "unsorted_array": np.array([99, 3, 3, 50]),
    "mask": ROW_MASK,
    "slice": slice(10, 40),
    "step_slice": slice(None, None, 7),
}


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("sel", list(ATTR_SLICES))
def test_attribute_slicing(read_pair: Pair, axis: int, sel: str) -> None:
    key = ATTR_SLICES[sel]
    if axis == 1 and isinstance(key, np.ndarray) and key.dtype == bool:
        key = COL_MASK
    with read_pair.open("r") as (a, b):
        ma, mb = (a.ra, b.ra) if axis == 0 else (a.ca, b.ca)
        sa, sb = ma[key], mb[key]
        assert_same_attrs(sa, sb)
        for name in sb.keys():
            assert_same_values(getattr(sa, name), getattr(sb, name))


@pytest.mark.parametrize("index", [1, -1, 64])
def test_attribute_int_index_drops_axis_like_loompy(read_pair: Pair, index: int) -> None:
    with read_pair.open("r") as (a, b):
        sa, sb = a.ra[index], b.ra[index]
        for name in a.ra.keys():
            assert_same_values(read_pair.data.ra[name][index], sa[name], f"loompy {name}")
            assert_same_values(sa[name], sb[name], name)


@pytest.mark.parametrize("axis", [0, 1])
def test_attributes_set_and_delete(pair: Pair, axis: int) -> None:
    n = (N_ROWS, N_COLS)[axis]
    r = np.random.default_rng(4)
    new_values: dict[str, Any] = {
        "FromList": list(range(n)),
        "Strings": [f"s{i}" for i in range(n)],
        "Unicode": np.array([f"u{i}" for i in range(n)]),  # numpy '<U' dtype
        "Flags": np.arange(n) % 2 == 0,  # bool: stored as uint8 by loompy
        "Float32": r.random(n).astype(np.float32),
        "Int16": r.integers(-5, 5, n).astype(np.int16),
        "TwoD": r.normal(size=(n, 3)),
        "WithNaN": np.where(np.arange(n) % 7 == 0, np.nan, r.random(n)),
        "Float16": np.arange(n).astype(np.float16),
    }
    with pair.open() as (a, b):
        for ds in (a, b):
            m = ds.ra if axis == 0 else ds.ca
            for i, (name, value) in enumerate(new_values.items()):
                if i % 2:
                    setattr(m, name, value)
                else:
                    m[name] = value
            m["Gene" if axis == 0 else "CellID"] = np.array([f"x{i}" for i in range(n)], dtype=object)
        ma, mb = (a.ra, b.ra) if axis == 0 else (a.ca, b.ca)
        assert_same_attrs(ma, mb)
        assert mb.Flags.dtype == np.uint8
        for ds in (a, b):
            m = ds.ra if axis == 0 else ds.ca
            del m["FromList"]
            delattr(m, "TwoD")
        assert_same_attrs(ma, mb)
        assert "TwoD" not in mb and "FromList" not in mb.keys()
    assert_same_files(pair.ref, pair.new)
    with loomfile.connect(pair.new, "r") as ds:
        m = ds.ra if axis == 0 else ds.ca
        assert_same_values(np.array(new_values["Strings"], dtype=object), m.Strings)
        assert_same_values(new_values["Float32"], m.Float32)
        assert_same_values(new_values["Flags"].astype(np.uint8), m.Flags)


def test_bytes_attribute_values_are_decoded(tmp_path: Path) -> None:
    """Python oracle. loompy bug: a bytes (dtype 'S') attribute is stored as the repr "b'abc'"."""
    path = os.fspath(tmp_path / "new.loom")
    loomfile.create(path, np.zeros((3, 4)), {"B": np.array([b"abc", b"de", b"f"])}, {"C": np.arange(4)})
    with loomfile.connect(path, "r") as ds:
        assert list(ds.ra.B) == ["abc", "de", "f"]


def test_mutating_returned_attribute_does_not_change_file(pair: Pair) -> None:
    """Walkthrough: ``ds.ca.ClusterNames[10] = "banana"`` does not change the attribute on disk."""
    with pair.open() as (a, b):
        for ds in (a, b):
            values = ds.ca.ClusterID
            values[10] = 999
            names = ds.ca["CellID"]
            names[10] = "banana"
            ds.ra.Embedding[0, 0] = -1.0
    assert_same_files(pair.ref, pair.new)
    with loomfile.connect(pair.new, "r") as ds:
        assert_same_values(pair.data.ca["ClusterID"], ds.ca.ClusterID)
        assert ds.ca.CellID[10] == "cell_10"


def test_mutating_returned_attribute_keeps_session_values(read_pair: Pair) -> None:
    """numpy oracle. loompy bug: it returns its cached array, so mutating it changes later reads in
    the same session (though not the file). loomfile returns a fresh array on every read."""
    with loomfile.connect(read_pair.new, "r") as ds:
        values = ds.ca.ClusterID
        values[:] = -1
        assert_same_values(read_pair.data.ca["ClusterID"], ds.ca.ClusterID)
        pca = ds.ca["PCA"]
        pca *= 0
        assert_same_values(read_pair.data.ca["PCA"], ds.ca.PCA)


# --- graphs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("fmt", ["coo", "csr", "csc", "dense"])
def test_graphs_set_get_delete(pair: Pair, axis: int, fmt: str) -> None:
    n = (N_ROWS, N_COLS)[axis]
    g = _graph(np.random.default_rng(8), n, 3)
    value: Any = g.toarray() if fmt == "dense" else g.asformat(fmt)
    with pair.open() as (a, b):
        ga, gb = (a.row_graphs, b.row_graphs) if axis == 0 else (a.col_graphs, b.col_graphs)
        assert_same_graphs(ga, gb)
        for m in (ga, gb):
            m["New"] = value
            m.Other = value
        assert_same_graphs(ga, gb)
        assert isinstance(gb.New, sparse.coo_matrix)
        np.testing.assert_array_equal(gb["New"].toarray(), g.toarray())
        assert len(ga) == len(gb) and ("New" in ga) == ("New" in gb) is True
        for m in (ga, gb):
            del m["New"]
            delattr(m, "Other")
        assert_same_graphs(ga, gb)
        assert "New" not in gb.keys()
    assert_same_files(pair.ref, pair.new)


def test_graphs_read(read_pair: Pair) -> None:
    with read_pair.open("r") as (a, b):
        assert_same_graphs(a.row_graphs, b.row_graphs)
        assert_same_graphs(a.col_graphs, b.col_graphs)
        np.testing.assert_array_equal(b.col_graphs.KNN.toarray(), read_pair.data.col_graphs["KNN"].toarray())
        g_a, g_b = a.col_graphs["KNN"], b.col_graphs["KNN"]
        assert g_a.nnz == g_b.nnz
        np.testing.assert_array_equal(np.sort(g_a.data), np.sort(g_b.data))


def test_graph_alternative_names(read_pair: Pair) -> None:
    """A tuple of names returns the first graph that exists (loompy's GraphManager)."""
    with read_pair.open("r") as (a, b):
        np.testing.assert_array_equal(
            b.col_graphs["Nope", "KNN"].toarray(), a.col_graphs["Nope", "KNN"].toarray()
        )
        np.testing.assert_array_equal(
            b.col_graphs["MKNN", "KNN"].toarray(), a.col_graphs["MKNN", "KNN"].toarray()
        )
        np.testing.assert_array_equal(
            b.col_graphs["MKNN", "KNN"].toarray(), read_pair.data.col_graphs["MKNN"].toarray()
        )


# --- views ----------------------------------------------------------------------------------------------------------

# Only sorted selections: loompy renumbers a view's graph vertices in sorted order (documented bug).
VIEW_KEYS: dict[str, tuple[Any, Any]] = {
    "cols_10_20": (slice(None), slice(10, 20)),
    "row_mask": (ROW_MASK, slice(None)),
    "col_mask": (slice(None), COL_MASK),
    "sorted_rows_and_slice": (np.array([0, 5, 63, 64, 99]), slice(5, 100)),
    "step_rows": (slice(0, 80, 3), slice(None)),
    "sorted_cols": (slice(20, 90), np.array([1, 2, 64, 139])),
}


@pytest.mark.parametrize("key", list(VIEW_KEYS))
def test_views_match_loompy(read_pair: Pair, key: str) -> None:
    k = VIEW_KEYS[key]
    with read_pair.open("r") as (a, b):
        va, vb = a.view[k], b.view[k]
        assert_same_content(va, vb)
        assert_same_values(va[:, :], vb[:, :])
        assert_same_values(va["spliced"][:, :], vb["spliced"][:, :])
        assert_same_values(va[2:7, 1], vb[2:7, 1])
        assert_same_globals(va.attrs, vb.attrs)
    dense = read_pair.data.matrix
    assert_same_values(orthogonal(dense, k), vb[:, :], "numpy oracle")


VIEW_READ_KEYS: dict[str, tuple[Any, Any]] = {
    # In memory loompy indexes with numpy, so (one fancy axis at a time) even these agree
    "unsorted_repeated_rows": ([5, 2, 2, 30], slice(None)),
    "unsorted_cols": (slice(1, 20), [9, 0, 9]),
    "negative_step": (slice(None, None, -1), 3),
    "negative_ints": (-1, -2),
    "mask_rows": (np.arange(40) % 4 == 0, slice(None, None, 2)),
}


@pytest.mark.parametrize("key", list(VIEW_READ_KEYS))
def test_indexing_a_view_matches_loompy(read_pair: Pair, key: str) -> None:
    k = VIEW_READ_KEYS[key]
    with read_pair.open("r") as (a, b):
        va, vb = a.view[10:50, 30:130], b.view[10:50, 30:130]
    assert_same_values(va[k], vb[k])
    assert_same_values(va["spliced"][k], vb["spliced"][k])
    assert_same_values(va.layers["unspliced"][k], vb.layers["unspliced"][k])
    assert_same_values(read_pair.data.matrix[10:50, 30:130][k], vb[k], "numpy oracle")


def test_view_of_view(read_pair: Pair) -> None:
    with read_pair.open("r") as (a, b):
        va, vb = a.view[ROW_MASK, 10:120], b.view[ROW_MASK, 10:120]
        wa, wb = va.view[2:20, np.array([0, 5, 50, 60])], vb.view[2:20, np.array([0, 5, 50, 60])]
        assert_same_content(wa, wb)
        xa, xb = wa.view[:, 1:3], wb.view[:, 1:3]
        assert_same_content(xa, xb)
    rows = np.flatnonzero(ROW_MASK)[2:20]
    cols = np.arange(10, 120)[[0, 5, 50, 60]]
    assert_same_values(read_pair.data.matrix[np.ix_(rows, cols)], wb[:, :], "numpy oracle")
    assert_same_values(read_pair.data.ca["CellID"][cols], wb.ca.CellID)


def test_view_survives_close(read_pair: Pair) -> None:
    with read_pair.open("r") as (a, b):
        va, vb = a.view[:30, 40:90], b.view[:30, 40:90]
    assert_same_content(va, vb)


def test_view_unsorted_selection_matches_numpy(read_pair: Pair) -> None:
    """numpy oracle. loompy bugs: unsorted selections fail in h5py, and graph vertices are renumbered
    in sorted order rather than in the selection's order."""
    rows = np.array([99, 3, 64, 3, 10])
    cols = np.array([130, 0, 64, 65, 1, 1])
    data = read_pair.data
    with loomfile.connect(read_pair.new, "r") as ds:
        v = ds.view[rows, cols]
    assert v.shape == (rows.size, cols.size)
    assert_same_values(data.matrix[np.ix_(rows, cols)], v[:, :])
    assert_same_values(data.dense_layers()["spliced"][np.ix_(rows, cols)], v.layers["spliced"][:, :])
    for name, values in data.ra.items():
        assert_same_values(values[rows], v.ra[name], name)
    for name, values in data.ca.items():
        assert_same_values(values[cols], v.ca[name], name)
    for name, g in data.row_graphs.items():
        np.testing.assert_array_equal(v.row_graphs[name].toarray(), g.toarray()[np.ix_(rows, rows)])
    for name, g in data.col_graphs.items():
        np.testing.assert_array_equal(v.col_graphs[name].toarray(), g.toarray()[np.ix_(cols, cols)])


def test_view_sorted_selection_graphs_match_numpy(read_pair: Pair) -> None:
    cols = np.flatnonzero(COL_MASK)
    with loomfile.connect(read_pair.new, "r") as ds:
        v = ds.view[:, COL_MASK]
    for name, g in read_pair.data.col_graphs.items():
        np.testing.assert_array_equal(v.col_graphs[name].toarray(), g.toarray()[np.ix_(cols, cols)])


@pytest.mark.parametrize("key", ["cols_10_20", "row_mask", "sorted_cols"])
def test_layer_manager_slicing(read_pair: Pair, key: str) -> None:
    """``ds.layers[rows, cols]`` slices every layer into memory."""
    k = VIEW_KEYS[key]
    with read_pair.open("r") as (a, b):
        la, lb = a.layers[k], b.layers[k]
        assert_same_layers(la, lb)
    for name, dense in read_pair.data.dense_layers().items():
        assert_same_values(orthogonal(dense, k), lb[name][:, :], name)


def test_view_attributes_are_in_memory(read_pair: Pair) -> None:
    with read_pair.open("r") as (a, b):
        va, vb = a.view[:, 10:20], b.view[:, 10:20]
        for v in (va, vb):
            v.ca.New = np.arange(10)
            v.ca["Other"] = np.array([f"o{i}" for i in range(10)], dtype=object)
        assert_same_attrs(va.ca, vb.ca)
        assert "New" not in b.ca  # the file is untouched (and open read-only)


def test_view_permute_matches_numpy(read_pair: Pair) -> None:
    """numpy oracle. loompy bug: LoomView.permute calls LayerManager.values(), which does not exist."""
    rows = np.arange(5, 45)
    cols = np.flatnonzero(COL_MASK)
    ordering = np.random.default_rng(9).permutation(cols.size)
    data = read_pair.data
    with loomfile.connect(read_pair.new, "r") as ds:
        v = ds.view[5:45, COL_MASK]
    v.permute(ordering, axis=1)
    assert_same_values(data.matrix[np.ix_(rows, cols[ordering])], v[:, :])
    assert_same_values(data.dense_layers()["spliced"][np.ix_(rows, cols[ordering])], v["spliced"][:, :])
    for name, values in data.ca.items():
        assert_same_values(values[cols[ordering]], v.ca[name], name)
    for name, g in data.col_graphs.items():
        sel = cols[ordering]
        np.testing.assert_array_equal(v.col_graphs[name].toarray(), g.toarray()[np.ix_(sel, sel)])
    v.permute(np.arange(40)[::-1], axis=0)
    assert_same_values(data.matrix[np.ix_(rows[::-1], cols[ordering])], v[:, :])
    assert_same_values(data.ra["Gene"][rows[::-1]], v.ra.Gene)


# --- scan -------------------------------------------------------------------------------------------------------------


def _scan_args(axis: int, variant: str) -> dict[str, Any]:
    n = (N_ROWS, N_COLS)[axis]
    if variant == "default":
        return {}
    if variant == "items_sorted":
        return {"items": np.array([0, 5, 63, 64, 65, n - 1])}
    if variant == "items_mask":
        return {"items": ROW_MASK if axis == 0 else COL_MASK}
    if variant == "items_from_int":
        return {"items": 70} if axis == 1 else {}
    if variant == "main_layer_only":
        return {"layers": [""]}
    if variant == "some_layers":
        return {"layers": ["", "unspliced"]}
    if variant == "key":
        return {"key": "Accession" if axis == 1 else "Barcode"}
    if variant == "batch_17":
        return {"batch_size": 17}
    if variant == "batch_17_items_key":
        return {
            "batch_size": 17,
            "items": np.array([1, 2, 16, 17, 18, 50, n - 1]),
            "key": "Accession" if axis == 1 else "Barcode",
        }
    if variant == "layers_empty_string":
        return {"layers": ""}
    if variant == "batch_bigger_than_file":
        return {"batch_size": 1000}
    if variant == "batch_1_two_items":
        return {"batch_size": 1, "items": np.array([3, 64])}
    if variant == "no_graphs":
        return {"what": ["col_attrs", "row_attrs", "layers"]}
    raise AssertionError(variant)


SCAN_VARIANTS = [
    "default",
    "items_sorted",
    "items_mask",
    "items_from_int",
    "main_layer_only",
    "some_layers",
    "key",
    "batch_17",
    "batch_17_items_key",
    "layers_empty_string",
    "batch_bigger_than_file",
    "batch_1_two_items",
    "no_graphs",
]


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("variant", SCAN_VARIANTS)
def test_scan_matches_loompy(read_pair: Pair, axis: int, variant: str) -> None:
    kwargs = _scan_args(axis, variant)
    keyed = "key" in kwargs
    with read_pair.open("r") as (a, b):
        got_a = list(a.scan(axis=axis, **kwargs))
        got_b = list(b.scan(axis=axis, **kwargs))
        assert len(got_a) == len(got_b) > 0
        seen = []
        for (ix_a, sel_a, va), (ix_b, sel_b, vb) in zip(got_a, got_b, strict=True):
            assert ix_a == ix_b
            assert_same_values(np.asarray(sel_a).astype(np.intp), np.asarray(sel_b).astype(np.intp))
            assert tuple(va.shape) == tuple(vb.shape)
            assert_same_layers(va.layers, vb.layers)
            assert_same_values(va[:, :], vb[:, :])
            if "what" not in kwargs:
                assert_same_attrs(va.ra, vb.ra, "ra")
                assert_same_attrs(va.ca, vb.ca, "ca")
                # With a key, loompy slices the other axis' graphs with an unsorted ordering, which it
                # renumbers in sorted order (documented loompy bug): compare only the scanned axis'.
                along_a, along_b = (
                    (va.row_graphs, vb.row_graphs) if axis == 0 else (va.col_graphs, vb.col_graphs)
                )
                assert_same_graphs(along_a, along_b)
                if not keyed:
                    assert_same_content(va, vb)
            seen.extend(np.asarray(sel_b).tolist())
    # numpy oracle: every requested item visited once, in order, with the right values
    n = (N_ROWS, N_COLS)[axis]
    items = kwargs.get("items")
    if items is None:
        expected_items = np.arange(n)
    elif isinstance(items, int):
        expected_items = np.arange(items, n)
    else:
        expected_items = axis_indices(items, n)[0]
    assert seen == expected_items.tolist()
    m = read_pair.data.matrix
    if keyed:
        other = read_pair.data.ra["Accession"] if axis == 1 else read_pair.data.ca["Barcode"]
        order = np.argsort(other)
        m = m[order, :] if axis == 1 else m[:, order]
    full = np.concatenate([v[:, :] for _, _, v in got_b], axis=axis)
    assert_same_values(m[expected_items, :] if axis == 0 else m[:, expected_items], full, "numpy oracle")


@pytest.mark.parametrize("axis", [0, 1])
def test_scan_with_no_selected_items_yields_nothing(read_pair: Pair, axis: int) -> None:
    with read_pair.open("r") as (a, b):
        for items in (np.array([], dtype=np.int64), np.zeros((N_ROWS, N_COLS)[axis], dtype=bool)):
            assert list(a.scan(axis=axis, items=items)) == list(b.scan(axis=axis, items=items)) == []


def test_scan_unsorted_items_keep_loompy_banding(read_pair: Pair) -> None:
    """numpy oracle for unsorted items: loompy's banding (ix steps by batch_size; within a band the items
    keep their given order). loompy itself can do this too, so compare with it as well."""
    items = np.array([70, 3, 65, 2, 139, 64])
    with read_pair.open("r") as (a, b):
        got_a = [(ix, sel.tolist(), v[:, :]) for ix, sel, v in a.scan(axis=1, items=items, batch_size=64)]
        got_b = [(ix, sel.tolist(), v[:, :]) for ix, sel, v in b.scan(axis=1, items=items, batch_size=64)]
    assert [(ix, sel) for ix, sel, _ in got_b] == [(0, [3, 2]), (64, [70, 65, 64]), (128, [139])]
    assert [(ix, sel) for ix, sel, _ in got_a] == [(ix, sel) for ix, sel, _ in got_b]
    for (_, sel, ma), (_, _, mb) in zip(got_a, got_b, strict=True):
        assert_same_values(ma, mb)
        assert_same_values(read_pair.data.matrix[:, sel], mb)


# --- map ---------------------------------------------------------------------------------------------------------------

MAP_SELECTIONS: dict[str, Any] = {
    "none": None,
    "mask": "mask",
    "sorted_ints": "ints",
}


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("chunksize", [17, 1000])
@pytest.mark.parametrize("sel", list(MAP_SELECTIONS))
def test_map_matches_loompy(read_pair: Pair, axis: int, chunksize: int, sel: str) -> None:
    selection = None
    other = (N_COLS, N_ROWS)[axis]
    if sel == "mask":
        selection = COL_MASK if axis == 0 else ROW_MASK
    elif sel == "ints":
        selection = np.array([0, 3, 63, 64, other - 1])
    fs = [np.mean, np.std, np.max]
    with read_pair.open("r") as (a, b):
        res_a = a.map(fs, axis=axis, chunksize=chunksize, selection=selection)
        res_b = b.map(fs, axis=axis, chunksize=chunksize, selection=selection)
    assert isinstance(res_b, list) and len(res_b) == len(fs)
    for ra_, rb_ in zip(res_a, res_b, strict=True):
        assert rb_.shape == ra_.shape == ((N_ROWS, N_COLS)[axis],)
        np.testing.assert_allclose(rb_, ra_, rtol=1e-6)
    m = read_pair.data.matrix
    if selection is not None:
        m = m[:, selection] if axis == 0 else m[selection, :]
    for f, got in zip(fs, res_b, strict=True):
        np.testing.assert_allclose(got, f(m, axis=1 - axis), rtol=1e-5)


def test_map_walkthrough_forms(read_pair: Pair) -> None:
    with read_pair.open("r") as (a, b):
        (means_a,) = a.map([np.mean], axis=1)
        (means_b,) = b.map([np.mean], axis=1)
        np.testing.assert_allclose(means_b, means_a, rtol=1e-6)
        sa = a.map([np.mean, np.std], axis=1)
        sb = b.map([np.mean, np.std], axis=1)
        for x, y in zip(sa, sb, strict=True):
            np.testing.assert_allclose(y, x, rtol=1e-6)
        # a layer's map
        la = a.layers["spliced"].map([np.sum], axis=0, chunksize=30)
        lb = b.layers["spliced"].map([np.sum], axis=0, chunksize=30)
        np.testing.assert_allclose(lb[0], la[0])


# --- permute ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_permute_matches_loompy(pair: Pair, axis: int) -> None:
    data = pair.data
    ordering = np.random.default_rng(21).permutation((N_ROWS, N_COLS)[axis])
    with pair.open() as (a, b):
        a.permute(ordering, axis=axis)
        b.permute(ordering, axis=axis)
        assert_same_content(a, b)
    assert_same_files(pair.ref, pair.new)
    # numpy oracle
    with loomfile.connect(pair.new, "r") as ds:
        for name, dense in data.dense_layers().items():
            expected = dense[ordering, :] if axis == 0 else dense[:, ordering]
            assert_same_values(expected, ds.layers[name][:, :], name)
        attrs = data.ra if axis == 0 else data.ca
        for name, values in attrs.items():
            assert_same_values(values[ordering], (ds.ra if axis == 0 else ds.ca)[name], name)
        graphs = data.row_graphs if axis == 0 else data.col_graphs
        for name, g in graphs.items():
            got = (ds.row_graphs if axis == 0 else ds.col_graphs)[name].toarray()
            np.testing.assert_array_equal(got, g.toarray()[np.ix_(ordering, ordering)])
        # the other axis is untouched
        other = data.ca if axis == 0 else data.ra
        for name, values in other.items():
            assert_same_values(values, (ds.ca if axis == 0 else ds.ra)[name], name)


def test_permute_walkthrough_then_back(pair: Pair) -> None:
    ordering = np.random.default_rng(1).permutation(np.arange(N_COLS))
    with pair.open() as (a, b):
        for ds in (a, b):
            ds.permute(ordering, axis=1)
            ds.permute(np.argsort(ordering), axis=1)
    assert_same_files(pair.ref, pair.new)
    assert_matches_data(pair.new, pair.data)


# --- add_columns, add_loom, combine ----------------------------------------------------------------------------------------


def _new_columns(
    data: Data, n_new: int, seed: int = 31
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    r = np.random.default_rng(seed)
    layers = {
        "": r.integers(0, 9, (N_ROWS, n_new)).astype(data.matrix.dtype),
        "spliced": r.integers(0, 9, (N_ROWS, n_new)).astype(np.int32),
        "unspliced": r.random((N_ROWS, n_new)),
    }
    ca = {
        "CellID": np.array([f"new_{j}" for j in range(n_new)], dtype=object),
        "Barcode": np.array([f"NB{j:05d}" for j in range(n_new)], dtype=object),
        "ClusterID": r.integers(0, 5, n_new),
        "Total": r.random(n_new) * 100,
        "PCA": r.normal(size=(n_new, 4)),
    }
    return layers, ca


def _expected_after_add(data: Data, layers: dict[str, np.ndarray], ca: dict[str, np.ndarray]) -> Data:
    dense = data.dense_layers()
    return Data(
        matrix=np.concatenate([dense[""], layers[""]], axis=1),
        layers={k: np.concatenate([dense[k], layers[k]], axis=1) for k in dense},
        ra=data.ra,
        ca={k: np.concatenate([data.ca[k], ca[k]]) for k in ca},
    )


def test_add_columns_dict_of_layers(pair: Pair) -> None:
    layers, ca = _new_columns(pair.data, 70)
    with pair.open() as (a, b), quiet():
        for ds in (a, b):
            ds.add_columns({k: v.copy() for k, v in layers.items()}, {k: v.copy() for k, v in ca.items()})
        assert tuple(a.shape) == b.shape == (N_ROWS, N_COLS + 70)
        assert_same_content(a, b, graphs=False)
    assert_same_files(pair.ref, pair.new, graphs=False)
    assert_matches_data(pair.new, _expected_after_add(pair.data, layers, ca))


def test_add_columns_plain_matrix(tmp_path: Path) -> None:
    data = make_data(graphs=False)
    data.layers = {"": data.matrix}
    pair = make_pair(tmp_path, data)
    layers, ca = _new_columns(data, 10)
    with pair.open() as (a, b), quiet():
        for ds in (a, b):
            ds.add_columns(layers[""].copy(), {k: v.copy() for k, v in ca.items()})
    assert_same_files(pair.ref, pair.new, graphs=False)
    assert_matches_data(pair.new, _expected_after_add(data, {"": layers[""]}, ca))


def test_add_columns_fill_values_auto(pair: Pair) -> None:
    """Numeric attributes only: with fill_values="auto" loompy fills a missing *string* attribute with
    "0" (np.zeros of an object dtype), not the empty string its docstring promises (loompy bug)."""
    layers, ca = _new_columns(pair.data, 20)
    for name in ("CellID", "Barcode"):
        del ca[name]
    del ca["Total"]  # in the file only: filled with 0.0 for the new columns
    ca["Batch"] = np.full(20, 7)  # in the new columns only: filled with 0 for the old ones
    with pair.open() as (a, b), quiet():
        for ds in (a, b):
            del ds.ca["CellID"]
            del ds.ca["Barcode"]
            ds.add_columns(
                {k: v.copy() for k, v in layers.items()},
                {k: v.copy() for k, v in ca.items()},
                fill_values="auto",
            )
        assert_same_attrs(a.ca, b.ca)
        assert_same_layers(a.layers, b.layers)
    assert_same_files(pair.ref, pair.new, graphs=False)
    with loomfile.connect(pair.new, "r") as ds:
        assert_same_values(np.concatenate([pair.data.ca["Total"], np.zeros(20)]), ds.ca.Total)
        assert_same_values(np.concatenate([np.zeros(N_COLS, dtype=int), np.full(20, 7)]), ds.ca.Batch)


def test_add_columns_fill_values_auto_strings_are_empty(pair: Pair) -> None:
    """Python oracle (loompy fills missing strings with "0", see above): "auto" fills strings with ""."""
    layers, ca = _new_columns(pair.data, 5)
    del ca["CellID"]
    with loomfile.connect(pair.new) as ds, quiet():
        ds.add_columns(layers, ca, fill_values="auto")
    with loomfile.connect(pair.new, "r") as ds:
        assert_same_values(
            np.concatenate([pair.data.ca["CellID"], np.array([""] * 5, dtype=object)]), ds.ca.CellID
        )


def test_add_columns_fill_values_dict(pair: Pair) -> None:
    layers, ca = _new_columns(pair.data, 12)
    del ca["CellID"]
    del ca["ClusterID"]
    with pair.open() as (a, b), quiet():
        for ds in (a, b):
            ds.add_columns(
                {k: v.copy() for k, v in layers.items()},
                {k: v.copy() for k, v in ca.items()},
                fill_values={"CellID": "missing", "ClusterID": -1},
            )
        assert_same_attrs(a.ca, b.ca)
    assert_same_files(pair.ref, pair.new, graphs=False)
    with loomfile.connect(pair.new, "r") as ds:
        assert list(ds.ca.CellID[-12:]) == ["missing"] * 12
        assert_same_values(np.concatenate([pair.data.ca["ClusterID"], np.full(12, -1)]), ds.ca.ClusterID)


def test_add_columns_drops_attributes_missing_on_one_side(pair: Pair) -> None:
    layers, ca = _new_columns(pair.data, 8)
    del ca["Barcode"]
    ca["Extra"] = np.arange(8)
    with pair.open() as (a, b), quiet():
        for ds in (a, b):
            ds.add_columns({k: v.copy() for k, v in layers.items()}, {k: v.copy() for k, v in ca.items()})
        assert sorted(a.ca.keys()) == sorted(b.ca.keys())
        assert "Barcode" not in b.ca and "Extra" not in b.ca
        assert_same_attrs(a.ca, b.ca)
    assert_same_files(pair.ref, pair.new, graphs=False)


def test_new_then_add_columns_with_row_attrs(tmp_path: Path) -> None:
    """loompy.new() + add_columns(..., row_attrs=...) in several batches, as the walkthrough shows."""
    data = make_data(graphs=False)
    paths = [os.fspath(tmp_path / f"{lib.__name__}.loom") for lib in LIBS]
    bounds = [0, 30, 64, 65, N_COLS]
    dense = data.dense_layers()
    for lib, path in zip(LIBS, paths, strict=True):
        with lib.new(path) as ds:
            for lo, hi in itertools.pairwise(bounds):
                ds.add_columns(
                    {k: v[:, lo:hi].copy() for k, v in dense.items()},
                    {k: v[lo:hi].copy() for k, v in data.ca.items()},
                    row_attrs=dict(data.ra),
                )
    assert_same_files(*paths, graphs=False)
    assert_matches_data(paths[1], Data(data.matrix, dense, data.ra, data.ca))


def test_new_then_add_columns_from_scanned_views(pair: Pair, tmp_path: Path) -> None:
    """The walkthrough's pooling idiom: dsout.add_columns(view.layers, col_attrs=view.ca, row_attrs=view.ra)."""
    outs = [os.fspath(tmp_path / f"pooled_{lib.__name__}.loom") for lib in LIBS]
    for lib, src, out in zip(LIBS, (pair.ref, pair.new), outs, strict=True):
        with lib.new(out) as dsout, lib.connect(src, "r") as dsin:
            for _, _, view in dsin.scan(axis=1, batch_size=50):
                dsout.add_columns(view.layers, col_attrs=view.ca, row_attrs=view.ra)
    assert_same_files(*outs, graphs=False)
    data = pair.data
    assert_matches_data(outs[1], Data(data.matrix, data.layers, data.ra, data.ca))


def test_new_then_add_columns_from_connections(tmp_path: Path) -> None:
    """The walkthrough's loop, verbatim: dsout.add_columns(dsin.layers, col_attrs=dsin.col_attrs,
    row_attrs=dsin.row_attrs) for every input file."""
    inputs = [make_data(seed=s, graphs=False) for s in (1, 2)]
    for d in inputs[1:]:
        d.ra = inputs[0].ra
    outs = []
    for lib in LIBS:
        samples = []
        for i, d in enumerate(inputs):
            path = os.fspath(tmp_path / f"sample{i}_{lib.__name__}.loom")
            populate(loompy, path, d)
            samples.append(path)
        out = os.fspath(tmp_path / f"pooled_{lib.__name__}.loom")
        with lib.new(out) as dsout:
            for sample in samples:
                with lib.connect(sample) as dsin:
                    dsout.add_columns(dsin.layers, col_attrs=dsin.col_attrs, row_attrs=dsin.row_attrs)
        outs.append(out)
        for sample, d in zip(samples, inputs, strict=True):
            assert_matches_data(sample, d)  # the inputs are untouched
    assert_same_files(*outs, graphs=False)
    expected = _expected_after_add(inputs[0], inputs[1].dense_layers(), inputs[1].ca)
    assert_matches_data(outs[1], expected)


def _shuffled_copy(data: Data, order: np.ndarray, seed: int) -> Data:
    """Other cells (new matrix/ca), same genes but with the rows in ``order``."""
    layers, ca = _new_columns(data, 45, seed)
    return Data(
        matrix=layers[""][order],
        layers={k: v[order] for k, v in layers.items()},
        ra={k: v[order] for k, v in data.ra.items()},
        ca=ca,
    )


def test_add_loom_with_key(pair: Pair, tmp_path: Path) -> None:
    order = np.random.default_rng(2).permutation(N_ROWS)
    other = _shuffled_copy(pair.data, order, seed=40)
    other_paths = [os.fspath(tmp_path / f"other_{lib.__name__}.loom") for lib in LIBS]
    populate(loompy, other_paths[0], other)
    shutil.copyfile(other_paths[0], other_paths[1])
    with pair.open() as (a, b), quiet():
        a.add_loom(other_paths[0], key="Accession")
        b.add_loom(other_paths[1], key="Accession")
        assert_same_content(a, b, graphs=False)
    assert_same_files(pair.ref, pair.new, graphs=False)
    inverse = np.argsort(order)  # other's row i holds our row order[i]
    added = {k: v[inverse] for k, v in other.dense_layers().items()}
    assert_matches_data(pair.new, _expected_after_add(pair.data, added, other.ca))


def test_add_loom_without_key(pair: Pair, tmp_path: Path) -> None:
    other = _shuffled_copy(pair.data, np.arange(N_ROWS), seed=41)
    # a layer the target lacks is ignored ("layers in other_file that are not already present in self")
    other.layers["ambiguous"] = np.ones((N_ROWS, 45), np.float32)
    other_path = os.fspath(tmp_path / "other.loom")
    populate(loomfile, other_path, other)
    copy = os.fspath(tmp_path / "other_copy.loom")
    shutil.copyfile(other_path, copy)
    with pair.open() as (a, b), quiet():
        a.add_loom(copy)
        b.add_loom(other_path, batch_size=7)
    assert_same_files(pair.ref, pair.new, graphs=False)
    added = {k: v for k, v in other.dense_layers().items() if k != "ambiguous"}
    assert_matches_data(pair.new, _expected_after_add(pair.data, added, other.ca))


def test_add_loom_convert_attrs(pair: Pair, tmp_path: Path) -> None:
    """Scalar global attributes that differ become column attributes. (loompy also converts its
    CreationDate timestamps and mangles array-valued globals; those are not compared.)"""
    other = _shuffled_copy(pair.data, np.arange(N_ROWS), seed=42)
    other.globals_ = {"title": "The other one"}
    other_paths = [os.fspath(tmp_path / f"other_{lib.__name__}.loom") for lib in LIBS]
    populate(loompy, other_paths[0], other)
    shutil.copyfile(other_paths[0], other_paths[1])
    with pair.open() as (a, b), quiet():
        for ds in (a, b):
            ds.attrs.flag = 1
        a.add_loom(other_paths[0], convert_attrs=True)
        b.add_loom(other_paths[1], convert_attrs=True)
        for name in ("title", "flag", "n_samples", "ratio"):
            assert (name in a.attrs) == (name in b.attrs) is False, name
            assert_same_values(a.ca[name], b.ca[name], name)
        assert_same_layers(a.layers, b.layers)
    with loomfile.connect(pair.new, "r") as ds:
        assert list(ds.ca.title) == ["A differential dataset"] * N_COLS + ["The other one"] * 45
        assert_same_values(np.r_[np.ones(N_COLS, dtype=np.int64), np.zeros(45, dtype=np.int64)], ds.ca.flag)


def test_add_loom_include_graphs_matches_numpy(pair: Pair, tmp_path: Path) -> None:
    """numpy oracle. loompy bug: include_graphs offsets the other file's vertices by the *combined*
    column count and then fails with "Adjacency matrix shape ... must be"."""
    other = _shuffled_copy(pair.data, np.arange(N_ROWS), seed=43)
    other.col_graphs = {"KNN": _graph(np.random.default_rng(6), 45, 3)}
    other_path = os.fspath(tmp_path / "other.loom")
    populate(loomfile, other_path, other)
    with loomfile.connect(pair.new) as ds, quiet():
        ds.add_loom(other_path, include_graphs=True)
    expected = sparse.block_diag([pair.data.col_graphs["KNN"], other.col_graphs["KNN"]]).toarray()
    with loomfile.connect(pair.new, "r") as ds:
        assert ds.shape == (N_ROWS, N_COLS + 45)
        np.testing.assert_array_equal(ds.col_graphs.KNN.toarray(), expected)


def write_inputs(lib: Any, folder: Path, datasets: list[Any]) -> list[str]:
    """Write each dataset with ``lib`` as ``in{i}.loom``; return the paths."""
    paths = []
    for i, d in enumerate(datasets):
        path = os.fspath(folder / f"in{i}.loom")
        populate(lib, path, d)
        paths.append(path)
    return paths


def test_combine_with_key_and_shuffled_rows(tmp_path: Path) -> None:
    base = make_data(graphs=False)
    order = np.random.default_rng(3).permutation(N_ROWS)
    inputs = [base, _shuffled_copy(base, order, seed=50), _shuffled_copy(base, np.arange(N_ROWS), seed=51)]
    files = write_inputs(loompy, tmp_path, inputs)
    outs = [os.fspath(tmp_path / f"out_{lib.__name__}.loom") for lib in LIBS]
    with quiet():
        for lib, out in zip(LIBS, outs, strict=True):
            # loompy's add_loom opens the inputs in r+ (it may write timestamps): give each its own copies
            mine = []
            for path in files:
                copy = path.replace(".loom", f"_{lib.__name__}.loom")
                shutil.copyfile(path, copy)
                mine.append(copy)
            lib.combine(mine, out, key="Accession")
    assert_same_files(*outs, graphs=False)
    inverse = np.argsort(order)
    expected = _expected_after_add(
        base, {k: v[inverse] for k, v in inputs[1].dense_layers().items()}, inputs[1].ca
    )
    expected = _expected_after_add(expected, inputs[2].dense_layers(), inputs[2].ca)
    assert_matches_data(outs[1], expected)


def test_combine_single_file(pair: Pair, tmp_path: Path) -> None:
    outs = [os.fspath(tmp_path / f"single_{lib.__name__}.loom") for lib in LIBS]
    loompy.combine([pair.ref], outs[0])
    loomfile.combine([pair.new], outs[1])
    assert_same_files(*outs)
    assert_matches_data(outs[1], pair.data)


def test_combine_without_key_and_file_attrs(tmp_path: Path) -> None:
    base = make_data(graphs=False)
    second = _shuffled_copy(base, np.arange(N_ROWS), seed=52)
    files = write_inputs(loomfile, tmp_path, [base, second])
    outs = [os.fspath(tmp_path / f"out_{lib.__name__}.loom") for lib in LIBS]
    with quiet():
        for lib, out in zip(LIBS, outs, strict=True):
            lib.combine(list(files), out, file_attrs={"title": "Combined", "extra": "yes"})
    assert_same_files(*outs, graphs=False)
    with loomfile.connect(outs[1], "r") as ds:
        assert ds.attrs.title == "Combined" and ds.attrs.extra == "yes"
        assert ds.shape == (N_ROWS, N_COLS + 45)


def test_both_libraries_read_both_files_alike(pair: Pair) -> None:
    """After the same edits, each library reads the file the *other* one wrote as it reads its own."""
    r = np.random.default_rng(12)
    ordering = r.permutation(N_COLS)
    layers, ca = _new_columns(pair.data, 9)
    extra = r.random((N_ROWS, N_COLS)).astype(np.float32)
    with pair.open() as (a, b), quiet():
        for ds in (a, b):
            ds.layers["extra"] = extra
            ds.ra.Note = np.array([f"note{i}" for i in range(N_ROWS)], dtype=object)
            ds.col_graphs.Extra = sparse.eye(N_COLS, k=3, format="csr")
            ds.attrs.description = "edited"
            ds[5, :] = np.arange(N_COLS)
            ds.permute(ordering, axis=1)
            ds.add_columns(
                {**{k: v.copy() for k, v in layers.items()}, "extra": np.ones((N_ROWS, 9), np.float32)},
                dict(ca),
            )
    for lib in LIBS:
        with lib.connect(pair.ref, "r") as x, lib.connect(pair.new, "r") as y:
            assert_same_content(x, y, graphs=False)
            assert_same_globals(x.attrs, y.attrs)
            for name in ("KNN", "Extra"):
                # graphs were not extended by add_columns: compare the stored edges
                gx, gy = x.col_graphs[name], y.col_graphs[name]
                np.testing.assert_array_equal(gx.toarray(), gy.toarray())


# --- timestamps: structure only -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["own", "loompy"])
def test_last_modified_and_changes_structure(tmp_path: Path, source: str) -> None:
    # No graphs: loompy's GraphManager.last_modified(name) looks up "row_graphs" + name without a
    # slash and raises KeyError, so get_changes_since crashes on files with modified graphs (loompy bug).
    pair = make_pair(tmp_path, make_data(graphs=False), source)
    with pair.open() as (a, b):
        before_a, before_b = a.last_modified(), b.last_modified()
        assert isinstance(before_b, str) and isinstance(str(before_a), str)
        assert len(before_b) == len(str(before_a))  # compact ISO 8601: 20241107T101530.123456Z
        for ds in (a, b):
            ds.ca.Changed = np.arange(N_COLS)
        ch_a = a.get_changes_since("19700101T000000.000000Z")
        ch_b = b.get_changes_since("19700101T000000.000000Z")
        assert isinstance(ch_b, dict)
        assert sorted(ch_a.keys()) == sorted(ch_b.keys())
        assert all(isinstance(v, list) for v in ch_b.values())
        assert "Changed" in ch_b["col_attrs"]
        for key in ("layers", "row_attrs", "col_attrs", "row_graphs", "col_graphs"):
            assert sorted(ch_b[key]) == sorted(set(ch_b[key]))
            assert set(ch_b[key]) <= set(
                getattr(b, {"row_attrs": "ra", "col_attrs": "ca"}.get(key, key)).keys()
            )
        for x in (a, b):
            stamps = [
                x.layers.last_modified(),
                x.layers[""].last_modified(),
                x.ra.last_modified(),
                x.ca.last_modified("Changed"),
            ]
            assert all(len(str(t)) == len(str(before_a)) for t in stamps)
        future = "99990101T000000.000000Z"
        assert all(v == [] for v in b.get_changes_since(future).values())
        assert sorted(a.get_changes_since(future)) == sorted(b.get_changes_since(future))
