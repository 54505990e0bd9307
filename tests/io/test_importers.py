"""The Matrix Market reader, create_from_matrix_market and create_from_tsv, against scipy and loompy 3.0.8
on real-format inputs written in tmp_path."""

from __future__ import annotations

import gzip
import io
import os
import re
from pathlib import Path

import loompy
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sparse

import loomfile
from loomfile.io import _text, tsv
from loomfile.io.matrix_market import read_matrix_market

TIMESTAMPS = {"CreationDate", "last_modified"}


def assert_same_loom(path: str | Path, expected: str | Path, ours_only: tuple[str, ...] = ()) -> None:
    """Both files, read by loompy, hold the same layers (values and dtypes), attributes and globals;
    ``ours_only``: row attributes ``path`` has on purpose and ``expected`` lacks (what loompy drops)."""
    with loompy.connect(os.fspath(path), "r") as a, loompy.connect(os.fspath(expected), "r") as b:
        assert a.shape == b.shape
        assert sorted(a.layers.keys()) == sorted(b.layers.keys())
        for name in b.layers.keys():
            assert a.layers[name].dtype == b.layers[name].dtype, name
            np.testing.assert_array_equal(a.layers[name][:, :], b.layers[name][:, :])
        assert set(ours_only) <= set(a.ra.keys()) and not set(ours_only) & set(b.ra.keys())
        for mine, theirs in ((a.ra, b.ra), (a.ca, b.ca)):
            assert sorted(k for k in mine.keys() if mine is not a.ra or k not in ours_only) == sorted(theirs.keys())
            for name in theirs.keys():
                assert mine[name].dtype.kind == theirs[name].dtype.kind, name
                np.testing.assert_array_equal(mine[name], theirs[name])
        globals_a = {k: a.attrs[k] for k in a.attrs.keys() if k not in TIMESTAMPS}
        globals_b = {k: b.attrs[k] for k in b.attrs.keys() if k not in TIMESTAMPS}
        assert globals_a == globals_b


def random_counts(shape: tuple[int, int], seed: int, density: float = 0.2) -> sparse.coo_matrix:
    """Integer counts (as float, what mmwrite's integer field wants) in column order, as 10x writes them."""
    rng = np.random.default_rng(seed)
    m = sparse.random(*shape, density=density, random_state=seed, format="csc")
    m.data = rng.integers(1, 50, m.nnz).astype(float)
    return m.tocoo()


def write_mtx(path: Path, matrix: sparse.coo_matrix, field: str, shuffle: bool = False) -> Path:
    if shuffle:
        order = np.random.default_rng(1).permutation(matrix.nnz)
        matrix = sparse.coo_matrix((matrix.data[order], (matrix.row[order], matrix.col[order])), matrix.shape)
    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, matrix, field=field, symmetry="general")
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(buffer.getvalue()))
    else:
        path.write_bytes(buffer.getvalue())
    return path


# --- read_matrix_market ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["integer", "real", "pattern"])
@pytest.mark.parametrize("name", ["m.mtx", "m.mtx.gz"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_reader_matches_scipy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, name: str, shuffle: bool
) -> None:
    monkeypatch.setattr(_text, "BLOCK_BYTES", 1000)  # many blocks, lines cut across them
    counts = random_counts((70, 90), 3)
    if field == "real":
        counts.data = counts.data / 7 - 3
    path = write_mtx(tmp_path / name, counts, field, shuffle)
    mine, expected = read_matrix_market(os.fspath(path)), scipy.io.mmread(os.fspath(path))
    assert sparse.issparse(mine) and mine.format == "csc"
    assert mine.dtype == expected.dtype
    assert mine.shape == expected.shape
    np.testing.assert_array_equal(mine.toarray(), expected.toarray())


def test_reader_sums_duplicates_and_reads_other_layouts(tmp_path: Path) -> None:
    dup = tmp_path / "dup.mtx"
    dup.write_text("%%MatrixMarket matrix coordinate integer general\n%c\n3 2 3\n1 1 4\n1 1 5\n3 2 -2\n")
    np.testing.assert_array_equal(
        read_matrix_market(os.fspath(dup)).toarray(), scipy.io.mmread(dup).toarray()
    )
    symmetric = sparse.coo_matrix(np.array([[1.0, 2.0, 0.0], [2.0, 0.0, 3.0], [0.0, 3.0, 5.0]]))
    scipy.io.mmwrite(tmp_path / "sym.mtx", symmetric, symmetry="symmetric")
    dense = np.arange(12.0).reshape(3, 4)
    scipy.io.mmwrite(tmp_path / "dense.mtx", dense)
    for name, expected in (("sym.mtx", symmetric.toarray()), ("dense.mtx", dense)):
        mine = read_matrix_market(os.fspath(tmp_path / name))
        np.testing.assert_array_equal(mine.toarray() if sparse.issparse(mine) else mine, expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%%MatrixMarket tensor coordinate integer general\n1 1 1\n1 1 1\n", "is not a Matrix Market matrix"),
        ("%%MatrixMarket matrix coordinate integer general\n% only comments\n", "ends before the Matrix"),
        ("%%MatrixMarket matrix coordinate integer general\n2 2\n1 1 1\n", "line 2: the size line"),
        ("%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 1\n2 x 1\n", "line 4: '2 x 1'"),
        (
            "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 1\n2 2\n",
            "line 4: '2 2' should be 3",
        ),
        ("%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 1.5\n2 2 1\n", "line 3"),
        (
            "%%MatrixMarket matrix coordinate integer general\n2 2 3\n1 1 1\n2 2 1\n",
            "has 2 entries; its size",
        ),
        (
            "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 1\n2 2 1\n",
            "more entries than the 1",
        ),
        ("%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 1\n3 2 1\n", "entry 2 has row 3"),
        ("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 0.5 1\n", "entry 1 has column 0.5"),
    ],
)
def test_reader_names_what_is_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.mtx"
    path.write_text(text)
    with pytest.raises(loomfile.LoomFormatError, match=message) as caught:
        read_matrix_market(os.fspath(path))
    assert str(path) in str(caught.value)


