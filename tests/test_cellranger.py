"""create_from_cellranger on folders laid out like cellranger v2 and v3 output, against loompy."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import loompy
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sparse

import loomfile


def _write(path: Path, text: str, gz: bool) -> None:
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


def make_cellranger(
    root: Path, version: int, n_genes: int = 40, n_cells: int = 30
) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(version)
    counts = sparse.random(n_genes, n_cells, density=0.15, random_state=version, format="coo")
    counts.data = rng.integers(1, 20, counts.nnz).astype(float)
    sample = root / f"sample{version}"
    gz = version >= 3
    folder = sample / "outs" / ("filtered_feature_bc_matrix" if gz else "filtered_gene_bc_matrices/mm10")
    folder.mkdir(parents=True)
    mtx = folder / "matrix.mtx"
    scipy.io.mmwrite(str(mtx), counts, field="integer")
    if gz:
        _write(folder / "matrix.mtx.gz", mtx.read_text(), True)
        mtx.unlink()
    features = "".join(f"ENSMUSG{i:05d}\tGene{i}\tGene Expression\n" for i in range(n_genes))
    _write(folder / ("features.tsv.gz" if gz else "genes.tsv"), features, gz)
    barcodes = "".join(f"AAAC{j:06d}-1\n" for j in range(n_cells))
    _write(folder / ("barcodes.tsv.gz" if gz else "barcodes.tsv"), barcodes, gz)
    tsne = sample / "outs" / "analysis" / "tsne" / "2_components"
    tsne.mkdir(parents=True)
    xy = rng.normal(size=(n_cells, 2))
    (tsne / "projection.csv").write_text(
        "Barcode,TSNE-1,TSNE-2\n" + "".join(f"b{j},{x},{y}\n" for j, (x, y) in enumerate(xy))
    )
    clusters = sample / "outs" / "analysis" / "clustering" / "graphclust"
    clusters.mkdir(parents=True)
    (clusters / "clusters.csv").write_text(
        "Barcode,Cluster\n" + "".join(f"b{j},{1 + j % 3}\n" for j in range(n_cells))
    )
    (sample / "_cmdline").write_text("cellranger count --id=sample\n")
    return sample, counts.toarray()


@pytest.mark.parametrize("version", [2, 3])
def test_matches_loompy(tmp_path: Path, version: int) -> None:
    sample, counts = make_cellranger(tmp_path, version)
    out_lf, out_lp = tmp_path / "lf", tmp_path / "lp"
    out_lf.mkdir()
    out_lp.mkdir()
    path_lf = loomfile.create_from_cellranger(os.fspath(sample), os.fspath(out_lf))
    path_lp = loompy.create_from_cellranger(os.fspath(sample), os.fspath(out_lp))
    assert os.path.basename(path_lf) == os.path.basename(path_lp) == f"sample{version}.loom"
    with loomfile.connect(path_lf, "r") as lf, loompy.connect(path_lp, "r") as lp:
        np.testing.assert_array_equal(lf[:, :], counts)
        np.testing.assert_array_equal(lf[:, :], lp[:, :])
        assert sorted(lf.ra.keys()) == sorted(lp.ra.keys())
        assert sorted(lf.ca.keys()) == sorted(lp.ca.keys())
        for name in lp.ra.keys():
            np.testing.assert_array_equal(lf.ra[name], lp.ra[name])
        for name in lp.ca.keys():
            np.testing.assert_array_equal(lf.ca[name], lp.ca[name])
        assert lf.ca.CellID[0] == f"sample{version}:AAAC000000-1"
        assert lf.attrs.Cmdline == "cellranger count --id=sample"
        if version == 2:
            assert lf.attrs.Genome == "mm10"


def test_selected_cellids_and_missing_folder(tmp_path: Path) -> None:
    sample, counts = make_cellranger(tmp_path, 3)
    keep = ["sample3:AAAC000003-1", "sample3:AAAC000007-1"]
    path = loomfile.create_from_cellranger(os.fspath(sample), os.fspath(tmp_path), selected_cellids=keep)
    with loomfile.connect(path, "r") as ds:
        assert list(ds.ca.CellID) == keep
        np.testing.assert_array_equal(ds[:, :], counts[:, [3, 7]])
    with pytest.raises(FileNotFoundError, match="filtered_feature_bc_matrix"):
        loomfile.create_from_cellranger(os.fspath(tmp_path / "nothing"))
