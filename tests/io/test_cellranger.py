"""create_from_cellranger on folders laid out like cellranger v2 and v3 output, against loompy."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path
from typing import Any

import h5py
import loompy
import numpy as np
import pytest
import scipy.sparse as sparse
from test_importers import assert_same_loom

import loomfile
from cellranger_folders import make_cellranger, write_10x_h5
from cellranger_folders import write_text as _write
from loomfile.io import _text, cellranger
from loomfile.io.matrix_market import matrix_market_columns, read_header


def _import(sample: Path, out: Path, lib: Any, **kwargs: Any) -> str:
    out.mkdir(exist_ok=True)
    return lib.create_from_cellranger(os.fspath(sample), os.fspath(out), **kwargs)


@pytest.mark.parametrize("version", [2, 3])
def test_matches_loompy(tmp_path: Path, version: int) -> None:
    sample, counts = make_cellranger(tmp_path, version)
    path_lf = _import(sample, tmp_path / "lf", loomfile)
    path_lp = _import(sample, tmp_path / "lp", loompy)
    assert os.path.basename(path_lf) == os.path.basename(path_lp) == f"sample{version}.loom"
    assert_same_loom(path_lf, path_lp, ("FeatureType",) if version >= 3 else ())
    with loomfile.connect(path_lf, "r") as lf:
        np.testing.assert_array_equal(lf[:, :], counts)
        assert lf.ca.CellID[0] == f"sample{version}:AAAC000000-1"
        assert lf.attrs.Cmdline == "cellranger count --id=sample\n  --transcriptome=/ref/mm10"
        assert lf.attrs.Versions == '{  "pipelines": "3.1.0" }'
        assert ("Genome" in lf.attrs) == (version == 2)


def test_genome_argument_on_v3_matches_loompy(tmp_path: Path) -> None:
    sample, _ = make_cellranger(tmp_path, 3)
    path_lf = _import(sample, tmp_path / "lf", loomfile, genome="GRCh38", file_attrs={"Cmdline": "mine"})
    path_lp = _import(sample, tmp_path / "lp", loompy, genome="GRCh38", file_attrs={"Cmdline": "mine"})
    assert_same_loom(path_lf, path_lp, ("FeatureType",))
    with loomfile.connect(path_lf, "r") as ds:
        assert ds.attrs.Genome == "GRCh38" and ds.attrs.Cmdline == "mine"


@pytest.mark.parametrize("version", [2, 3])
def test_h5_alone_gives_loompys_file_from_the_mtx(tmp_path: Path, version: int) -> None:
    """loompy cannot read the HDF5 matrix: its file from the matrix-market folder of the same data is the oracle."""
    sample_h5, counts = make_cellranger(tmp_path / "h5", version, mtx=False, h5=True)
    sample_mtx, _ = make_cellranger(tmp_path / "mtx", version)
    path_lf = _import(sample_h5, tmp_path / "lf", loomfile)
    path_lp = _import(sample_mtx, tmp_path / "lp", loompy)
    assert_same_loom(path_lf, path_lp, ("FeatureType", "Genome") if version >= 3 else ())
    with loomfile.connect(path_lf, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], counts)
        assert ds.layers[""].dtype == np.int64


@pytest.mark.parametrize("version", [2, 3])
def test_h5_and_mtx_of_the_same_data_give_the_same_file(tmp_path: Path, version: int) -> None:
    sample, _ = make_cellranger(tmp_path, version, h5=True)
    from_mtx = _import(sample, tmp_path / "auto", loomfile)
    from_h5 = _import(sample, tmp_path / "h5", loomfile, source="h5")
    assert_same_loom(from_h5, from_mtx, ("Genome",) if version >= 3 else ())  # (the folder has no genome)
    assert_same_loom(from_mtx, _import(sample, tmp_path / "lp", loompy), ("FeatureType",) if version >= 3 else ())
    keep = [f"sample{version}:AAAC000003-1", f"sample{version}:AAAC000007-1"]
    selected_h5 = _import(sample, tmp_path / "h5sel", loomfile, source="h5", selected_cellids=keep)
    selected_mtx = _import(sample, tmp_path / "mtxsel", loomfile, source="mtx", selected_cellids=keep)
    assert_same_loom(selected_h5, selected_mtx, ("Genome",) if version >= 3 else ())


def test_v2_h5_genome_choice(tmp_path: Path) -> None:
    counts = sparse.csc_matrix(np.arange(12.0).reshape(3, 4))
    genes = [f"G{i}\tname{i}" for i in range(3)]
    barcodes = [f"B{j}" for j in range(4)]
    sample = tmp_path / "s"
    write_10x_h5(
        sample / "outs" / "filtered_gene_bc_matrices_h5.h5", 2, counts, genes, barcodes, ("hg19", "mm10")
    )
    with loomfile.connect(_import(sample, tmp_path / "a", loomfile), "r") as ds:
        np.testing.assert_array_equal(ds[:, :], counts.toarray())
        assert ds.attrs.Genome == "hg19" and list(ds.ra.Gene) == ["name0", "name1", "name2"]
    with loomfile.connect(_import(sample, tmp_path / "b", loomfile, genome="mm10"), "r") as ds:
        np.testing.assert_array_equal(ds[:, :], counts.toarray()[::-1])
        assert ds.attrs.Genome == "mm10"
    with pytest.raises(loomfile.LoomNotFoundError, match="no genome 'GRCh38'"):
        _import(sample, tmp_path / "c", loomfile, genome="GRCh38")


def test_selected_cellids_and_missing_folder(tmp_path: Path) -> None:
    sample, counts = make_cellranger(tmp_path, 3)
    keep = ["sample3:AAAC000003-1", "sample3:AAAC000007-1"]
    path = loomfile.create_from_cellranger(os.fspath(sample), os.fspath(tmp_path), selected_cellids=keep)
    with loomfile.connect(path, "r") as ds:
        assert list(ds.ca.CellID) == keep
        np.testing.assert_array_equal(ds[:, :], counts[:, [3, 7]])
    with pytest.raises(FileNotFoundError, match="filtered_feature_bc_matrix"):
        loomfile.create_from_cellranger(os.fspath(tmp_path / "nothing"))


def test_missing_and_malformed_inputs(tmp_path: Path) -> None:
    sample, _ = make_cellranger(tmp_path, 3)
    folder = sample / "outs" / "filtered_feature_bc_matrix"
    with pytest.raises(loomfile.LoomNotFoundError, match=re.escape("filtered_feature_bc_matrix.h5")):
        loomfile.create_from_cellranger(os.fspath(sample), source="h5")
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(
        loomfile.LoomNotFoundError, match=re.escape(f"Barcodes file '{folder / 'barcodes.tsv.gz'}' not found")
    ):
        loomfile.create_from_cellranger(os.fspath(sample))
    _write(folder / "barcodes.tsv.gz", "".join(f"AAAC{j:06d}-1\n" for j in range(30)), True)
    _write(
        folder / "matrix.mtx.gz",
        "%%MatrixMarket matrix coordinate integer general\n40 30 2\n1 1 3\n2 1\n",
        True,
    )
    with pytest.raises(
        loomfile.LoomFormatError, match=re.escape("matrix.mtx.gz' line 4: '2 1' should be 3 integers")
    ):
        loomfile.create_from_cellranger(os.fspath(sample))
    h5_sample, _ = make_cellranger(tmp_path / "h5", 3, mtx=False, h5=True)
    with h5py.File(h5_sample / "outs" / "filtered_feature_bc_matrix.h5", "r+") as f:
        del f["matrix/indptr"]
    with pytest.raises(loomfile.LoomFormatError, match="no '/matrix/indptr'"):
        loomfile.create_from_cellranger(os.fspath(h5_sample))
    assert not list(tmp_path.rglob("*.loom"))


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few lines, pieces of a few nonzeros, bands of one chunk column (64 columns)."""
    monkeypatch.setattr(_text, "BLOCK_BYTES", 3000)
    monkeypatch.setattr(cellranger, "PIECE_ENTRIES", 500)
    monkeypatch.setattr(cellranger, "BAND_BYTES", 1)


