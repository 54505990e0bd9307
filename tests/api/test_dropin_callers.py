"""The callers' own code, with ``import loompy`` resolved to loomfile, against the same call with
the real loompy 3.0.8: anndata's ``read_loom`` (every option) and ``AnnData.write_loom``, and
loompy's own unit tests.

The swap is a fixture (``loompy_is``), not an import hook in the package: loompy itself is the
oracle in the same session, so ``sys.modules["loompy"]`` (and its submodules) is replaced for the
call only and restored afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anndata as ad
import h5py
import loompy
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse

import loomfile
from looms import LOOMPY_SUBMODULES


@contextlib.contextmanager
def loompy_is(module: types.ModuleType) -> Iterator[None]:
    """``import loompy`` (and ``from loompy.utils import ...``) gives ``module`` inside the block."""
    saved = {k: v for k, v in sys.modules.items() if k == "loompy" or k.startswith("loompy.")}
    for key in saved:
        del sys.modules[key]
    sys.modules["loompy"] = module
    if module is loomfile:
        for sub in LOOMPY_SUBMODULES:
            sys.modules[f"loompy.{sub}"] = importlib.import_module(f"loomfile.{sub}")
    try:
        yield
    finally:
        for key in [k for k in sys.modules if k == "loompy" or k.startswith("loompy.")]:
            del sys.modules[key]
        sys.modules.update(saved)


def both(call: Callable[[], Any]) -> tuple[Any, Any]:
    """(result with the real loompy, result with loomfile as loompy), warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with loompy_is(loompy):
            expected = call()
        with loompy_is(loomfile):
            got = call()
    return expected, got


def test_the_swap_is_undone() -> None:
    with loompy_is(loomfile):
        import loompy as inside

        assert inside is loomfile
        from loompy.loom_validator import LoomValidator

        assert LoomValidator is loomfile.LoomValidator
    import loompy as outside

    assert outside is loompy
    assert sys.modules["loompy.utils"].__name__ == "loompy.utils"


# --- anndata.read_loom ---------------------------------------------------------------------------------

N_GENES, N_CELLS = 40, 30


