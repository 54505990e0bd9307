"""aggregate() and export() against loompy 3.0.8 on the same file (loompy aggregates through
numpy_groupies and writes text with str(); both must agree), plus the cases loompy gets wrong."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import loompy
import numpy as np
import pytest

import loomfile
from loomfile._errors import LoomValueError

N_GENES, N_CELLS = 90, 700  # 700 columns: several chunk columns, groups spread over all of them


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str, np.ndarray]:
    rng = np.random.default_rng(4)
    m = rng.negative_binomial(1, 0.4, (N_GENES, N_CELLS)).astype(np.float32)
    m[rng.random(m.shape) < 0.7] = 0
    ra = {"Gene": np.array([f"g{i}" for i in range(N_GENES)]), "Chrom": np.array(["chr1", "chrX"] * 45)}
    clusters = rng.integers(3, 11, N_CELLS)  # labels 3..10: not starting at 0
    ca = {
        "CellID": np.array([f"c{j}" for j in range(N_CELLS)]),
        "Clusters": clusters,
        "Batch": np.array(["a/b", "c.d", "e"])[clusters % 3],  # constant within each cluster
        "Size": rng.random(N_CELLS) * 100,
        "Kind": np.array(["x", "y"])[rng.integers(0, 2, N_CELLS)],
    }
    ref, new = os.fspath(tmp_path / "ref.loom"), os.fspath(tmp_path / "new.loom")
    loompy.create(ref, m, ra, ca)
    loomfile.create(new, m, ra, ca)
    return ref, new, m


@pytest.mark.parametrize(
    "aggr_by", ["mean", "sum", "max", "min", "first", "last", "std", "var", "median", "prod"]
)
def test_matrix_aggregation_matches_loompy(pair: Any, aggr_by: str) -> None:
    ref, new, _ = pair
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        expected = a.aggregate(group_by="Clusters", aggr_by=aggr_by)
        got = b.aggregate(group_by="Clusters", aggr_by=aggr_by)
    assert got.shape == expected.shape == (N_GENES, 8) and got.dtype == np.float64
    # loompy (numpy_groupies) reduces float32 layers in float32; loomfile in float64
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-6)


def test_labels_array_and_layer(pair: Any, tmp_path: Path) -> None:
    _, new, m = pair
    labels = (np.arange(N_CELLS) * 7) % 5
    with loomfile.connect(new) as b:
        b.layers["twice"] = m * 2
        got = b.aggregate(group_by=labels, aggr_by="sum", layer="twice")
    for g in range(5):
        np.testing.assert_allclose(got[:, g], (m * 2)[:, labels == g].sum(axis=1, dtype=np.float64))


def test_column_attribute_aggregation_and_out_file_match_loompy(pair: Any, tmp_path: Path) -> None:
    ref, new, _ = pair
    out_ref, out_new = os.fspath(tmp_path / "agg_ref.loom"), os.fspath(tmp_path / "agg_new.loom")
    spec = {"Size": "mean", "CellID": "first", "Kind": "tally", "Clusters": "first"}
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        a.aggregate(out_ref, group_by="Clusters", aggr_ca_by=spec, aggr_ca_if_equal=True)
        b.aggregate(out_new, group_by="Clusters", aggr_ca_by=spec, aggr_ca_if_equal=True)
    with loompy.connect(out_ref, "r") as a, loomfile.connect(out_new, "r") as b:
        np.testing.assert_allclose(b[:, :], a[:, :])
        assert sorted(b.ca.keys()) == sorted(a.ca.keys())
        assert "Batch" in b.ca.keys()  # constant within each cluster: kept by aggr_ca_if_equal
        for k in a.ca.keys():
            if a.ca[k].dtype.kind in "fiu":
                np.testing.assert_allclose(b.ca[k], a.ca[k], err_msg=k)
            else:
                assert list(b.ca[k]) == list(a.ca[k]), k
        assert sorted(b.ra.keys()) == sorted(a.ra.keys())
        assert list(b.ra["Gene"]) == list(a.ra["Gene"])
    # loompy's reader opens ours
    with loompy.connect(out_new, "r") as c:
        assert c.shape == (N_GENES, 8)


def test_mode_of_a_column_attribute(pair: Any, tmp_path: Path) -> None:
    """loompy's "mode" indexes scipy.stats.mode's result as an array and fails on current scipy;
    loomfile gives the most frequent value per group (the smallest one on ties)."""
    _, new, _ = pair
    out = os.fspath(tmp_path / "mode.loom")
    with loomfile.connect(new, "r") as b:
        labels, kinds = b.ca["Clusters"], b.ca["Kind"]
        b.aggregate(out, group_by="Clusters", aggr_ca_by={"Kind": "mode"})
    with loomfile.connect(out, "r") as c:
        for i, g in enumerate(np.unique(labels)):
            values, counts = np.unique(kinds[labels == g], return_counts=True)
            assert c.ca["Kind"][i] == values[np.argmax(counts)]


def test_aggregate_refuses_bad_input(pair: Any) -> None:
    _, new, _ = pair
    with loomfile.connect(new, "r") as b:
        with pytest.raises(LoomValueError, match="select"):
            b.aggregate(select=np.ones(N_CELLS, bool))
        with pytest.raises(LoomValueError, match="one label per column"):
            b.aggregate(group_by=np.zeros(3, int))
        with pytest.raises(LoomValueError, match="aggr_by"):
            b.aggregate(group_by="Clusters", aggr_by="average")


@pytest.mark.parametrize("layer", [None, "counts"])
def test_export_is_byte_identical_to_loompy(pair: Any, tmp_path: Path, layer: str | None) -> None:
    ref, new, m = pair
    for path in (ref, new):
        with loompy.connect(path) as ds:
            ds.layers["counts"] = (m * 3).astype(np.uint16)
    out_ref, out_new = tmp_path / "ref.tab", tmp_path / "new.tab"
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        a.export(os.fspath(out_ref), layer=layer)
        b.export(os.fspath(out_new), layer=layer)
    assert out_new.read_bytes() == out_ref.read_bytes()


def test_export_refuses_other_formats_and_leaves_no_file(pair: Any, tmp_path: Path) -> None:
    _, new, _ = pair
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    with loomfile.connect(new, "r") as b:
        with pytest.raises(LoomValueError, match="tab"):
            b.export(os.fspath(out), format="csv")
        with pytest.raises(KeyError):
            b.export(os.fspath(out), layer="nope")
    assert out.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []


def test_aggr_ca_by_names_unknown_functions_and_missing_attributes(pair: Any, tmp_path: Path) -> None:
    """loompy ignores both silently: a typo gives a file without the attribute."""
    _, new, _ = pair
    out = tmp_path / "agg.loom"
    with loomfile.connect(new, "r") as ds:
        with pytest.raises(LoomValueError, match="'Size': 'average'"):
            ds.aggregate(os.fspath(out), group_by="Clusters", aggr_ca_by={"Size": "average"})
        assert not out.exists()
        with pytest.warns(UserWarning, match="'Sizes'"):
            ds.aggregate(os.fspath(out), group_by="Clusters", aggr_ca_by={"Sizes": "mean"})


def test_export_of_2d_and_compound_attributes_matches_loompy_line_by_line(tmp_path: Path) -> None:
    """An embedding (cells x 3) and a SCENIC-style compound attribute are one field per cell, written
    as loompy's str() writes them; a long row (numpy wraps its str()) stays on one line."""
    rng = np.random.default_rng(8)
    m = rng.integers(0, 5, (6, 5)).astype(np.float32)
    regulons = np.zeros(5, dtype=[("Sox2(+)", "f8"), ("Pax6(+)", "f8")])
    regulons["Sox2(+)"] = rng.random(5)
    ra = {"Gene": np.array([f"g{i}" for i in range(6)]), "Pos": rng.integers(0, 9, (6, 2))}
    ca = {"CellID": np.array([f"c{j}" for j in range(5)]), "PCA": rng.normal(size=(5, 3)),
          "RegulonsAUC": regulons}
    ref, new = os.fspath(tmp_path / "ref.loom"), os.fspath(tmp_path / "new.loom")
    loompy.create(ref, m, ra, {k: v for k, v in ca.items() if k != "RegulonsAUC"})
    loomfile.create(new, m, ra, {k: v for k, v in ca.items() if k != "RegulonsAUC"})
    for path in (ref, new):  # loompy's create refuses compound values; SCENIC writes them with h5py
        import h5py

        with h5py.File(path, "r+") as f:
            f["col_attrs/RegulonsAUC"] = regulons
    with loompy.connect(ref, "r", validate=False) as a, loomfile.connect(new, "r") as b:
        a.export(os.fspath(tmp_path / "ref.tab"))
        b.export(os.fspath(tmp_path / "new.tab"))
    assert (tmp_path / "new.tab").read_text() == (tmp_path / "ref.tab").read_text()

    long = os.fspath(tmp_path / "long.loom")
    loomfile.create(long, m, ra, {"X_pca": rng.normal(size=(5, 30))})
    with loomfile.connect(long, "r") as b:
        b.export(os.fspath(tmp_path / "long.tab"))
        first = b.ca["X_pca"][0]
    lines = (tmp_path / "long.tab").read_text().split("\n")
    assert len(lines) == 1 + 1 + 6 + 1  # one line per column attribute, the names, the rows, the end
    field = lines[0].split("\t")[3]  # past the two row-attribute columns and the name
    assert field.startswith("[") and field.endswith("]")
    np.testing.assert_allclose(np.array(field[1:-1].split(), dtype=float), first, rtol=1e-7)