def test_reader_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "blank.mtx"
    path.write_text("%%MatrixMarket matrix coordinate integer general\n2 2 2\n\n1 1 7\n\n2 2 8")
    np.testing.assert_array_equal(read_matrix_market(os.fspath(path)).toarray(), [[7, 0], [0, 8]])


# --- create_from_matrix_market ---------------------------------------------------------------------


def _metadata(tmp_path: Path, n_genes: int, n_cells: int, gene_names: bool = True) -> tuple[Path, Path]:
    genes = tmp_path / "genes.tsv"
    genes.write_text(
        "".join(f"ENSG{i:05d}" + (f"\tGene{i} \n" if gene_names else "\n") for i in range(n_genes))
    )
    cells = tmp_path / "cells.tsv"
    cells.write_text("".join(f"AAAC{j:04d}-1\n" for j in range(n_cells)))
    return genes, cells


@pytest.mark.parametrize(
    "layers",
    [{"": "a"}, {"spliced": "a", "unspliced": "b"}, {"": "a", "ambiguous": "b"}],
    ids=["main", "sum of layers", "main and layer"],
)
@pytest.mark.parametrize("transposed", [False, True])
def test_matrix_market_matches_loompy(tmp_path: Path, layers: dict[str, str], transposed: bool) -> None:
    n_genes, n_cells = 40, 30
    shape = (n_cells, n_genes) if transposed else (n_genes, n_cells)
    paths = {
        "a": os.fspath(write_mtx(tmp_path / "a.mtx", random_counts(shape, 1), "integer")),
        "b": os.fspath(write_mtx(tmp_path / "b.mtx", random_counts(shape, 2), "integer", shuffle=True)),
    }
    layer_paths = {name: paths[key] for name, key in layers.items()}
    genes, cells = _metadata(tmp_path, n_genes, n_cells)
    args = ("s1", layer_paths, os.fspath(genes), os.fspath(cells))
    kwargs = {"file_attrs": {"Source": "test"}, "matrix_transposed": transposed}
    loomfile.create_from_matrix_market(os.fspath(tmp_path / "lf.loom"), *args, **kwargs)
    loompy.create_from_matrix_market(os.fspath(tmp_path / "lp.loom"), *args, **kwargs)
    assert_same_loom(tmp_path / "lf.loom", tmp_path / "lp.loom")
    with loomfile.connect(tmp_path / "lf.loom", "r") as ds:
        assert ds.ca.CellID[0] == "s1:AAAC0000-1" and ds.ra.Gene[0] == "Gene0"


