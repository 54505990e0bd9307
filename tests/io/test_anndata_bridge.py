"""The AnnData bridge against anndata itself (read_loom) and loompy 3.0.8 as oracles."""

from __future__ import annotations

import os
import sys
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import loompy
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sparse

import loomfile
from loomfile.io.anndata import AnnDataImportError

N_GENES, N_CELLS = 70, 90  # not multiples of the 64 x 64 chunks: partial chunks on both axes
LAYER_DTYPES = ["float32", "float64", "uint16", "int32"]


def dense(m: Any) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def random_graph(rng: np.random.Generator, n: int, edges: int) -> sparse.coo_matrix:
    a, b = rng.integers(0, n, edges), rng.integers(0, n, edges)
    keep = np.unique(a * n + b, return_index=True)[1]  # no duplicate edges
    return sparse.coo_matrix((rng.random(keep.size), (a[keep], b[keep])), shape=(n, n))


def make_loom(path: Path, dtype: str, *, spliced: bool, seed: int = 1) -> dict[str, Any]:
    """A Loom file with layers, 1-D and 2-D attributes of each kind, graphs and global attributes;
    returns what was written."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.4, (N_GENES, N_CELLS)).astype(dtype)
    layers = {"": counts, "unspliced": (counts * 2).astype(dtype)}
    if spliced:
        layers["spliced"] = (counts + 1).astype(dtype)
    row_attrs = {
        "Gene": np.array([f"G{i}" for i in range(N_GENES)], dtype=object),
        "Accession": np.array([f"ENSG{i:05d}" for i in range(N_GENES)], dtype=object),
        "GC": rng.random(N_GENES),
        "Selected": rng.integers(0, 2, N_GENES),
        "Loadings": rng.normal(size=(N_GENES, 3)),
    }
    col_attrs = {
        "CellID": np.array([f"cell_{j}" for j in range(N_CELLS)], dtype=object),
        "ClusterID": rng.integers(0, 5, N_CELLS),
        "Size": rng.random(N_CELLS).astype(np.float32),
        "Valid": rng.random(N_CELLS) < 0.5,
        "Column": rng.random((N_CELLS, 1)),
        "PCA": rng.normal(size=(N_CELLS, 4)),
    }
    file_attrs = {"title": "a test file", "version": 3, "weights": np.arange(4.0)}
    loomfile.create(os.fspath(path), layers, row_attrs, col_attrs, file_attrs=file_attrs)
    graphs = {"KNN": random_graph(rng, N_CELLS, 300), "net": random_graph(rng, N_GENES, 150)}
    with loomfile.connect(path) as ds:
        ds.col_graphs["KNN"] = graphs["KNN"]
        ds.row_graphs["net"] = graphs["net"]
    return {"layers": layers, "graphs": graphs, "file_attrs": file_attrs}


def assert_same_matrix(ours: Any, expected: Any, *, as_sparse: bool) -> None:
    assert sparse.issparse(ours) == as_sparse
    if as_sparse:
        assert ours.format == "csr"
    np.testing.assert_array_equal(dense(ours), dense(expected))


def assert_same_arrays(ours: Any, theirs: Any) -> None:
    assert sorted(ours.keys()) == sorted(theirs.keys())
    for key in theirs.keys():
        np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(theirs[key]))


# --- Loom -> AnnData, against anndata.io.read_loom ----------------------------------------------------


@pytest.mark.parametrize("as_sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("spliced", [False, True], ids=["plain", "velocyto"])
@pytest.mark.parametrize("dtype", LAYER_DTYPES)
def test_to_anndata_matches_read_loom(tmp_path: Path, dtype: str, spliced: bool, as_sparse: bool) -> None:
    path = tmp_path / "f.loom"
    written = make_loom(path, dtype, spliced=spliced)
    theirs = ad.io.read_loom(path, sparse=as_sparse)
    with loomfile.connect(path, "r") as ds:
        ours = ds.to_anndata(sparse=as_sparse)

    assert ours.shape == theirs.shape == (N_CELLS, N_GENES)
    assert ours.X.dtype == theirs.X.dtype == np.float32
    assert_same_matrix(ours.X, theirs.X, as_sparse=as_sparse)
    expected_x = written["layers"]["spliced" if spliced else ""].T
    np.testing.assert_array_equal(dense(ours.X), expected_x.astype(np.float32))

    assert sorted(ours.layers.keys()) == sorted(theirs.layers.keys())
    for key in theirs.layers.keys():
        assert_same_matrix(ours.layers[key], theirs.layers[key], as_sparse=as_sparse)
        assert ours.layers[key].dtype == np.dtype(dtype)  # read_loom's sparse layers are float64
    pd.testing.assert_frame_equal(ours.obs, theirs.obs, check_like=True)
    pd.testing.assert_frame_equal(ours.var, theirs.var, check_like=True)
    assert list(ours.obs_names) == [f"cell_{j}" for j in range(N_CELLS)]
    assert_same_arrays(ours.obsm, theirs.obsm)
    assert_same_arrays(ours.varm, theirs.varm)

    # What read_loom drops: graphs and global attributes.
    assert len(theirs.obsp) == len(theirs.varp) == len(theirs.uns) == 0
    with loompy.connect(os.fspath(path), "r") as lp:
        np.testing.assert_array_equal(ours.obsp["KNN"].toarray(), lp.col_graphs["KNN"].toarray())
        np.testing.assert_array_equal(ours.varp["net"].toarray(), lp.row_graphs["net"].toarray())
        assert sorted(ours.uns) == sorted(k for k in lp.attrs.keys() if k != "LOOM_SPEC_VERSION")
        for key in ours.uns:
            np.testing.assert_array_equal(ours.uns[key], lp.attrs[key])
    np.testing.assert_array_equal(ours.obsp["KNN"].toarray(), written["graphs"]["KNN"].toarray())
    assert ours.uns["title"] == "a test file"
    assert ours.obsp["KNN"].format == "csr"


def test_to_anndata_options_match_read_loom(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    make_loom(path, "float32", spliced=True)
    with loomfile.connect(path) as ds:
        ds.ca["Batch"] = np.full(N_CELLS, "b1", dtype=object)  # one value: cleanup moves it to uns
    options: dict[str, Any] = {
        "X_name": "unspliced",
        "dtype": "float64",
        "varm_mapping": {"X_gc": ["GC", "Selected"]},
        "cleanup": True,
        "sparse": False,
    }
    theirs = ad.io.read_loom(path, **options)
    with loomfile.connect(path, "r") as ds:
        ours = ds.to_anndata(**options)
    assert ours.X.dtype == theirs.X.dtype == np.float64
    np.testing.assert_array_equal(ours.X, theirs.X)
    assert_same_arrays(ours.varm, theirs.varm)
    pd.testing.assert_frame_equal(ours.var, theirs.var, check_like=True)
    pd.testing.assert_frame_equal(ours.obs, theirs.obs, check_like=True)
    assert ours.uns["loom-obs"] == theirs.uns["loom-obs"]
    assert theirs.uns["loom-obs"] == {"Batch": "b1"}


def test_to_anndata_layers_and_dtype(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    written = make_loom(path, "uint16", spliced=True)
    with loomfile.connect(path, "r") as ds:
        only_x = ds.to_anndata(layers=[], dtype=None)
        main = ds.to_anndata(X_name="", layers=["", "spliced"])
    assert len(only_x.layers) == 0
    assert only_x.X.dtype == np.uint16
    np.testing.assert_array_equal(dense(only_x.X), written["layers"]["spliced"].T)
    assert sorted(main.layers.keys()) == ["matrix", "spliced"]
    np.testing.assert_array_equal(dense(main.X), written["layers"][""].T)
    np.testing.assert_array_equal(dense(main.layers["matrix"]), written["layers"][""].T)


def test_to_anndata_keeps_non_ascii_text(tmp_path: Path) -> None:
    """loompy 3.0.8 (under read_loom) drops non-ASCII characters from strings; loomfile keeps them."""
    path = tmp_path / "f.loom"
    cells = np.array(["naïve_T", "B_cell", "Treg_β"], dtype=object)
    genes = np.array(["S6Kβ", "Actb"], dtype=object)
    loomfile.create(
        os.fspath(path), np.ones((2, 3), np.float32), {"Gene": genes}, {"CellID": cells, "Label": cells}
    )
    theirs = ad.io.read_loom(path)
    with loomfile.connect(path, "r") as ds:
        ours = ds.to_anndata()
    assert list(ours.obs_names) == list(cells)
    assert list(ours.obs["Label"]) == list(cells)
    assert list(ours.var_names) == list(genes)
    assert list(theirs.obs_names) == ["nave_T", "B_cell", "Treg_"]


def test_to_anndata_without_name_attributes(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    loomfile.create(os.fspath(path), np.eye(3, 4, dtype=np.float32), {"n": np.arange(3)}, {"m": np.arange(4)})
    theirs = ad.io.read_loom(path)
    with loomfile.connect(path, "r") as ds, warnings.catch_warnings():
        warnings.simplefilter("error")  # read_loom warns "Transforming to str index"; this does not
        ours = ds.to_anndata()
    assert list(ours.obs_names) == list(theirs.obs_names) == ["0", "1", "2", "3"]
    assert list(ours.var_names) == list(theirs.var_names) == ["0", "1", "2"]
    pd.testing.assert_frame_equal(ours.obs, theirs.obs)


def test_compound_attribute_becomes_obsm_frame(tmp_path: Path) -> None:
    """SCENIC's compound regulon attributes: an obsm DataFrame, and back (read_loom cannot hold them)."""
    path = tmp_path / "f.loom"
    auc = np.zeros(4, dtype=[("RegA", "f8"), ("RegB", "f4")])
    auc["RegA"], auc["RegB"] = [0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4]
    loomfile.create(os.fspath(path), np.ones((3, 4), np.float32), {}, {"RegulonsAUC": auc})
    with loomfile.connect(path, "r") as ds:
        adata = ds.to_anndata()
    frame = adata.obsm["RegulonsAUC"]
    assert list(frame.columns) == ["RegA", "RegB"]
    np.testing.assert_array_equal(frame["RegB"].to_numpy(), auc["RegB"])
    out = tmp_path / "back.loom"
    loomfile.from_anndata(adata, out)
    with loompy.connect(os.fspath(out), "r", validate=False) as lp:  # its validator refuses compound types
        back = lp.ca["RegulonsAUC"]
    assert back.dtype.names == ("RegA", "RegB")
    np.testing.assert_array_equal(back["RegA"], auc["RegA"])