def _swap_late_entries(mtx_gz: Path) -> None:
    """Two entries near the end change places: the columns stop being in order after many blocks."""
    lines = gzip.decompress(mtx_gz.read_bytes()).decode().splitlines(keepends=True)
    lines[-2], lines[-40] = lines[-40], lines[-2]
    mtx_gz.write_bytes(gzip.compress("".join(lines).encode()))


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("source", ["mtx", "mtx swapped late", "h5"])
def test_streamed_in_many_pieces_and_bands(tmp_path: Path, source: str) -> None:
    sample, counts = make_cellranger(tmp_path, 3, n_genes=50, n_cells=300, h5=True)
    if source == "mtx swapped late":
        _swap_late_entries(sample / "outs" / "filtered_feature_bc_matrix" / "matrix.mtx.gz")
    kind = "h5" if source == "h5" else "mtx"
    path = _import(sample, tmp_path / "lf", loomfile, source=kind)
    extra = ("FeatureType", "Genome") if kind == "h5" else ("FeatureType",)
    assert_same_loom(path, _import(sample, tmp_path / "lp", loompy), extra)
    keep = np.zeros(300, dtype=bool)
    keep[[0, 5, 63, 64, 65, 127, 128, 200, 299]] = True
    keep[150:190] = True
    cell_ids = [f"sample3:AAAC{j:06d}-1" for j in np.flatnonzero(keep)]
    selected = _import(sample, tmp_path / "sel", loomfile, source=kind, selected_cellids=cell_ids)
    with loomfile.connect(selected, "r") as ds:
        assert list(ds.ca.CellID) == cell_ids
        np.testing.assert_array_equal(ds[:, :], counts[:, keep])
        np.testing.assert_array_equal(ds.ca.ClusterID, np.arange(300)[keep] % 3)


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("swapped", [False, True])
def test_matrix_market_columns_cover_the_matrix(tmp_path: Path, swapped: bool) -> None:
    sample, counts = make_cellranger(tmp_path, 3, n_genes=50, n_cells=300)
    path = sample / "outs" / "filtered_feature_bc_matrix" / "matrix.mtx.gz"
    if swapped:
        _swap_late_entries(path)
    pieces = list(matrix_market_columns(os.fspath(path), read_header(os.fspath(path))))
    assert len(pieces) > 5
    rebuilt = np.zeros_like(counts)
    for first, piece in pieces:
        rebuilt[:, first : first + piece.shape[1]] = piece.toarray()
    np.testing.assert_array_equal(rebuilt, counts)
    if swapped:  # the last piece starts over with the whole matrix
        assert pieces[-1][0] == 0 and pieces[-1][1].shape == counts.shape
    else:
        assert [first for first, _ in pieces] == sorted({first for first, _ in pieces})


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(
    "given",
    ["run folder", "outs", "matrix folder", "h5 in outs", "downloaded h5"],
)
def test_every_shape_10x_publishes(tmp_path: Path, version: int, given: str) -> None:
    """The run folder, its outs/, the matrix folder itself, the .h5 itself and a 10x download named
    <sample>_filtered_feature_bc_matrix.h5 give the same matrix, and CellIDs prefixed by the sample."""
    sample, counts = make_cellranger(tmp_path, version, h5=True)
    outs = sample / "outs"
    h5_name = "filtered_feature_bc_matrix.h5" if version >= 3 else "filtered_gene_bc_matrices_h5.h5"
    matrix_folder = outs / ("filtered_feature_bc_matrix" if version >= 3 else "filtered_gene_bc_matrices/mm10")
    download = tmp_path / "downloads" / f"pbmc_1k_v{version}_{h5_name}"
    download.parent.mkdir()
    shutil.copy(outs / h5_name, download)
    path = {
        "run folder": sample,
        "outs": outs,
        "matrix folder": matrix_folder,
        "h5 in outs": outs / h5_name,
        "downloaded h5": download,
    }[given]
    out = tmp_path / "out"
    written = _import(path, out, loomfile)
    expected_sample = f"pbmc_1k_v{version}" if given == "downloaded h5" else f"sample{version}"
    assert os.path.basename(written) == f"{expected_sample}.loom"
    with loomfile.connect(written, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], counts)
        assert ds.ca.CellID[0] == f"{expected_sample}:AAAC000000-1"
        assert list(ds.ra.Accession[:2]) == ["ENSMUSG00000", "ENSMUSG00001"]
        # the run's analysis and command line are found from inside the run, not from a download
        assert ("ClusterID" in ds.ca) == (given != "downloaded h5")
        assert ("Cmdline" in ds.attrs) == (given != "downloaded h5")