def test_matrix_market_accession_only_and_headers(tmp_path: Path) -> None:
    counts = random_counts((20, 10), 4)
    mtx = os.fspath(write_mtx(tmp_path / "m.mtx.gz", counts, "integer"))
    genes, cells = _metadata(tmp_path, 20, 10, gene_names=False)
    loomfile.create_from_matrix_market(
        os.fspath(tmp_path / "lf.loom"), "s", {"": mtx}, os.fspath(genes), os.fspath(cells)
    )
    loompy.create_from_matrix_market(
        os.fspath(tmp_path / "lp.loom"), "s", {"": mtx}, os.fspath(genes), os.fspath(cells)
    )
    with (
        loomfile.connect(tmp_path / "lf.loom", "r") as lf,
        loompy.connect(os.fspath(tmp_path / "lp.loom"), "r") as lp,
    ):
        assert list(lf.ra.keys()) == ["Accession"] == list(lp.ra.keys())
        # loompy keeps the line break of a one-field line in the Accession
        np.testing.assert_array_equal(lf.ra.Accession, [a.rstrip("\n") for a in lp.ra.Accession])
        np.testing.assert_array_equal(lf[:, :], lp[:, :])
    # the header flags that loompy ignores are honoured; the delimiter too
    genes.write_text("id,name\n" + "".join(f"ENSG{i},G{i}\n" for i in range(20)))
    cells.write_text("barcode\n" + "".join(f"c{j}\n" for j in range(10)))
    loomfile.create_from_matrix_market(
        os.fspath(tmp_path / "h.loom"), "s", {"": mtx}, os.fspath(genes), os.fspath(cells),
        delim=",", skip_row_headers=True, skip_colums_headers=True,
    )  # fmt: skip
    with loomfile.connect(tmp_path / "h.loom", "r") as ds:
        assert ds.ra.Accession[0] == "ENSG0" and ds.ra.Gene[19] == "G19" and ds.ca.CellID[0] == "s:c0"


def test_matrix_market_missing_files(tmp_path: Path) -> None:
    genes, cells = _metadata(tmp_path, 20, 10)
    missing = os.fspath(tmp_path / "nope.mtx")
    with pytest.raises(loomfile.LoomNotFoundError, match=re.escape(missing)):
        loomfile.create_from_matrix_market(
            os.fspath(tmp_path / "x.loom"), "s", {"": missing}, os.fspath(genes), os.fspath(cells)
        )
    mtx = os.fspath(write_mtx(tmp_path / "m.mtx", random_counts((20, 10), 4), "integer"))
    with pytest.raises(loomfile.LoomNotFoundError, match=re.escape("cells2.tsv")):
        loomfile.create_from_matrix_market(
            os.fspath(tmp_path / "x.loom"),
            "s",
            {"": mtx},
            os.fspath(genes),
            os.fspath(tmp_path / "cells2.tsv"),
        )
    assert not (tmp_path / "x.loom").exists()


# --- create_from_tsv ------------------------------------------------------------------------------------