@pytest.mark.parametrize("as_sparse", [True, False], ids=["sparse", "dense"])
def test_view_to_anndata(tmp_path: Path, as_sparse: bool) -> None:
    path = tmp_path / "f.loom"
    make_loom(path, "float32", spliced=False)
    rows, cols = np.arange(5, 60, 3), np.flatnonzero(np.arange(N_CELLS) % 4 != 1)
    full = ad.io.read_loom(path, sparse=False)[cols, rows].copy()
    with loomfile.connect(path, "r") as ds:
        whole = ds.to_anndata()
        ours = ds.view[rows, cols].to_anndata(sparse=as_sparse)
    assert ours.shape == (cols.size, rows.size)
    np.testing.assert_array_equal(dense(ours.X), full.X)
    for key in full.layers.keys():
        assert_same_matrix(ours.layers[key], full.layers[key], as_sparse=as_sparse)
    pd.testing.assert_frame_equal(ours.obs, full.obs, check_like=True)
    pd.testing.assert_frame_equal(ours.var, full.var, check_like=True)
    assert_same_arrays(ours.obsm, full.obsm)
    np.testing.assert_array_equal(ours.obsp["KNN"].toarray(), whole.obsp["KNN"][cols][:, cols].toarray())
    np.testing.assert_array_equal(ours.varp["net"].toarray(), whole.varp["net"][rows][:, rows].toarray())
    assert ours.uns["title"] == "a test file"