def test_a_folder_without_a_matrix_names_what_was_looked_for(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(loomfile.LoomNotFoundError, match=r"matrix\.mtx"):
        loomfile.create_from_cellranger(os.fspath(empty), os.fspath(tmp_path))
    with pytest.raises(loomfile.LoomNotFoundError, match="nothing-here"):
        loomfile.create_from_cellranger(os.fspath(tmp_path / "nothing-here"), os.fspath(tmp_path))


def test_every_10x_feature_field_is_kept(tmp_path: Path) -> None:
    """A CITE-seq matrix: antibody captures beside genes. loompy keeps only Accession and Gene, so the
    antibodies cannot be told from genes; loomfile keeps feature_type, genome and the capture's
    pattern/read/sequence as row attributes, from the .h5 and from the folder."""
    counts = sparse.random(4, 6, density=0.5, random_state=1, format="csc")
    counts.data = np.arange(1, counts.nnz + 1).astype(float)
    genes = ["ENSG1\tCD3E\tGene Expression", "ENSG2\tCD4\tGene Expression",
             "CD3\tCD3_TotalSeqB\tAntibody Capture", "CD4\tCD4_TotalSeqB\tAntibody Capture"]
    sample = tmp_path / "cite"
    h5 = sample / "outs" / "filtered_feature_bc_matrix.h5"
    write_10x_h5(h5, 3, counts, genes, [f"B{j}-1" for j in range(6)], genomes=("GRCh38",))
    with h5py.File(h5, "r+") as f:
        features = f["matrix/features"]
        del features["feature_type"]
        features["feature_type"] = np.array([b"Gene Expression"] * 2 + [b"Antibody Capture"] * 2)
        for key, values in (("pattern", [b"", b"", b"5PNNNNNNNNNN(BC)", b"5PNNNNNNNNNN(BC)"]),
                            ("read", [b"", b"", b"R2", b"R2"]), ("sequence", [b"", b"", b"CTCATTGTAACTCCT", b"TGTTCCCGCTCAACT"])):
            features.create_dataset(key, data=np.array(values))
    path = loomfile.create_from_cellranger(os.fspath(h5), os.fspath(tmp_path))
    antibodies_only = loomfile.create_from_cellranger(
        os.fspath(h5), os.fspath(tmp_path), feature_types=["Antibody Capture"]
    )
    assert os.path.basename(antibodies_only) == "cite-Antibody_Capture.loom"
    with loomfile.connect(antibodies_only, "r") as ds:
        assert list(ds.ra.Gene) == ["CD3_TotalSeqB", "CD4_TotalSeqB"]
        np.testing.assert_array_equal(ds[:, :], counts.toarray()[2:])
    with pytest.raises(loomfile.LoomValueError, match=r"no features of type \['CRISPR'\].*'Antibody Capture'"):
        loomfile.create_from_cellranger(os.fspath(h5), os.fspath(tmp_path), feature_types=["CRISPR"])
    with loomfile.connect(path, "r") as ds:
        assert list(ds.ra.FeatureType) == ["Gene Expression"] * 2 + ["Antibody Capture"] * 2
        assert list(ds.ra.Genome) == ["GRCh38"] * 4
        assert list(ds.ra.Read) == ["", "", "R2", "R2"]
        assert ds.ra.Sequence[3] == "TGTTCCCGCTCAACT" and ds.ra.Pattern[2] == "5PNNNNNNNNNN(BC)"
        antibodies = ds[ds.ra.FeatureType == "Antibody Capture", :]
    np.testing.assert_array_equal(antibodies, counts.toarray()[2:])