def test_matrix_market_export_reads_back_with_scipy_and_the_10x_importer(pair: Any, tmp_path: Path) -> None:
    """format="mtx": a folder laid out as 10x's filtered_feature_bc_matrix/; scipy reads the two-member
    gzip, the counts come back exactly (an "integer" field), and create_from_cellranger reads the
    folder back into the same matrix, genes and barcodes."""
    import gzip

    import scipy.io

    _, new, m = pair
    out = tmp_path / "exported"
    with loomfile.connect(new) as b:
        b.ca.CellID = np.array([f"run1:{c}-1" for c in b.ca.CellID])  # as the 10x importer names cells
        b.export(os.fspath(out), format="mtx")
        b.layers["fractions"] = m / 7
        b.export(os.fspath(tmp_path / "fractions"), layer="fractions", format="mtx")
    assert sorted(p.name for p in out.iterdir()) == ["barcodes.tsv.gz", "features.tsv.gz", "matrix.mtx.gz"]
    with gzip.open(out / "matrix.mtx.gz", "rt") as f:
        assert f.readline().startswith("%%MatrixMarket matrix coordinate integer general")
    np.testing.assert_array_equal(scipy.io.mmread(out / "matrix.mtx.gz").toarray(), m)
    with gzip.open(out / "features.tsv.gz", "rt") as f:
        assert f.readline() == "g0\tg0\tGene Expression\n"
    with gzip.open(out / "barcodes.tsv.gz", "rt") as f:
        assert f.readline() == "c0-1\n"
    fractions = scipy.io.mmread(tmp_path / "fractions" / "matrix.mtx.gz")
    np.testing.assert_array_equal(fractions.toarray().astype(np.float32), (m / 7).astype(np.float32))

    path = loomfile.create_from_cellranger(os.fspath(out), os.fspath(tmp_path))
    with loomfile.connect(path, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], m)
        assert list(ds.ra.Gene[:2]) == ["g0", "g1"] and ds.ca.CellID[0] == "exported:c0-1"

    with loomfile.connect(new, "r") as b:  # an existing export is replaced whole
        b.export(os.fspath(out), layer="fractions", format="mtx")
    assert sorted(p.name for p in out.iterdir()) == ["barcodes.tsv.gz", "features.tsv.gz", "matrix.mtx.gz"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(LoomValueError, match="format must be one of"), loomfile.connect(new, "r") as b:
        b.export(os.fspath(tmp_path / "x"), format="h5")