def write_tsv(
    path: Path,
    matrix: np.ndarray,
    genes: list[str],
    cells: list[str],
    gene_column: str | None,
    delim: str = "\t",
) -> Path:
    header = ([gene_column] if gene_column is not None else []) + cells
    lines = [delim.join(header)] + [
        delim.join([gene] + [f"{v:.17g}" for v in row]) for gene, row in zip(genes, matrix, strict=True)
    ]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _counts(n_genes: int, n_cells: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.negative_binomial(1, 0.3, (n_genes, n_cells)).astype(float)
    m[rng.random(m.shape) < 0.7] = 0
    return m


@pytest.fixture
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of one chunk row (64 rows) and batches of a few lines: the streaming paths all run."""
    monkeypatch.setattr(tsv, "BAND_BYTES", 1)
    monkeypatch.setattr(tsv, "BATCH_BYTES", 2000)
    monkeypatch.setattr(_text, "BLOCK_BYTES", 5000)


@pytest.mark.usefixtures("small_bands")
@pytest.mark.parametrize(
    ("gene_column", "name", "dtype", "delim"),
    [
        ("gene", "m.tsv", "float32", "\t"),
        (None, "m.tsv.gz", "float32", "\t"),
        ('"gene"', "m.csv", "int32", ","),
        (None, "m.tsv", "float64", "\t"),
    ],
)
def test_tsv_matches_loompy(
    tmp_path: Path, gene_column: str | None, name: str, dtype: str, delim: str
) -> None:
    n_genes, n_cells = 150, 40
    counts = _counts(n_genes, n_cells, 5)
    if dtype == "float64":
        counts = counts / 3
    genes = [f'"G{i}"' if i % 3 == 0 else f"G{i}" for i in range(n_genes)]
    cells = [f"cell{j}" for j in range(n_cells)]
    path = os.fspath(write_tsv(tmp_path / name, counts, genes, cells, gene_column, delim))
    kwargs = {"delim": delim, "dtype": dtype, "sample_id": "s1:", "file_attrs": {"Origin": "tsv"}}
    loomfile.create_from_tsv(os.fspath(tmp_path / "lf.loom"), path, **kwargs)
    loompy.create_from_tsv(os.fspath(tmp_path / "lp.loom"), path, **kwargs)
    assert_same_loom(tmp_path / "lf.loom", tmp_path / "lp.loom")
    with loomfile.connect(tmp_path / "lf.loom", "r") as ds:
        np.testing.assert_allclose(ds[:, :], counts.astype(dtype), rtol=1e-6)
        assert ds.ra.Gene[0] == "G0" and ds.ca.CellID[1] == "s1:cell1"


@pytest.mark.usefixtures("small_bands")
def test_tsv_with_row_and_column_metadata(tmp_path: Path) -> None:
    n_genes, n_cells = 200, 25
    rng = np.random.default_rng(8)
    accession = np.array([f"ENSG{i:05d}" for i in range(n_genes)], dtype=object)
    reference = tmp_path / "reference.loom"
    loompy.create(
        os.fspath(reference),
        np.zeros((n_genes, 2)),
        {
            "Accession": accession,
            "Gene": np.array([f"G{i}" for i in range(n_genes)]),
            "Start": np.arange(n_genes),
        },
        {"CellID": np.array(["x", "y"])},
    )
    # the text holds a shuffled subset of the reference's genes, and genes it does not know
    lines = rng.permutation(n_genes)[:170]
    ids = [accession[i] for i in lines] + ["UNKNOWN1", "UNKNOWN2"]
    counts = _counts(len(ids), n_cells, 9)
    cells = [f"c{j}" for j in range(n_cells)]
    matrix = os.fspath(write_tsv(tmp_path / "m.tsv", counts, ids, cells, "id"))
    meta = tmp_path / "cells.tsv"
    meta.write_text(
        '"CellID"\t"Tissue"\tBatch\n' + "".join(f'c{j}\t"t{j % 3}"\t{j % 2}\n' for j in range(n_cells))
    )
    kwargs = {"row_metadata_loomfile": os.fspath(reference), "col_metadata_tsv": os.fspath(meta)}
    loomfile.create_from_tsv(os.fspath(tmp_path / "lf.loom"), matrix, **kwargs)
    loompy.create_from_tsv(os.fspath(tmp_path / "lp.loom"), matrix, **kwargs)
    assert_same_loom(tmp_path / "lf.loom", tmp_path / "lp.loom")
    with loomfile.connect(tmp_path / "lf.loom", "r") as ds:
        expected = np.zeros((n_genes, n_cells), dtype=np.float32)
        expected[lines] = counts[:170]
        np.testing.assert_array_equal(ds[:, :], expected)
        assert list(ds.ca.Tissue[:4]) == ["t0", "t1", "t2", "t0"]


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ("g\ta\tb\nx\t1\t2\ny\t1\n", loomfile.LoomFormatError, "line 3 has 1 values; the header names 2"),
        ("g\ta\tb\nx\t1\t2\ny\t1\tNA\n", loomfile.LoomFormatError, "line 3: not all of its values"),
        ("g\ta\tb\nx\t1\t2.5\n", loomfile.LoomValueError, "fractional parts"),
        ("", loomfile.LoomFormatError, "is empty"),
    ],
)
def test_tsv_errors(tmp_path: Path, body: str, error: type, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(body)
    with pytest.raises(error, match=message):
        loomfile.create_from_tsv(os.fspath(tmp_path / "out.loom"), os.fspath(path), dtype="int32")
    assert not (tmp_path / "out.loom").exists()


def test_tsv_metadata_errors(tmp_path: Path) -> None:
    path = os.fspath(write_tsv(tmp_path / "m.tsv", np.ones((3, 2)), ["a", "b", "c"], ["c0", "c1"], "g"))
    meta = tmp_path / "meta.tsv"
    meta.write_text("CellID\tX\nc0\t1\nc9\t2\n")
    with pytest.raises(loomfile.LoomValueError, match="line 3: CellID 'c9' does not match column 1"):
        loomfile.create_from_tsv(os.fspath(tmp_path / "o.loom"), path, col_metadata_tsv=os.fspath(meta))
    meta.write_text("CellID\tX\nc0\t1\n")
    with pytest.raises(loomfile.LoomValueError, match="describes 1 cells; the matrix has 2"):
        loomfile.create_from_tsv(os.fspath(tmp_path / "o.loom"), path, col_metadata_tsv=os.fspath(meta))
    with pytest.raises(loomfile.LoomNotFoundError, match=re.escape("absent.tsv")):
        loomfile.create_from_tsv(os.fspath(tmp_path / "o.loom"), os.fspath(tmp_path / "absent.tsv"))
