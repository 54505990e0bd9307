"""create_from_star on a small generated STARsolo output tree, against loompy 3.0.8's importer (the
oracle where it works) and against the Matrix Market files themselves (scipy reads them) where
loompy crashes ("none", "emptydrops")."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import loompy
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sparse

import loomfile
from loomfile import LoomValueError
from looms import stored_contents

N_GENES = 30
RAW = [f"{a}{b}{c}" for a in "ACGT" for b in "ACGT" for c in "AC"][:50]  # 50 raw barcodes


def write_mtx(path: Path, matrices: list[np.ndarray]) -> None:
    """STARsolo's Matrix Market: 3 header lines, then gene, barcode and one count per matrix."""
    rows, cols = np.nonzero(sum(matrices))
    lines = [
        f"{r + 1} {c + 1} " + " ".join(str(int(m[r, c])) for m in matrices)
        for r, c in zip(rows, cols, strict=True)
    ]
    header = f"%%MatrixMarket matrix coordinate integer general\n%\n{matrices[0].shape[0]} {matrices[0].shape[1]} {len(lines)}\n"
    path.write_text(header + "".join(line + "\n" for line in lines))


def write_folder(
    folder: Path, barcodes: list[str], matrices: dict[str, np.ndarray], legacy: bool = False
) -> None:
    folder.mkdir(parents=True)
    (folder / "barcodes.tsv").write_text("".join(bc + "\n" for bc in barcodes))
    n_genes = next(iter(matrices.values())).shape[0]
    (folder / "features.tsv").write_text(
        "".join(f"ENSG{i:04d}\tGene{i}\tGene Expression\n" for i in range(n_genes))
    )
    if legacy:
        write_mtx(folder / "matrix.mtx", [matrices[k] for k in ("spliced", "unspliced", "ambiguous")])
    else:
        for name, m in matrices.items():
            write_mtx(folder / f"{name}.mtx", [m])


def solo_out(root: Path, seed: int, legacy: bool = False) -> str:
    """Solo.out with Gene and GeneFull (filtered: 18 and 22 barcodes, not Velocyto's order) and
    Velocyto (filtered: 20 barcodes; raw: 50)."""
    rng = np.random.default_rng(seed)
    raw = {
        k: rng.poisson(p, (N_GENES, len(RAW)))
        for k, p in (("spliced", 2), ("unspliced", 0.7), ("ambiguous", 0.2))
    }
    velo_cells = RAW[:20]
    write_folder(root / "Solo.out" / "Velocyto" / "raw", RAW, raw, legacy)
    write_folder(
        root / "Solo.out" / "Velocyto" / "filtered",
        velo_cells,
        {k: v[:, :20] for k, v in raw.items()},
        legacy,
    )
    for gene_type, cells in (("Gene", RAW[25:15:-1] + RAW[:8]), ("GeneFull", RAW[2:24])):
        counts = rng.poisson(1.5, (N_GENES, len(cells)))
        write_folder(root / "Solo.out" / gene_type / "filtered", cells, {"matrix": counts})
        write_folder(
            root / "Solo.out" / gene_type / "raw", RAW, {"matrix": rng.poisson(1.5, (N_GENES, len(RAW)))}
        )
    return os.fspath(root)




def assert_same_files(ours: str, theirs: str, *, by_cell: bool = False) -> None:
    a, b = stored_contents(ours), stored_contents(theirs)
    assert a.keys() == b.keys()
    order_a = np.argsort(a["col_attrs/CellID"]) if by_cell else slice(None)
    order_b = np.argsort(b["col_attrs/CellID"]) if by_cell else slice(None)
    for name in b:
        x, y = a[name], b[name]
        if name.startswith("col_attrs"):
            x, y = x[order_a], y[order_b]
        elif name.startswith(("matrix", "layers")):
            x, y = x[:, order_a], y[:, order_b]
        assert x.dtype.kind == y.dtype.kind, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def star_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return solo_out(tmp_path_factory.mktemp("star"), 1)


@pytest.fixture(scope="module")
def metadata_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("meta")
    (folder / "samples.tab").write_text("SampleID\tTissue\tAge\nS1\tbrain\tP7\n")
    gtf = "".join(
        f'1\tensembl\tgene\t{100 * i}\t{100 * i + 50}\t.\t+\t.\tgene_id "ENSG{i:04d}"; gene_name "G{i}"; gene_biotype "protein_coding";\n'
        for i in range(0, N_GENES, 2)
    )
    (folder / "genes.gtf").write_text(gtf)
    return os.fspath(folder / "samples.tab"), os.fspath(folder / "genes.gtf")


CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "filter_Gene": {"cell_filter": "Gene"},
    "main_Gene": {"main_layer": "Gene"},
    "extra_GeneFull_filter_GeneFull": {"extra_layers": ["GeneFull"], "cell_filter": "GeneFull"},
    "extra_both_main_GeneFull": {"extra_layers": ["Gene", "GeneFull"], "main_layer": "GeneFull"},
    "file_attrs": {"file_attrs": {"title": "star run"}},
}


def run_both(star: str, tmp_path: Path, options: dict[str, Any], warns: str | None = None) -> tuple[str, str]:
    ours, theirs = os.fspath(tmp_path / "ours.loom"), os.fspath(tmp_path / "theirs.loom")
    copy = {
        k: list(v) if isinstance(v, list) else v for k, v in options.items()
    }  # loompy appends to extra_layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loompy.create_from_star(star, theirs, "S1", **copy)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loomfile.create_from_star(star, ours, "S1", **options)
    assert [str(w.message) for w in record if warns is None or not re.search(warns, str(w.message))] == []
    if warns is not None:
        assert any(re.search(warns, str(w.message)) for w in record)
    return ours, theirs


