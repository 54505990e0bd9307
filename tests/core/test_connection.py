"""Errors and lifecycle of connections: opening, closing, read-only mode, new/create atomicity,
layer management, name lookups, HTML display and the validator.

The state of files is always checked with h5py (or byte for byte), never through loomfile.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.fixture
def rich_path(loom_path: str, small_data: dict) -> str:
    """``loom_path`` plus a layer, a column graph, a row graph and a title (written with h5py)."""
    n, m = small_data["matrix"].shape
    with h5py.File(loom_path, "a") as h5:
        h5.create_dataset(
            "layers/spliced",
            data=(small_data["matrix"] * 2).astype(np.uint16),
            chunks=True,
            maxshape=(n, None),
        )
        for group, size in (("col_graphs/KNN", m), ("row_graphs/coexp", n)):
            h5.create_dataset(f"{group}/a", data=np.arange(size, dtype=np.int64))
            h5.create_dataset(f"{group}/b", data=np.roll(np.arange(size, dtype=np.int64), 1))
            h5.create_dataset(f"{group}/w", data=np.ones(size))
        h5["attrs"].create_dataset("title", data="Rich", dtype=h5py.string_dtype("utf-8"))
    return loom_path


# --- opening ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("validate", [True, False])
def test_connect_missing_file(tmp_path: Path, validate: bool) -> None:
    path = tmp_path / "nope.loom"
    with pytest.raises(FileNotFoundError) as info:
        loomfile.connect(path, validate=validate)
    assert isinstance(info.value, loomfile.LoomError)
    assert "nope.loom" in str(info.value)
    assert not path.exists()


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "dir.loom"
    path.mkdir()
    return path


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.loom"
    path.write_text("gene\tcell\tcount\nActb\tc1\t3\n")
    return path


def _random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "random.loom"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _empty_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.loom"
    path.write_bytes(b"")
    return path


NON_LOOM_CASES = [
    pytest.param(make, mode, validate, id=f"{make.__name__[1:]}-{mode}-validate={validate}")
    for make in (_directory, _text_file, _random_bytes, _empty_file)
    for mode in ("r", "r+")
    for validate in (True, False)
]


@pytest.mark.parametrize(("make", "mode", "validate"), NON_LOOM_CASES)
def test_connect_non_loom_raises_format_error(
    tmp_path: Path, make: Callable[[Path], Path], mode: str, validate: bool
) -> None:
    path = make(tmp_path)
    before = None if path.is_dir() else digest(path)
    try:
        with pytest.raises(loomfile.LoomFormatError) as info:
            loomfile.connect(path, mode, validate=validate)  # type: ignore[arg-type]
        assert path.name in str(info.value)
    finally:
        if before is not None:
            assert digest(path) == before, "connect must not modify a file it cannot read"


def test_connect_truncated_hdf5_raises_format_error(loom_path: str, tmp_path: Path) -> None:
    data = Path(loom_path).read_bytes()
    path = tmp_path / "truncated.loom"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(loomfile.LoomFormatError):
        loomfile.connect(path, "r")


@pytest.mark.parametrize("mode", ["w", "a", "x", "w-", "rw", "R", ""])
def test_connect_refuses_other_modes(loom_path: str, mode: str) -> None:
    before = digest(loom_path)
    with pytest.raises(ValueError, match="'r'") as info:
        loomfile.connect(loom_path, mode)  # type: ignore[arg-type]
    assert isinstance(info.value, loomfile.LoomError)
    assert digest(loom_path) == before, "a refused mode must not touch (e.g. truncate) the file"


def test_connection_properties(loom_path: str, small_data: dict) -> None:
    with h5py.File(loom_path, "r") as h5:
        shape = h5["matrix"].shape
    assert shape == small_data["matrix"].shape
    ds = loomfile.connect(Path(loom_path), "r")
    try:
        assert ds.mode == "r"
        assert ds.filename == loom_path
        assert isinstance(ds.filename, str)
        assert ds.closed is False
        assert ds.shape == shape
    finally:
        ds.close()
    assert ds.closed is True
    with loomfile.connect(loom_path) as ds:
        assert ds.mode == "r+"


# --- closing ---------------------------------------------------------------------------------------

USE_AFTER_CLOSE: list[Any] = [
    pytest.param(lambda ds: ds[:, :], id="matrix"),
    pytest.param(lambda ds: ds[0, 0], id="element"),
    pytest.param(lambda ds: ds.ra.Gene, id="ra-attr"),
    pytest.param(lambda ds: ds.ca["CellID"], id="ca-item"),
    pytest.param(lambda ds: ds.ra.keys(), id="ra-keys"),
    pytest.param(lambda ds: ds.layers.keys(), id="layers-keys"),
    pytest.param(lambda ds: ds.layers[""], id="layer-item"),
    pytest.param(lambda ds: ds.attrs.keys(), id="attrs-keys"),
    pytest.param(lambda ds: ds.attrs["LOOM_SPEC_VERSION"], id="attrs-item"),
    pytest.param(lambda ds: ds.col_graphs.keys(), id="graphs-keys"),
    pytest.param(lambda ds: ds.sparse(), id="sparse"),
    pytest.param(lambda ds: ds.view[:5, :5], id="view"),
    pytest.param(lambda ds: ds.__setitem__((0, 0), 1), id="write-matrix"),
    pytest.param(lambda ds: setattr(ds.attrs, "x", 1), id="write-attrs"),
    pytest.param(lambda ds: setattr(ds.ca, "X", np.zeros(130)), id="write-ca"),
]


@pytest.mark.parametrize("use", USE_AFTER_CLOSE)
def test_use_after_close_raises_closed_error(loom_path: str, use: Callable[[Any], Any]) -> None:
    before = digest(loom_path)
    ds = loomfile.connect(loom_path)
    ds.close()
    with pytest.raises(loomfile.LoomClosedError, match="closed"):
        use(ds)
    assert digest(loom_path) == before


def test_layer_object_after_close_raises_closed_error(loom_path: str) -> None:
    ds = loomfile.connect(loom_path, "r")
    layer = ds.layers[""]
    ds.close()
    with pytest.raises(loomfile.LoomClosedError, match="closed"):
        layer[:, :]


def test_close_twice_is_fine(loom_path: str) -> None:
    ds = loomfile.connect(loom_path)
    ds.close()
    ds.close()
    assert ds.closed
    with loomfile.connect(loom_path) as ds2:
        ds2.close()
    assert ds2.closed
    assert "closed" in ds._repr_html_().lower()


# --- read-only mode --------------------------------------------------------------------------------

READ_ONLY_WRITES: list[Any] = [
    pytest.param(lambda ds, n, m: ds.layers.__setitem__("new", np.ones((n, m), np.float32)), id="layer-set"),
    pytest.param(lambda ds, n, m: ds.__setitem__("empty", "float32"), id="empty-layer"),
    pytest.param(lambda ds, n, m: ds.__setitem__((0, 0), 1), id="element"),
    pytest.param(lambda ds, n, m: ds.layers[""].__setitem__((slice(None), 0), 0), id="column"),
    pytest.param(lambda ds, n, m: ds["spliced"].__setitem__((0, slice(None)), 7), id="layer-row"),
    pytest.param(lambda ds, n, m: setattr(ds.ra, "X", np.arange(n)), id="ra-new"),
    pytest.param(lambda ds, n, m: ds.ca.__setitem__("CellID", np.array(["x"] * m)), id="ca-replace"),
    pytest.param(lambda ds, n, m: setattr(ds.attrs, "x", "y"), id="attrs-new"),
    pytest.param(lambda ds, n, m: ds.attrs.__setitem__("title", "Other"), id="attrs-replace"),
    pytest.param(lambda ds, n, m: setattr(ds.col_graphs, "G", sparse.eye(m)), id="graph-new"),
    pytest.param(lambda ds, n, m: ds.row_graphs.__setitem__("coexp", sparse.eye(n)), id="graph-replace"),
    pytest.param(lambda ds, n, m: delattr(ds.ra, "Gene"), id="del-ra"),
    pytest.param(lambda ds, n, m: ds.ca.__delitem__("CellID"), id="del-ca"),
    pytest.param(lambda ds, n, m: delattr(ds.attrs, "title"), id="del-attrs"),
    pytest.param(lambda ds, n, m: ds.__delitem__("spliced"), id="del-layer"),
    pytest.param(lambda ds, n, m: delattr(ds.layers, "spliced"), id="del-layer-attr"),
    pytest.param(lambda ds, n, m: delattr(ds.col_graphs, "KNN"), id="del-graph"),
    pytest.param(lambda ds, n, m: ds.permute(np.arange(m)[::-1], axis=1), id="permute"),
    pytest.param(
        lambda ds, n, m: ds.add_columns(
            {"": np.ones((n, 2), np.float32), "spliced": np.ones((n, 2), np.uint16)},
            {
                "CellID": np.array(["a", "b"], dtype=object),
                "ClusterID": np.zeros(2, int),
                "PCA": np.zeros((2, 4)),
            },
        ),
        id="add-columns",
    ),
]


@pytest.mark.parametrize("write", READ_ONLY_WRITES)
def test_writes_in_read_only_mode_are_refused(rich_path: str, small_data: dict, write: Callable) -> None:
    n, m = small_data["matrix"].shape
    before = digest(rich_path)
    with h5py.File(rich_path, "r") as h5:
        structure_before: list[str] = []
        h5.visit(structure_before.append)
        matrix_before = h5["matrix"][()]
    with loomfile.connect(rich_path, "r") as ds:
        with pytest.raises(loomfile.LoomReadOnlyError) as info:
            write(ds, n, m)
        assert isinstance(info.value, OSError)
        assert "read-only" in str(info.value) or "'r'" in str(info.value)
        ds[:5, :5]  # the connection stays usable
    assert digest(rich_path) == before
    with h5py.File(rich_path, "r") as h5:
        structure_after: list[str] = []
        h5.visit(structure_after.append)
        assert structure_after == structure_before
        np.testing.assert_array_equal(h5["matrix"][()], matrix_before)


# --- new(): the file appears only when complete ----------------------------------------------------


def test_new_file_appears_only_after_close(tmp_path: Path, small_data: dict) -> None:
    path = tmp_path / "new.loom"
    matrix = small_data["matrix"]
    ds = loomfile.new(path)
    assert not path.exists()
    ds.add_columns(
        matrix,
        {"CellID": small_data["col_attrs"]["CellID"]},
        row_attrs={"Gene": small_data["row_attrs"]["Gene"]},
    )
    assert not path.exists()
    ds.close()
    assert path.exists()
    assert listing(tmp_path) == ["new.loom"], "no temporary file may be left behind"
    with h5py.File(path, "r") as h5:
        np.testing.assert_array_equal(h5["matrix"][()], matrix)
        assert h5["col_attrs/CellID"].asstr()[()].tolist() == list(small_data["col_attrs"]["CellID"])
        assert h5["row_attrs/Gene"].asstr()[()].tolist() == list(small_data["row_attrs"]["Gene"])


def test_new_as_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "ctx.loom"
    with loomfile.new(path, file_attrs={"title": "Ctx"}) as ds:
        ds.add_columns(np.ones((3, 2), np.float32), {"C": np.arange(2)}, row_attrs={"R": np.arange(3)})
        assert not path.exists()
    with h5py.File(path, "r") as h5:
        np.testing.assert_array_equal(h5["matrix"][()], np.ones((3, 2)))
        assert h5["attrs/title"].asstr()[()] == "Ctx"
    assert listing(tmp_path) == ["ctx.loom"]


def test_exception_inside_new_leaves_existing_file_untouched(loom_path: str) -> None:
    directory = Path(loom_path).parent
    before, files_before = digest(loom_path), listing(directory)
    with pytest.raises(RuntimeError, match="boom"), loomfile.new(loom_path) as ds:
        ds.add_columns(np.ones((3, 2), np.float32), {"C": np.arange(2)}, row_attrs={"R": np.arange(3)})
        raise RuntimeError("boom")
    assert digest(loom_path) == before
    assert listing(directory) == files_before


# --- create(): checks first, atomic replace --------------------------------------------------------

BAD_CREATE_INPUTS: list[Any] = [
    pytest.param(lambda m: m.__setitem__((1, 1), np.nan) or m, {}, id="nan"),
    pytest.param(lambda m: m.__setitem__((0, 2), np.inf) or m, {}, id="inf"),
    pytest.param(lambda m: m.__setitem__((3, 0), -np.inf) or m, {}, id="-inf"),
    pytest.param(lambda m: m > 0, {}, id="bool"),
    pytest.param(lambda m: m.astype(np.complex64), {}, id="complex"),
    pytest.param(lambda m: m.astype(object), {}, id="object"),
    pytest.param(lambda m: np.zeros((0, m.shape[1]), np.float32), {}, id="no-rows"),
    pytest.param(lambda m: np.zeros((m.shape[0], 0), np.float32), {}, id="no-columns"),
    pytest.param(lambda m: np.zeros((0, 0), np.float32), {}, id="empty"),
    pytest.param(lambda m: m[0], {}, id="1-d"),
    pytest.param(lambda m: sparse.csr_matrix(np.where(m > 0, np.nan, 0)), {}, id="sparse-nan"),
    pytest.param(lambda m: {"": m, "other": m[:, :-1]}, {}, id="layer-shape"),
    pytest.param(lambda m: {"": m, "other": m.astype(np.complex128)}, {}, id="layer-complex"),
    pytest.param(lambda m: {"spliced": m}, {}, id="no-main-layer"),
    pytest.param(lambda m: m, {"Short": np.arange(3)}, id="attr-length"),
]


@pytest.mark.parametrize(("make_matrix", "col_attrs"), BAD_CREATE_INPUTS)
def test_create_rejects_bad_input(tmp_path: Path, make_matrix: Callable, col_attrs: dict) -> None:
    path = tmp_path / "bad.loom"
    matrix = make_matrix(np.arange(1, 31, dtype=np.float32).reshape(6, 5))
    with pytest.raises(ValueError) as info:
        loomfile.create(path, matrix, {}, col_attrs)
    assert isinstance(info.value, loomfile.LoomError)
    assert str(info.value)
    assert listing(tmp_path) == [], "nothing may be written for bad input"


@pytest.mark.parametrize(("make_matrix", "col_attrs"), BAD_CREATE_INPUTS)
def test_create_over_existing_file_with_bad_input_keeps_old_file(
    loom_path: str, make_matrix: Callable, col_attrs: dict
) -> None:
    directory = Path(loom_path).parent
    before, files_before = digest(loom_path), listing(directory)
    matrix = make_matrix(np.arange(1, 31, dtype=np.float32).reshape(6, 5))
    with pytest.raises(ValueError):
        loomfile.create(loom_path, matrix, {}, col_attrs)
    assert digest(loom_path) == before
    assert listing(directory) == files_before


def test_create_replaces_existing_file_when_input_is_good(loom_path: str) -> None:
    matrix = np.arange(12, dtype=np.int32).reshape(3, 4)
    loomfile.create(loom_path, matrix, {"R": np.arange(3)}, {"C": np.arange(4)})
    with h5py.File(loom_path, "r") as h5:
        np.testing.assert_array_equal(h5["matrix"][()], matrix)
        assert sorted(h5["row_attrs"]) == ["R"]


# --- layers ----------------------------------------------------------------------------------------


def test_main_layer_cannot_be_deleted(loom_path: str, small_data: dict) -> None:
    with loomfile.connect(loom_path) as ds:
        with pytest.raises(ValueError):
            del ds.layers[""]
        with pytest.raises(ValueError):
            del ds[""]
        assert "" in ds.layers.keys()
    with h5py.File(loom_path, "r") as h5:
        np.testing.assert_array_equal(h5["matrix"][()], small_data["matrix"])


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint16"])
def test_dtype_string_creates_all_zero_layer(loom_path: str, small_data: dict, dtype: str) -> None:
    with loomfile.connect(loom_path) as ds:
        ds["x"] = dtype
    with h5py.File(loom_path, "r") as h5:
        layer = h5["layers/x"]
        assert layer.dtype == np.dtype(dtype)
        assert layer.shape == small_data["matrix"].shape
        assert not np.any(layer[()])


def test_delete_layer_by_item_and_by_attribute(loom_path: str) -> None:
    with loomfile.connect(loom_path) as ds:
        ds["x"] = "float32"
        ds["y"] = "int32"
    with h5py.File(loom_path, "r") as h5:
        assert sorted(h5["layers"]) == ["x", "y"]
    with loomfile.connect(loom_path) as ds:
        del ds["x"]
        del ds.layers.y
        assert ds.layers.keys() == [""]
    with h5py.File(loom_path, "r") as h5:
        assert list(h5["layers"]) == []
        assert "matrix" in h5


def test_attribute_style_access(loom_path: str, small_data: dict) -> None:
    spliced = (small_data["matrix"] * 3).astype(np.uint32)
    with loomfile.connect(loom_path) as ds:
        ds.layers["spliced"] = spliced
        ds.ca._X = np.arange(ds.shape[1], dtype=np.float64)  # velocyto-style name
    with loomfile.connect(loom_path, "r") as ds:
        assert ds.ca.CellID.tolist() == list(small_data["col_attrs"]["CellID"])
        np.testing.assert_array_equal(ds.ca.ClusterID, small_data["col_attrs"]["ClusterID"])
        np.testing.assert_array_equal(ds.ra.Selected, small_data["row_attrs"]["Selected"])
        np.testing.assert_array_equal(ds.layers.spliced[:, :], spliced)
        assert ds.layers.spliced[:, :].dtype == np.uint32
        np.testing.assert_array_equal(ds.ca._X, np.arange(small_data["matrix"].shape[1]))
    with h5py.File(loom_path, "r") as h5:
        np.testing.assert_array_equal(h5["layers/spliced"][()], spliced)
        assert "_X" in h5["col_attrs"]


MISSING_LOOKUPS: list[Any] = [
    pytest.param(lambda ds: ds.ra["Nope"], id="ra-item"),
    pytest.param(lambda ds: ds.ra.Nope, id="ra-attr"),
    pytest.param(lambda ds: ds.ca.Nope, id="ca-attr"),
    pytest.param(lambda ds: ds.layers["Nope"], id="layers-item"),
    pytest.param(lambda ds: ds.layers.Nope, id="layers-attr"),
    pytest.param(lambda ds: ds["Nope"], id="connection-item"),
    pytest.param(lambda ds: ds.attrs.Nope, id="attrs-attr"),
    pytest.param(lambda ds: ds.attrs["Nope"], id="attrs-item"),
    pytest.param(lambda ds: ds.col_graphs.Nope, id="graph-attr"),
    pytest.param(lambda ds: ds.row_graphs["Nope"], id="graph-item"),
    pytest.param(lambda ds: ds.ca.__delitem__("Nope"), id="del-ca"),
    pytest.param(lambda ds: delattr(ds.attrs, "Nope"), id="del-attrs"),
    pytest.param(lambda ds: ds.__delitem__("Nope"), id="del-layer"),
]


@pytest.mark.parametrize("lookup", MISSING_LOOKUPS)
def test_missing_names_raise_key_and_attribute_error(loom_path: str, lookup: Callable) -> None:
    before = digest(loom_path)
    with loomfile.connect(loom_path) as ds:
        with pytest.raises(KeyError) as info:
            lookup(ds)
        assert isinstance(info.value, AttributeError)
        assert isinstance(info.value, loomfile.LoomError)
        assert "Nope" in str(info.value)
    assert digest(loom_path) == before


def test_a_missing_name_lists_those_present_and_the_closest(loom_path: str) -> None:
    with loomfile.connect(loom_path) as ds:
        ds.layers["spliced"] = "float32"
        with pytest.raises(KeyError, match=r"No layer named 'splcied'; did you mean 'spliced'\? \(present: '', 'spliced'\)"):
            ds["splcied"]
        with pytest.raises(KeyError, match=r"did you mean 'Accession'\?.*'Accession', 'Gene', 'Selected'"):
            _ = ds.ra.accesion
        with pytest.raises(KeyError, match=r"did you mean 'CellID'"):
            ds.ca["cellid"]
        with pytest.raises(KeyError, match=r"No column graph named 'KNN' \(none present\)"):
            _ = ds.col_graphs.KNN
        for i in range(30):
            ds.attrs[f"note{i:02d}"] = i
        with pytest.raises(KeyError, match=r"and 12 more\)"):
            ds.attrs["zzz"]


def test_nested_lists_as_matrices(tmp_path: Path) -> None:
    """create and a layer assignment accept nested lists, as numpy does (a raw AttributeError before)."""
    path = os.fspath(tmp_path / "lists.loom")
    loomfile.create(path, [[1, 2], [3, 4]], {"Gene": ["a", "b"]}, {"CellID": ["x", "y"]})
    with loomfile.connect(path) as ds:
        ds.layers["more"] = [[0.5, 1.5], [2.5, 3.5]]
        np.testing.assert_array_equal(ds[:, :], [[1, 2], [3, 4]])
        np.testing.assert_array_equal(ds.layers["more"][:, :], [[0.5, 1.5], [2.5, 3.5]])
        with pytest.raises(loomfile.LoomValueError, match="ragged"):
            ds.layers["bad"] = [[1, 2], [3]]


def test_hasattr_and_in_on_managers(loom_path: str) -> None:
    with loomfile.connect(loom_path, "r") as ds:
        assert hasattr(ds.ca, "CellID")
        assert not hasattr(ds.ca, "Nope")
        assert not hasattr(ds.layers, "Nope")
        assert "CellID" in ds.ca
        assert "Nope" not in ds.ra
        assert "" in ds.layers


# --- HTML display ----------------------------------------------------------------------------------


def test_repr_html_shows_shape_and_names_and_escapes_values(loom_path: str, small_data: dict) -> None:
    n, m = small_data["matrix"].shape
    with loomfile.connect(loom_path) as ds:
        ds.ca.Label = np.array(["<b>bold</b>"] * m, dtype=object)
        ds.ra.Note = np.array(["A&B <i>"] * n, dtype=object)
        ds.attrs.title = "<script>alert(1)</script>"
        html = ds._repr_html_()
    assert isinstance(html, str)
    assert f"{n} rows" in html
    assert f"{m} columns" in html
    for name in [*small_data["row_attrs"], *small_data["col_attrs"], "Label", "Note"]:
        assert name in html, name
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "A&B <i>" not in html
    assert "A&amp;B &lt;i&gt;" in html
    assert "cell_0_é" in html  # values from the corner are shown


# --- the validator ---------------------------------------------------------------------------------


def _bad_layer_shape(h5: h5py.File, n: int, m: int) -> str:
    h5.create_dataset("layers/wrongshape", data=np.zeros((n, m + 1), np.float32))
    return "wrongshape"


def _bad_attr_length(h5: h5py.File, n: int, m: int) -> str:
    h5.create_dataset("col_attrs/TooShort", data=np.arange(m - 1))
    return "TooShort"


def _graph_missing_w(h5: h5py.File, n: int, m: int) -> str:
    h5.create_dataset("col_graphs/NoWeights/a", data=np.arange(m))
    h5.create_dataset("col_graphs/NoWeights/b", data=np.arange(m))
    return "NoWeights"


BREAKERS = [
    pytest.param(_bad_layer_shape, id="layer-shape"),
    pytest.param(_bad_attr_length, id="attr-length"),
    pytest.param(_graph_missing_w, id="graph-missing-w"),
]


def test_validator_accepts_good_file(loom_path: str) -> None:
    validator = loomfile.LoomValidator()
    assert validator.validate(loom_path) is True
    assert validator.errors == []


@pytest.mark.parametrize("breaker", BREAKERS)
def test_validator_reports_broken_files(loom_path: str, small_data: dict, breaker: Callable) -> None:
    n, m = small_data["matrix"].shape
    with h5py.File(loom_path, "a") as h5:
        name = breaker(h5, n, m)
    validator = loomfile.LoomValidator()
    assert validator.validate(loom_path) is False
    assert any(name in error for error in validator.errors), validator.errors
    with pytest.raises(loomfile.LoomFormatError, match=name):
        loomfile.connect(loom_path, "r")
    with loomfile.connect(loom_path, "r", validate=False) as ds:
        assert ds.shape == (n, m)
        assert ds.ra.Gene.tolist() == list(small_data["row_attrs"]["Gene"])
        np.testing.assert_array_equal(ds[:, :], small_data["matrix"])


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Files built under a temporary name and renamed get 0666 less the umask, like h5py's."""
    umask = os.umask(0o022)
    try:
        path = tmp_path / "f.loom"
        loomfile.create(path, np.ones((3, 2), dtype=np.float32), {"G": np.arange(3)}, {"C": np.arange(2)})
        with loomfile.connect(path, "r") as ds:
            ds.export(str(tmp_path / "f.tsv"))
        for made in (path, tmp_path / "f.tsv"):
            assert made.stat().st_mode & 0o777 == 0o644, made
    finally:
        os.umask(umask)