# --- AnnData -> Loom -----------------------------------------------------------------------------------


def make_anndata(dtype: str, as_sparse: bool, seed: int = 2) -> ad.AnnData:
    """An AnnData with every kind of item from_anndata writes."""
    rng = np.random.default_rng(seed)
    n_obs, n_vars = 80, 66
    counts = rng.poisson(0.3, (n_obs, n_vars)).astype(dtype)
    x = sparse.csr_matrix(counts) if as_sparse else counts
    obs = pd.DataFrame(
        {
            "n_counts": counts.sum(axis=1).astype(np.float64),
            "batch": pd.Categorical(rng.choice(["a", "b", "c"], n_obs)),
            "leiden": pd.Categorical(rng.integers(0, 4, n_obs)),
            "label": [f"L{j % 7}" for j in range(n_obs)],
            "is_doublet": rng.random(n_obs) < 0.1,
            "score": pd.array(rng.integers(0, 9, n_obs), dtype="Int64"),
            "missing": np.where(rng.random(n_obs) < 0.2, np.nan, 1.0),
        },
        index=[f"AAAC-{j}" for j in range(n_obs)],
    )
    var = pd.DataFrame(
        {"gene_ids": [f"ENSG{i}" for i in range(n_vars)], "highly_variable": rng.random(n_vars) < 0.3},
        index=[f"gene{i}" for i in range(n_vars)],
    )
    adata = ad.AnnData(x, obs=obs, var=var)
    adata.layers["counts"] = (x * 3).astype(dtype) if as_sparse else counts * 3
    adata.obsm["X_pca"] = rng.normal(size=(n_obs, 5)).astype(np.float32)
    adata.obsm["X_umap"] = rng.normal(size=(n_obs, 2))
    adata.varm["PCs"] = rng.normal(size=(n_vars, 5))
    adata.obsp["connectivities"] = random_graph(rng, n_obs, 400).tocsr()
    adata.varp["coexpression"] = random_graph(rng, n_vars, 100).tocsr()
    adata.uns["title"] = "from anndata"
    adata.uns["leiden_colors"] = ["#1f77b4", "#ff7f0e", "#279e68", "#d62728"]
    adata.uns["resolution"] = 0.8
    adata.uns["pca_variance"] = rng.random(5)
    return adata


def written(tmp_path: Path, dtype: str, as_sparse: bool) -> tuple[ad.AnnData, Path]:
    """make_anndata's AnnData and the Loom file from_anndata wrote from it."""
    adata = make_anndata(dtype, as_sparse)
    path = tmp_path / "out.loom"
    loomfile.from_anndata(adata, path)
    return adata, path


def expected_obs(adata: ad.AnnData, categoricals: bool = False) -> pd.DataFrame:
    """obs as Loom holds it: categories as their values (or, read back by loomfile, the same
    categoricals), bools as uint8, nullable ints as int64."""
    obs = adata.obs.copy()
    if not categoricals:
        obs["batch"] = obs["batch"].astype(str).astype(object)
        obs["leiden"] = obs["leiden"].astype(np.int64)
    obs["is_doublet"] = obs["is_doublet"].astype(np.uint8)
    obs["score"] = obs["score"].astype(np.int64)
    obs.index.name = "CellID"
    return obs