@pytest.mark.parametrize("case", list(CASES))
def test_create_from_star_writes_what_loompy_writes(star_dir: str, tmp_path, case: str) -> None:
    ours, theirs = run_both(star_dir, tmp_path, CASES[case])
    assert_same_files(ours, theirs)


def test_create_from_star_with_metadata_and_gtf(star_dir: str, tmp_path, metadata_files) -> None:
    samples, gtf = metadata_files
    # GTF positions for genes the GTF lacks are the text "0" (loompy's placeholder): Start and End
    # become text, as loompy stores them, and loomfile says so.
    converted = r"Row attribute '(Start|End)': 15 values converted to text"
    ours, theirs = run_both(star_dir, tmp_path, {"sample_metadata_file": samples, "gtf_file": gtf}, converted)
    assert_same_files(ours, theirs)
    with loomfile.connect(ours, "r") as ds:
        assert set(ds.ca.tissue) == {"brain"}
        assert ds.ra.Gene[0] == "G0" and ds.ra.Biotype[1] == "n/a"


def test_create_from_star_combine_takes_every_filtered_cell(star_dir: str, tmp_path) -> None:
    ours, theirs = run_both(star_dir, tmp_path, {"cell_filter": "combine", "extra_layers": ["Gene"]})
    assert_same_files(ours, theirs, by_cell=True)  # loompy's order is a set's


def test_create_from_star_reads_star_before_2_7_9(tmp_path) -> None:
    star = solo_out(tmp_path / "legacy", 2, legacy=True)
    new_star = solo_out(tmp_path / "current", 2)
    ours, theirs = run_both(star, tmp_path, {})
    assert_same_files(ours, theirs)
    loomfile.create_from_star(new_star, os.fspath(tmp_path / "current.loom"), "S1")
    assert_same_files(ours, os.fspath(tmp_path / "current.loom"))


def test_create_from_star_none_keeps_every_raw_barcode(star_dir: str, tmp_path) -> None:
    """loompy crashes here (NameError); scipy reads the raw matrices as the oracle."""
    out = os.fspath(tmp_path / "none.loom")
    loomfile.create_from_star(star_dir, out, "S1", cell_filter="none")
    velo = Path(star_dir) / "Solo.out" / "Velocyto" / "raw"
    layers = {k: scipy.io.mmread(velo / f"{k}.mtx").toarray() for k in ("spliced", "unspliced", "ambiguous")}
    with loomfile.connect(out, "r") as ds:
        assert ds.ca.CellID.tolist() == [f"S1:{bc}" for bc in RAW]
        for name, m in layers.items():
            np.testing.assert_array_equal(ds.layers[name][:, :], m)
        np.testing.assert_array_equal(ds[:, :], sum(layers.values()))
        np.testing.assert_array_equal(ds.ca.BarcodeTotalUMIs, sum(layers.values()).sum(axis=0))


def test_create_from_star_emptydrops_keeps_the_cells_call_cells_finds(tmp_path) -> None:
    """loompy crashes here (np.matrix has no tocsc); call_cells on the spliced counts is the oracle."""
    rng = np.random.default_rng(8)
    n_genes, barcodes = 300, [f"BC{i:05d}" for i in range(2000)]
    ambient = 1.0 / np.arange(1, n_genes + 1) ** 1.1
    ambient[-60:] = 0
    ambient /= ambient.sum()
    cell = 1.0 / rng.permutation(np.arange(1, n_genes + 1)) ** 1.1
    cell /= cell.sum()
    sizes = np.r_[rng.integers(600, 900, 60), rng.integers(25, 200, 700), rng.integers(0, 15, 1240)]
    spliced = np.array([rng.multinomial(n, cell if i < 60 else ambient) for i, n in enumerate(sizes)]).T
    zeros = np.zeros_like(spliced)
    root = tmp_path / "drops"
    velocyto = {"spliced": spliced, "unspliced": zeros, "ambiguous": zeros}
    write_folder(root / "Solo.out" / "Velocyto" / "filtered", barcodes, velocyto)
    np.random.seed(3)
    _, expected = loomfile.call_cells(sparse.csc_matrix(spliced, dtype=np.float64), 60)
    out = os.fspath(tmp_path / "drops.loom")
    np.random.seed(3)
    loomfile.create_from_star(
        os.fspath(root),
        out,
        "S1",
        cell_filter="emptydrops",
        expected_n_cells=60,
        ambient_pthreshold=0.01,
        min_total_umis=100000,
    )
    keep = expected <= 0.01
    with loomfile.connect(out, "r") as ds:
        assert ds.ca.CellID.tolist() == [f"S1:{bc}" for bc, k in zip(barcodes, keep, strict=True) if k]
        np.testing.assert_array_equal(ds.ca.AmbientPValue, expected[keep])
        np.testing.assert_array_equal(ds.layers["spliced"][:, :], spliced[:, keep])
    assert keep[:60].all() and keep.sum() < 80


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"cell_filter": "Genes"}, "Unknown cell_filter 'Genes'"),
        ({"main_layer": "velo"}, "Unknown main_layer 'velo'"),
        ({"extra_layers": ["GeneFull_Ex50pAS"]}, "GeneFull_Ex50pAS"),
    ],
)
def test_create_from_star_refuses_what_it_cannot_do(
    star_dir: str, tmp_path, options: dict[str, Any], problem: str
) -> None:
    with pytest.raises((LoomValueError, FileNotFoundError), match=problem):
        loomfile.create_from_star(star_dir, os.fspath(tmp_path / "x.loom"), "S1", **options)
    assert not (tmp_path / "x.loom").exists()