@pytest.fixture(scope="module")
def velocyto_like(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file as velocyto writes them, by the real loompy: counts in spliced/unspliced/ambiguous, a
    main matrix, UMAP coordinates in two attributes, a 2-D PCA, a constant attribute (for cleanup)."""
    rng = np.random.default_rng(3)
    path = os.fspath(tmp_path_factory.mktemp("callers") / "velocyto.loom")
    spliced = rng.poisson(1.0, (N_GENES, N_CELLS)).astype(np.uint32)
    layers = {
        "": spliced.astype(np.float32),
        "spliced": spliced,
        "unspliced": rng.poisson(0.3, (N_GENES, N_CELLS)).astype(np.uint32),
        "ambiguous": rng.poisson(0.1, (N_GENES, N_CELLS)).astype(np.uint32),
    }
    row_attrs = {
        "Gene": np.array([f"G{i}" for i in range(N_GENES)]),
        "Accession": np.array([f"ENSG{i:05d}" for i in range(N_GENES)]),
        "Chromosome": np.array(["1"] * N_GENES),
        "Start": np.arange(N_GENES) * 100,
        "loadings_1": rng.normal(size=N_GENES),
        "loadings_2": rng.normal(size=N_GENES),
    }
    col_attrs = {
        "CellID": np.array([f"sample:CELL{j}x" for j in range(N_CELLS)]),
        "ClusterName": np.array([f"c{j % 4}" for j in range(N_CELLS)]),
        "Clusters": np.arange(N_CELLS) % 4,
        "Batch": np.array(["b1"] * N_CELLS),
        "umap_1": rng.normal(size=N_CELLS),
        "umap_2": rng.normal(size=N_CELLS),
        "X_pca": rng.normal(size=(N_CELLS, 3)),
        "_Valid": np.ones(N_CELLS, dtype=np.int64),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loompy.create(path, layers, row_attrs, col_attrs, file_attrs={"velocyto.__version__": "0.17"})
    return path


def assert_same_matrix(got: Any, expected: Any) -> None:
    assert sparse.issparse(got) == sparse.issparse(expected)
    assert got.dtype == expected.dtype
    if sparse.issparse(expected):
        assert got.format == expected.format
        got, expected = got.toarray(), expected.toarray()
    np.testing.assert_array_equal(got, expected)


def assert_same_adata(got: ad.AnnData, expected: ad.AnnData) -> None:
    assert got.shape == expected.shape
    assert_same_matrix(got.X, expected.X)
    pd.testing.assert_frame_equal(got.obs, expected.obs)
    pd.testing.assert_frame_equal(got.var, expected.var)
    assert list(got.layers) == list(expected.layers)
    for key in expected.layers:
        assert_same_matrix(got.layers[key], expected.layers[key])
    for ours, theirs in ((got.obsm, expected.obsm), (got.varm, expected.varm)):
        assert list(ours) == list(theirs)
        for key in theirs:
            np.testing.assert_array_equal(ours[key], theirs[key])
    assert got.uns.keys() == expected.uns.keys()
    for key in expected.uns:
        assert dict(got.uns[key]) == dict(expected.uns[key])


READ_OPTIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "dense": {"sparse": False},
    "sparse": {"sparse": True},
    "cleanup": {"cleanup": True},
    "dense_cleanup": {"sparse": False, "cleanup": True},
    "X_name_unspliced": {"X_name": "unspliced"},
    "X_name_main": {"X_name": ""},
    "X_name_missing_falls_back": {"X_name": "nope", "sparse": False},
    "obs_var_names": {"obs_names": "CellID", "var_names": "Accession"},
    "names_not_present": {"obs_names": "nope", "var_names": "nope"},
    "dtype_float64": {"dtype": "float64"},
    "dtype_int32_dense": {"dtype": "int32", "sparse": False},
    "obsm_mapping": {"obsm_mapping": {"X_umap": ["umap_1", "umap_2"]}},
    "varm_mapping": {"varm_mapping": {"PCs": ["loadings_1", "loadings_2"]}, "sparse": False},
    "obsm_names_deprecated": {"obsm_names": {"X_umap": ["umap_1", "umap_2"]}},
    "varm_names_deprecated": {"varm_names": {"PCs": ["loadings_1", "loadings_2"]}},
    "everything": {
        "sparse": False,
        "cleanup": True,
        "X_name": "spliced",
        "obs_names": "CellID",
        "var_names": "Gene",
        "dtype": "float64",
        "obsm_mapping": {"X_umap": ["umap_1", "umap_2"]},
        "varm_mapping": {"PCs": ["loadings_1", "loadings_2"]},
    },
    "connect_kwargs_validate": {"validate": False},
}


@pytest.mark.parametrize("case", list(READ_OPTIONS))
def test_anndata_read_loom_gives_what_it_gives_with_loompy(velocyto_like: str, case: str) -> None:
    options = READ_OPTIONS[case]
    expected, got = both(lambda: ad.io.read_loom(velocyto_like, **options))
    assert_same_adata(got, expected)


def test_anndata_read_loom_dense_raised_before(velocyto_like: str) -> None:
    """The issue's first symptom: ``lc.layers[X_name][()]``; here on a file loomfile wrote."""
    with loompy_is(loomfile), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = ad.io.read_loom(velocyto_like, sparse=False, X_name="spliced")
    with h5py.File(velocyto_like, "r") as f:
        np.testing.assert_array_equal(adata.X, f["layers/spliced"][()].T.astype(np.float32))


# --- AnnData.write_loom ----------------------------------------------------------------------------------


def annotated(rng: np.random.Generator, n_obs: int = 12, n_vars: int = 9) -> ad.AnnData:
    """An AnnData with what scanpy pipelines leave in obs/var: nullable, categorical and string
    columns (with missing values), obsm/varm and layers."""
    x = rng.poisson(1.0, (n_obs, n_vars)).astype(np.float32)
    obs = pd.DataFrame(
        {
            "n_genes": pd.array(rng.integers(0, 9, n_obs), dtype="Int64"),
            "n_genes_na": pd.array([None if i % 5 == 0 else i for i in range(n_obs)], dtype="Int64"),
            "is_doublet": pd.array([i % 3 == 0 for i in range(n_obs)], dtype="boolean"),
            "is_doublet_na": pd.array(
                [None if i % 4 == 0 else i % 2 == 0 for i in range(n_obs)], dtype="boolean"
            ),
            "leiden": pd.Categorical([str(i % 3) for i in range(n_obs)]),
            "cell_type": pd.Categorical([None if i % 6 == 0 else f"T{i % 2}" for i in range(n_obs)]),
            "sample": pd.array([f"s{i % 2}" for i in range(n_obs)], dtype="string"),
            "donor_na": pd.array([None if i == 1 else f"d{i}" for i in range(n_obs)], dtype="string"),
            "plain_str": [f"p{i}" for i in range(n_obs)],
            "score": rng.normal(size=n_obs),
            "flag": rng.random(n_obs) < 0.5,
        },
        index=[f"cell{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(
        {
            "gene_ids": [f"ENSG{j}" for j in range(n_vars)],
            "highly_variable": pd.array([j % 2 == 0 for j in range(n_vars)], dtype="boolean"),
            "means": rng.random(n_vars),
            "feature_types": pd.Categorical(["Gene Expression"] * n_vars),
        },
        index=[f"gene{j}" for j in range(n_vars)],
    )
    adata = ad.AnnData(x, obs=obs, var=var)
    adata.obsm["X_pca"] = rng.normal(size=(n_obs, 3))
    adata.obsm["X_umap"] = rng.normal(size=(n_obs, 2))
    adata.varm["PCs"] = rng.normal(size=(n_vars, 3))
    adata.layers["counts"] = x.astype(np.int32)
    adata.layers["sparse"] = sparse.csr_matrix(x * 2)
    return adata


def file_contents(path: str) -> dict[str, Any]:
    """Every dataset under matrix, layers, row/col attributes and graphs, text decoded."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and not name.startswith("attrs"):
                values = obj[()]
                if values.dtype.kind in "OS":
                    values = np.array([v.decode() if isinstance(v, bytes) else v for v in values.ravel()])
                out[name] = (values.dtype.kind, values.shape, values.tolist())

        f.visititems(visit)
    return out


@pytest.mark.parametrize("write_obsm_varm", [False, True])
def test_anndata_write_loom_writes_what_loompy_writes(tmp_path, write_obsm_varm: bool) -> None:
    adata = annotated(np.random.default_rng(5))
    paths = iter([os.fspath(tmp_path / "loompy.loom"), os.fspath(tmp_path / "loomfile.loom")])

    def write() -> str:
        path = next(paths)
        adata.write_loom(path, write_obsm_varm=write_obsm_varm)
        return path

    expected, got = both(write)
    theirs, ours = file_contents(expected), file_contents(got)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        kind, shape, values = theirs[name]
        assert ours[name][:2] == (kind, shape), name
        np.testing.assert_array_equal(np.array(ours[name][2]), np.array(values), err_msg=name)


def test_anndata_write_loom_warns_about_the_converted_columns(tmp_path) -> None:
    adata = annotated(np.random.default_rng(6))
    with loompy_is(loomfile), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        adata.write_loom(os.fspath(tmp_path / "w.loom"))
    converted = sorted(str(w.message).split(":")[0] for w in record if "converted to text" in str(w.message))
    assert converted == [
        "Column attribute 'donor_na'",
        "Column attribute 'is_doublet_na'",
        "Column attribute 'n_genes_na'",
    ]


def test_write_then_read_round_trip_matches_loompy(tmp_path) -> None:
    adata = annotated(np.random.default_rng(7))
    paths = iter([os.fspath(tmp_path / "loompy.loom"), os.fspath(tmp_path / "loomfile.loom")])

    def round_trip() -> ad.AnnData:
        path = next(paths)
        adata.write_loom(path, write_obsm_varm=True)
        return ad.io.read_loom(path, sparse=False, obs_names="obs_names", var_names="var_names")

    expected, got = both(round_trip)
    assert_same_adata(got, expected)


def test_scanpy_read_loom() -> None:
    pytest.importorskip(
        "scanpy",
        reason="scanpy is not installed in the test environment (its dependencies are heavy); "
        "scanpy.read_loom calls anndata.io.read_loom, covered above",
    )


# --- loompy's own unit tests (tests/test_main.py, tests/test_connection.py in loompy's repository) ------


def test_loompy_test_main_new(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with loompy_is(loomfile):
        import loompy as lp

        with lp.new("test.loom") as ds:
            m = np.zeros((20, 100))
            ra = {"Gene": list("ABCDEFGHILJKLMNOPQRS")}
            ca = {"Cell": np.arange(100)}
            ds.add_columns(m, ca, row_attrs=ra)
            ds.add_columns(m, ca, row_attrs=ra)
        with lp.connect("test.loom") as ds:
            assert ds.shape == (20, 200)


def test_loompy_test_main_sparse(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with loompy_is(loomfile):
        import loompy as lp

        g, c = 1000, 100
        s = sparse.eye(g, c)
        lp.create("test.loom", s, {"g_id": np.arange(g)}, {"c_id": np.arange(c)})
        with lp.connect("test.loom") as ds:
            ds["layer"] = s
            assert np.all(ds[:, :] == s.toarray())
            assert np.all(ds.sparse().data == s.tocoo().data)
            assert np.all(ds.layers["layer"][:, :] == s.toarray())
            assert np.all(ds.layers["layer"].sparse().data == s.tocoo().data)


def test_loompy_test_connection_scan_with_default_ordering(tmp_path) -> None:
    path = os.fspath(tmp_path / "scan.loom")
    with loompy_is(loomfile):
        import loompy as lp

        lp.create(
            path,
            np.random.default_rng(0).random((5, 5)),
            row_attrs={"key": np.arange(5)},
            col_attrs={"key": np.arange(5)},
        )
        with lp.connect(path) as ds:
            for axis in [0, 1]:
                _, _, view = next(iter(ds.scan(axis=axis)))
                no_ordering_data = view[:, :]
                _, _, view = next(iter(ds.scan(axis=axis, key="key")))
                original_ordering_data = view[:, :]
                np.testing.assert_almost_equal(no_ordering_data, original_ordering_data)


# --- round trips anndata's own loom scenarios exercise (categoricals with NaN, named indexes, numpy
# --- string column names, many categories, positional ``sparse``) --------------------------------------


def scenario(name: str) -> ad.AnnData:
    rng = np.random.default_rng(len(name))
    n_obs, n_vars = 40, 7
    x = rng.poisson(1.0, (n_obs, n_vars)).astype(np.float32)
    obs = pd.DataFrame(index=[f"o{i}" for i in range(n_obs)])
    var = pd.DataFrame(index=[f"v{j}" for j in range(n_vars)])
    if name == "categorical_nan":
        obs["cat1"] = ["a", "a", "b", np.nan, np.nan] * 8
        obs["cat2"] = pd.Categorical(["a", "a", "b", np.nan, np.nan] * 8)
    elif name == "named_indexes":
        obs.index.name, var.index.name = "cells", "genes"
        obs["score"] = rng.random(n_obs)
    elif name == "numpy_str_columns":
        obs[np.str_("b")] = np.ones(n_obs)
        obs["a"] = np.zeros(n_obs)
    elif name == "many_categories":
        labels = np.array([f"cat{i:04d}" for i in range(500)])
        obs["cat"] = pd.Categorical.from_codes(rng.integers(0, 500, n_obs), labels)
    return ad.AnnData(x, obs=obs, var=var)


@pytest.mark.parametrize("name", ["categorical_nan", "named_indexes", "numpy_str_columns", "many_categories"])
@pytest.mark.parametrize("read_sparse", [False, True])
def test_anndata_round_trips_match_loompy(tmp_path, name: str, read_sparse: bool) -> None:
    adata = scenario(name)
    obs_names = adata.obs_names.name or "obs_names"
    var_names = adata.var_names.name or "var_names"
    paths = iter([os.fspath(tmp_path / "loompy.loom"), os.fspath(tmp_path / "loomfile.loom")])

    def round_trip() -> ad.AnnData:
        path = next(paths)
        adata.write_loom(path)
        return ad.io.read_loom(path, sparse=read_sparse, obs_names=obs_names, var_names=var_names)

    expected, got = both(round_trip)
    assert_same_adata(got, expected)
    assert got.obs_names.name == expected.obs_names.name


def test_anndata_read_loom_positional_sparse_matches_loompy(velocyto_like: str) -> None:
    expected, got = both(lambda: ad.io.read_loom(velocyto_like, False))
    assert_same_adata(got, expected)