@pytest.mark.parametrize("as_sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("dtype", LAYER_DTYPES)
def test_from_anndata_read_back_by_anndata(tmp_path: Path, dtype: str, as_sparse: bool) -> None:
    adata, path = written(tmp_path, dtype, as_sparse)
    back = ad.io.read_loom(path, sparse=as_sparse, dtype=dtype)
    assert back.shape == adata.shape
    assert back.X.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dense(back.X), dense(adata.X))
    np.testing.assert_array_equal(dense(back.layers["counts"]), dense(adata.layers["counts"]))
    pd.testing.assert_frame_equal(back.obs, expected_obs(adata), check_like=True)
    var = adata.var.assign(highly_variable=adata.var["highly_variable"].astype(np.uint8))
    var.index.name = "Gene"
    pd.testing.assert_frame_equal(back.var, var, check_like=True)
    assert_same_arrays(back.obsm, adata.obsm)
    assert_same_arrays(back.varm, adata.varm)


@pytest.mark.parametrize("as_sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_from_anndata_read_back_by_loompy(tmp_path: Path, dtype: str, as_sparse: bool) -> None:
    adata, path = written(tmp_path, dtype, as_sparse)
    with loompy.connect(os.fspath(path), "r") as lp:
        assert lp.shape == (adata.n_vars, adata.n_obs)
        assert lp.layers[""].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(lp[:, :], dense(adata.X).T)
        np.testing.assert_array_equal(lp.layers["counts"][:, :], dense(adata.layers["counts"]).T)
        np.testing.assert_array_equal(lp.ca.CellID, adata.obs_names)
        np.testing.assert_array_equal(lp.ra.Gene, adata.var_names)
        np.testing.assert_array_equal(lp.ca.batch, adata.obs["batch"].astype(str))
        np.testing.assert_array_equal(lp.ca.X_pca, adata.obsm["X_pca"])
        np.testing.assert_array_equal(lp.ra.PCs, adata.varm["PCs"])
        np.testing.assert_array_equal(
            lp.col_graphs["connectivities"].toarray(), adata.obsp["connectivities"].toarray()
        )
        np.testing.assert_array_equal(
            lp.row_graphs["coexpression"].toarray(), adata.varp["coexpression"].toarray()
        )
        assert lp.attrs["title"] == "from anndata"
        assert list(lp.attrs["leiden_colors"]) == adata.uns["leiden_colors"]
        np.testing.assert_array_equal(lp.attrs["pca_variance"], adata.uns["pca_variance"])
        assert lp.attrs["LOOM_SPEC_VERSION"] == "3.0.0"


@pytest.mark.parametrize("as_sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("dtype", LAYER_DTYPES)
def test_round_trip_through_loomfile(tmp_path: Path, dtype: str, as_sparse: bool) -> None:
    """from_anndata then to_anndata gives the AnnData back, graphs and uns included."""
    adata, path = written(tmp_path, dtype, as_sparse)
    with loomfile.connect(path, "r") as ds:
        back = ds.to_anndata(sparse=as_sparse, dtype=None)
    assert back.X.dtype == np.dtype(dtype)
    assert_same_matrix(back.X, adata.X, as_sparse=as_sparse)
    assert_same_matrix(back.layers["counts"], adata.layers["counts"], as_sparse=as_sparse)
    assert back.layers["counts"].dtype == adata.layers["counts"].dtype
    pd.testing.assert_frame_equal(back.obs, expected_obs(adata, categoricals=True), check_like=True)
    assert list(back.var_names) == list(adata.var_names)
    assert_same_arrays(back.obsm, adata.obsm)
    assert_same_arrays(back.varm, adata.varm)
    assert back.obsm["X_pca"].dtype == np.float32
    for key in ("connectivities",):
        np.testing.assert_allclose(back.obsp[key].toarray(), adata.obsp[key].toarray())
    np.testing.assert_allclose(back.varp["coexpression"].toarray(), adata.varp["coexpression"].toarray())
    assert back.uns["title"] == adata.uns["title"]
    assert back.uns["resolution"] == adata.uns["resolution"]
    assert list(back.uns["leiden_colors"]) == adata.uns["leiden_colors"]
    np.testing.assert_array_equal(back.uns["pca_variance"], adata.uns["pca_variance"])


def test_loom_round_trip_keeps_the_file(tmp_path: Path) -> None:
    """Loom -> AnnData -> Loom, with cleanup: every layer, attribute, graph and global attribute back."""
    path, out = tmp_path / "f.loom", tmp_path / "g.loom"
    make_loom(path, "float32", spliced=False)
    with loomfile.connect(path) as ds:
        ds.ra["Species"] = np.full(N_GENES, "mouse", dtype=object)
        adata = ds.to_anndata(cleanup=True, dtype=None)
    assert adata.uns["loom-var"] == {"Species": "mouse"}
    loomfile.from_anndata(adata, out)
    with loompy.connect(os.fspath(path), "r") as a, loompy.connect(os.fspath(out), "r") as b:
        assert sorted(a.layers.keys()) == sorted(b.layers.keys())
        for name in a.layers.keys():
            np.testing.assert_array_equal(a.layers[name][:, :], b.layers[name][:, :])
        for mine, theirs in ((a.ra, b.ra), (a.ca, b.ca)):
            assert sorted(mine.keys()) == sorted(theirs.keys())
            for key in mine.keys():
                expected = mine[key][:, 0] if key == "Column" else mine[key]  # (n, 1) reads as a column
                np.testing.assert_array_equal(theirs[key], expected)
        np.testing.assert_array_equal(a.col_graphs["KNN"].toarray(), b.col_graphs["KNN"].toarray())
        assert {k: a.attrs[k] for k in ("title", "CreationDate")} == {
            k: b.attrs[k] for k in ("title", "CreationDate")
        }


def test_less_common_items_both_ways(tmp_path: Path) -> None:
    """Nullable string/boolean columns, a sparse obsm entry and a 3-D attribute."""
    rng = np.random.default_rng(4)
    adata = ad.AnnData(rng.random((6, 4)).astype(np.float32))
    adata.obs["donor"] = pd.array(["d1", "d2"] * 3, dtype="string")
    adata.obs["ok"] = pd.array([True, False, True] * 2, dtype="boolean")
    adata.obsm["sparse_emb"] = sparse.csr_matrix(np.eye(6, 3))
    adata.varm["cube"] = rng.random((4, 2, 3))
    path = tmp_path / "x.loom"
    loomfile.from_anndata(adata, path)
    with loompy.connect(os.fspath(path), "r") as lp:
        assert list(lp.ca.donor) == ["d1", "d2"] * 3
        assert lp.ca.ok.dtype == np.uint8
        np.testing.assert_array_equal(lp.ca.ok, [1, 0, 1] * 2)
        np.testing.assert_array_equal(lp.ca.sparse_emb, np.eye(6, 3))
    with loomfile.connect(path, "r") as ds:
        back = ds.to_anndata()
    np.testing.assert_array_equal(back.varm["cube"], adata.varm["cube"])
    np.testing.assert_array_equal(back.obsm["sparse_emb"], np.eye(6, 3))
    assert list(back.obs["donor"]) == ["d1", "d2"] * 3


# --- memory: sparse stays sparse ---------------------------------------------------------------------


def test_sparse_paths_never_densify(tmp_path: Path) -> None:
    """A 0.2% dense matrix whose dense form is 400 MB goes both ways with a fraction of that traced
    (the chunk engine's blocks and the nonzeros; about 30 MB writing and 70 MB reading)."""
    n_obs, n_vars = 10_000, 10_000
    rng = np.random.default_rng(3)
    cells, genes = np.repeat(np.arange(n_obs), 20), rng.integers(0, n_vars, n_obs * 20)
    x = sparse.csr_matrix((rng.random(cells.size, np.float32) + 1, (cells, genes)), shape=(n_obs, n_vars))
    adata = ad.AnnData(x)
    path = tmp_path / "big.loom"
    dense_bytes = n_obs * n_vars * 4
    tracemalloc.start()
    try:
        loomfile.from_anndata(adata, path)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with loomfile.connect(path, "r") as ds:
            back = ds.to_anndata()
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (x != back.X).nnz == 0
    assert write_peak < dense_bytes / 4
    assert read_peak < dense_bytes / 4


# --- bad input -------------------------------------------------------------------------------------------


@pytest.fixture
def small_adata() -> ad.AnnData:
    return make_anndata("float32", True)


def test_from_anndata_refuses_non_anndata(tmp_path: Path) -> None:
    with pytest.raises(loomfile.LoomValueError, match=r"needs an anndata\.AnnData, not ndarray"):
        loomfile.from_anndata(np.zeros((2, 2)), tmp_path / "x.loom")


def test_from_anndata_refuses_missing_x(tmp_path: Path) -> None:
    adata = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]), var=pd.DataFrame(index=["g"]))
    with pytest.raises(loomfile.LoomValueError, match="has no X"):
        loomfile.from_anndata(adata, tmp_path / "x.loom")
    assert not (tmp_path / "x.loom").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.uns.__setitem__("neighbors", {"params": {"when": pd.Timestamp(0)}}),
         r"uns\['neighbors'\]\['params'\]\['when'\] is a Timestamp"),
        (lambda a: a.uns.__setitem__("table", {1: "x"}), r"uns\['table'\] has the key 1"),
        (lambda a: a.uns.__setitem__("LOOM_SPEC_VERSION", "2.0.1"), "spec version"),
        (lambda a: a.uns.__setitem__("nothing", None), r"uns\['nothing'\]"),
        (lambda a: a.obs.__setitem__("CellID", "x"), "obs_names 'CellID' and the obs column 'CellID'"),
        (lambda a: a.obs.__setitem__("X_pca", 1.0), "obsm 'X_pca' and the obs column 'X_pca'"),
        (lambda a: a.obs.__setitem__("when", pd.Timestamp("2024-01-01")), r"obs column.*datetime64"),
        (
            lambda a: a.var.__setitem__("n", pd.array([1, None] * 33, dtype="Int64")),
            r"var\['n'\] has missing values",
        ),
        (lambda a: a.obs.__setitem__("tag", ["x", None] * 40), r"obs\['tag'\] has missing values"),
        (lambda a: a.layers.__setitem__("flags", np.ones(a.shape, bool)), "Layer 'flags'"),
        (lambda a: a.layers.__setitem__("a/b", a.X), "Layer name 'a/b' cannot contain '/'"),
    ],
    ids=[
        "nested-uns-timestamp",
        "uns-int-key",
        "spec-version",
        "none-uns",
        "index-clash",
        "obsm-clash",
        "datetime",
        "int-na",
        "str-na",
        "bool-layer",
        "slash-layer",
    ],
)
def test_from_anndata_bad_items(tmp_path: Path, small_adata: ad.AnnData, change: Any, message: str) -> None:
    change(small_adata)
    path = tmp_path / "x.loom"
    with pytest.raises(loomfile.LoomValueError, match=message):
        loomfile.from_anndata(small_adata, path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind


def test_from_anndata_uns_selection(tmp_path: Path, small_adata: ad.AnnData) -> None:
    small_adata.uns["neighbors"] = {"params": {"k": 15}}  # left out when not named
    path = tmp_path / "x.loom"
    loomfile.from_anndata(small_adata, path, uns=["title", "resolution"])
    with loompy.connect(os.fspath(path), "r") as lp:
        assert sorted(lp.attrs.keys()) == [
            "CreationDate", "LOOM_SPEC_VERSION", "loomfile-categories", "resolution", "title"
        ]  # (the categories of obs columns: written whatever uns holds)
    loomfile.from_anndata(small_adata, path, uns=False, obs_names="barcode", var_names=None)
    with loompy.connect(os.fspath(path), "r") as lp:
        assert "title" not in lp.attrs
        np.testing.assert_array_equal(lp.ca.barcode, small_adata.obs_names)
        assert "Gene" not in lp.ra
    with pytest.raises(loomfile.LoomKeyError, match=r"The uns entries \['absent'\] do not exist"):
        loomfile.from_anndata(small_adata, path, uns=["absent"])


def test_to_anndata_bad_names(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    make_loom(path, "float32", spliced=False)
    with loomfile.connect(path, "r") as ds:
        with pytest.raises(loomfile.LoomKeyError, match="X_name 'spliced' is not a layer"):
            ds.to_anndata(X_name="spliced")
        with pytest.raises(
            loomfile.LoomKeyError, match=r"The layers \['nope'\] do not exist; this file's layers are"
        ):
            ds.to_anndata(layers=["nope"])
        with pytest.raises(loomfile.LoomKeyError, match=r"do not exist: \['umap_1'\]"):
            ds.to_anndata(obsm_mapping={"X_umap": ["umap_1", "Size"]})


def test_to_anndata_main_layer_name_clash(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    loomfile.create(os.fspath(path), {"": np.ones((2, 3)), "matrix": np.zeros((2, 3))}, {}, {})
    with loomfile.connect(path, "r") as ds, pytest.raises(loomfile.LoomValueError, match="'matrix'"):
        ds.to_anndata(X_name="matrix")


def test_missing_anndata_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.loom"
    loomfile.create(os.fspath(path), np.ones((2, 3)), {}, {})
    monkeypatch.setitem(sys.modules, "anndata", None)  # makes `import anndata` raise ImportError
    with (
        loomfile.connect(path, "r") as ds,
        pytest.raises(AnnDataImportError, match=r"pip install 'loomfile\[anndata\]'"),
    ):
        ds.to_anndata()
    with pytest.raises(ImportError, match="from_anndata needs anndata"):
        loomfile.from_anndata(object(), path)
    assert issubclass(AnnDataImportError, loomfile.LoomError)


def scanpy_uns(rng: np.random.Generator) -> dict[str, Any]:
    """What a scanpy pipeline (pca, neighbors, leiden, rank_genes_groups) leaves in uns."""
    names = np.zeros(3, dtype=[("0", "U8"), ("1", "U8")])
    names["0"], names["1"] = ["G1", "G2", "G3"], ["G4", "G5", "Gène6"]
    scores = np.zeros(3, dtype=[("0", "<f4"), ("1", "<f4")])
    scores["0"] = rng.random(3)
    return {
        "pca": {"params": {"zero_center": True, "use_highly_variable": False},
                "variance": rng.random(5).astype(np.float32), "variance_ratio": rng.random(5)},
        "neighbors": {"connectivities_key": "connectivities", "distances_key": "distances",
                      "params": {"n_neighbors": 15, "method": "umap", "random_state": 0, "metric": "euclidean"}},
        "leiden": {"params": {"resolution": 1.0, "n_iterations": -1}},
        "leiden_colors": np.array(["#1f77b4", "#ff7f0e"], dtype=object),
        "rank_genes_groups": {"names": names, "scores": scores,
                              "params": {"groupby": "leiden", "reference": "rest", "use_raw": None}},
        "hvg": {"flavor": "seurat", "bounds": [0.1, 3], "pair": (1, "a")},
        "table": pd.DataFrame({"x": [1.5, 2.5], "label": ["a", "b"]}, index=["r1", "r2"]),
    }


def assert_same_uns(got: Any, expected: Any, where: str = "uns") -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key in expected:
            assert_same_uns(got[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert list(got.dtypes.astype(str)[:1]) == ["float64"], where
    elif isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), where
        if expected.dtype.names:
            assert got.dtype.names == expected.dtype.names, where
            for name in expected.dtype.names:
                np.testing.assert_array_equal(got[name], expected[name], err_msg=where)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=where)
            if expected.dtype != object:
                assert got.dtype == expected.dtype, where
    else:
        assert type(got) is type(expected) and got == expected, where


def test_nested_uns_written_by_default_and_restored(tmp_path: Path, small_adata: ad.AnnData) -> None:
    """scanpy's nested uns entries are written by default as JSON text (loompy reads them as strings)
    and come back from to_anndata as the same dicts, arrays with their dtypes."""
    uns = scanpy_uns(np.random.default_rng(3))
    small_adata.uns.update(uns)
    path = tmp_path / "x.loom"
    loomfile.from_anndata(small_adata, path)
    with loompy.connect(os.fspath(path), "r") as lp:
        text = lp.attrs["neighbors"]
        assert isinstance(text, str) and '"n_neighbors": 15' in text
    with loomfile.connect(path, "r") as ds:
        back = ds.to_anndata()
    for key, value in uns.items():
        assert_same_uns(back.uns[key], value, f"uns[{key!r}]")


def test_json_text_written_by_others_stays_text(tmp_path: Path) -> None:
    """SCENIC keeps its MetaData as JSON text; to_anndata gives it as that string, not a dict."""
    path = tmp_path / "scenic.loom"
    make_loom(path, "float32", spliced=False)
    meta = '{"embeddings": [{"id": -1, "name": "UMAP"}], "clusterings": []}'
    with loomfile.connect(path) as ds:
        ds.attrs["MetaData"] = meta
        assert ds.to_anndata().uns["MetaData"] == meta


def test_loom_to_h5ad_to_loom_is_the_identity(tmp_path: Path) -> None:
    """A velocyto file (X is "spliced", the main matrix goes to layers["matrix"]) comes back with the
    same layers (names, dtypes, values): no duplicate "matrix" layer, the main matrix in its place."""
    path, h5ad, back = tmp_path / "v.loom", tmp_path / "v.h5ad", tmp_path / "back.loom"
    make_loom(path, "uint16", spliced=True)
    with loomfile.connect(path, "r") as ds:
        ds.to_anndata().write_h5ad(h5ad)
    loomfile.from_anndata(ad.read_h5ad(h5ad), back)
    with h5py_file(path) as a, h5py_file(back) as b:
        assert sorted(a["layers"]) == sorted(b["layers"]) == ["spliced", "unspliced"]
        for name in ("matrix", "layers/spliced", "layers/unspliced"):
            assert a[name].dtype == b[name].dtype, name
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
        assert sorted(a["col_graphs"]) == sorted(b["col_graphs"])
    # anndata's own reader gives the same round trip
    loomfile.from_anndata(ad.io.read_loom(path), back)
    with h5py_file(path) as a, h5py_file(back) as b:
        assert sorted(a["layers"]) == sorted(b["layers"])
        np.testing.assert_array_equal(a["matrix"][()], b["matrix"][()])


def test_a_changed_x_is_kept_as_the_main_matrix(tmp_path: Path) -> None:
    """When X is new data (normalised), nothing is dropped: X is the main matrix, "matrix" a layer."""
    path, back = tmp_path / "v.loom", tmp_path / "back.loom"
    make_loom(path, "float32", spliced=True)
    with loomfile.connect(path, "r") as ds:
        adata = ds.to_anndata()
    adata.X = adata.X * 2
    loomfile.from_anndata(adata, back)
    with loomfile.connect(back, "r") as b:
        assert sorted(b.layers.keys()) == ["", "matrix", "spliced", "unspliced"]
        np.testing.assert_array_equal(b[:, :], dense(adata.X).T)


def test_repeated_graph_edges_merged_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "g.loom"
    make_loom(path, "float32", spliced=False)
    with loomfile.connect(path) as ds:
        ds.col_graphs["dup"] = sparse.coo_matrix(([1.0, 2.0, 5.0], ([0, 0, 3], [1, 1, 4])), shape=(N_CELLS, N_CELLS))
        with pytest.warns(UserWarning, match=r"obsp\['dup'\]: 1 repeated edges"):
            adata = ds.to_anndata()
    assert adata.obsp["dup"][0, 1] == 3.0 and adata.obsp["dup"].nnz == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with loomfile.connect(path) as ds:
            del ds.col_graphs["dup"]
            ds.to_anndata()  # graphs without repeats: no warning


def h5py_file(path: Path) -> Any:
    import h5py

    return h5py.File(path, "r")


def test_help_shows_to_anndatas_parameters(tmp_path: Path) -> None:
    """help(ds.to_anndata) lists the options (it showed only **options), the same as the function."""
    import inspect

    from loomfile.io.anndata import to_anndata

    path = tmp_path / "h.loom"
    make_loom(path, "float32", spliced=False)
    expected = [p for p in inspect.signature(to_anndata).parameters.values() if p.name != "source"]
    with loomfile.connect(path, "r") as ds:
        for method in (ds.to_anndata, ds.view[:, :5].to_anndata):
            assert list(inspect.signature(method).parameters.values()) == expected
            assert "obs_names" in (method.__doc__ or "")


def test_raw_is_not_dropped_silently(tmp_path: Path, small_adata: ad.AnnData) -> None:
    small_adata.raw = small_adata
    with pytest.warns(UserWarning, match=r"adata.raw \(\d+ genes\) is not written") as caught:
        loomfile.from_anndata(small_adata[:, :5], tmp_path / "x.loom")
    assert [w.filename for w in caught if "raw" in str(w.message)] == [__file__]


def test_categoricals_come_back_with_their_categories_and_order(tmp_path: Path, small_adata: ad.AnnData) -> None:
    """Categorical obs/var columns are stored as their labels (loompy and read_loom read plain values)
    and to_anndata rebuilds the same Categorical: categories in order, unused ones, orderedness."""
    n_obs, n_vars = small_adata.n_obs, small_adata.n_vars
    small_adata.obs["leiden"] = pd.Categorical(
        np.array(["10", "2", "1"])[np.arange(n_obs) % 3], categories=["1", "2", "10", "unused"]
    )
    small_adata.obs["stage"] = pd.Categorical(
        np.array([3, 1])[np.arange(n_obs) % 2], categories=[3, 1, 2], ordered=True
    )
    small_adata.var["kind"] = pd.Categorical(np.array(["b", "a"])[np.arange(n_vars) % 2], categories=["b", "a"])
    path = tmp_path / "c.loom"
    loomfile.from_anndata(small_adata, path)
    with loomfile.connect(path, "r") as ds:
        back = ds.to_anndata()
    for frame, original, column in ((back.obs, small_adata.obs, "leiden"), (back.obs, small_adata.obs, "stage"),
                                    (back.var, small_adata.var, "kind")):
        got, expected = frame[column], original[column]
        assert isinstance(got.dtype, pd.CategoricalDtype), column
        assert list(got.cat.categories) == list(expected.cat.categories), column
        assert got.cat.ordered == expected.cat.ordered, column
        assert list(got) == list(expected), column
    assert "loomfile-categories" not in back.uns
    with loompy.connect(os.fspath(path), "r") as lp:  # plain labels for the others
        assert list(lp.ca.leiden[:3]) == ["10", "2", "1"] and lp.ca.stage.dtype.kind == "i"
    plain = ad.io.read_loom(path)
    assert list(plain.obs["leiden"][:3]) == ["10", "2", "1"]

    with loomfile.connect(path) as ds:  # a label outside the categories: plain, with a warning
        labels = ds.ca.leiden.copy()
        labels[0] = "new"
        ds.ca.leiden = labels
        with pytest.warns(UserWarning, match=r"obs\['leiden'\] holds values that are not among the categories"):
            changed = ds.to_anndata()
    assert not isinstance(changed.obs["leiden"].dtype, pd.CategoricalDtype)
    assert isinstance(changed.obs["stage"].dtype, pd.CategoricalDtype)


def test_to_anndata_memory_is_about_the_csr_it_returns(tmp_path: Path) -> None:
    """X is built a band of cells at a time into arrays grown in place: the peak stays within 2.5x
    the CSR returned (the whole COO beside the CSR made it 3.9x), and X equals the layer."""
    rng = np.random.default_rng(4)
    m = sparse.random(6000, 3000, density=0.1, format="csr", random_state=4, dtype=np.float32)
    m.data = rng.integers(1, 20, m.nnz).astype(np.float32)
    path = tmp_path / "big.loom"
    loomfile.create(os.fspath(path), m, {"Gene": np.arange(6000).astype(str)}, {"CellID": np.arange(3000).astype(str)})
    with loomfile.connect(path, "r") as ds:
        tracemalloc.start()
        adata = ds.to_anndata()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    x = adata.X
    size = x.data.nbytes + x.indices.nbytes + x.indptr.nbytes
    assert peak < 2.5 * size, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB CSR"
    assert x.has_sorted_indices
    np.testing.assert_array_equal(x.toarray(), m.T.toarray())
