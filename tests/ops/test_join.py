"""combine(key=..., how="inner"|"outer"), sample columns and unique CellIDs, against a pandas join of
the same tables (property test) and worked examples."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import loompy
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loomfile

POOL = [f"ENSG{i:03d}" for i in range(12)]


def write(path: Path, genes: list[str], matrix: np.ndarray, prefix: str, **row_extra: np.ndarray) -> str:
    loomfile.create(
        os.fspath(path),
        {"": matrix, "spliced": (matrix * 2).astype(np.uint16)},
        {"Accession": np.array(genes, dtype=object), "Gene": np.array([g.lower() for g in genes], dtype=object),
         **row_extra},
        {"CellID": np.array([f"{prefix}{j}" for j in range(matrix.shape[1])], dtype=object)},
    )
    return os.fspath(path)


@st.composite
def files(draw: st.DrawFn) -> list[tuple[list[str], np.ndarray]]:
    n_files = draw(st.integers(2, 3))
    out = []
    for _ in range(n_files):
        genes = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=len(POOL), unique=True))
        n_cells = draw(st.integers(1, 5))
        seed = draw(st.integers(0, 2**16))
        matrix = np.random.default_rng(seed).integers(0, 9, (len(genes), n_cells)).astype(np.float32)
        out.append((genes, matrix))
    return out


@settings(max_examples=60, deadline=None)
@given(inputs=files(), how=st.sampled_from(["inner", "outer"]))
def test_joins_match_a_pandas_join(inputs: list[tuple[list[str], np.ndarray]], how: str) -> None:
    frames = [
        pd.DataFrame(m, index=genes, columns=[f"f{i}_{j}" for j in range(m.shape[1])])
        for i, (genes, m) in enumerate(inputs)
    ]
    expected = pd.concat(frames, axis=1, join=how, sort=False).fillna(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = [write(Path(folder) / f"f{i}.loom", g, m, f"f{i}_") for i, (g, m) in enumerate(inputs)]
        out = os.path.join(folder, "out.loom")
        if how == "inner" and expected.shape[0] == 0:
            with pytest.raises(loomfile.LoomValueError, match="share no value"):
                loomfile.combine(paths, out, key="Accession", how=how)
            assert not os.path.exists(out)
            return
        loomfile.combine(paths, out, key="Accession", how=how)
        with loomfile.connect(out, "r") as ds:
            got = pd.DataFrame(ds[:, :], index=list(ds.ra.Accession), columns=list(ds.ca.CellID))
            np.testing.assert_array_equal(ds.layers["spliced"][:, :], ds[:, :] * 2)
            assert list(ds.ra.Gene) == [g.lower() for g in ds.ra.Accession]
    assert sorted(got.index) == sorted(expected.index)
    pd.testing.assert_frame_equal(got.loc[expected.index, expected.columns], expected.astype(np.float32))


def test_row_order_attributes_and_fill(tmp_path: Path) -> None:
    """outer: the first file's genes in its order, then the new ones in the order they come;
    inner: the shared ones in the first file's order. Row attributes come from the first file with
    the row; one only the first file has is empty for the rows it lacks."""
    a = write(tmp_path / "a.loom", ["G3", "G1", "G2"], np.array([[1.0], [2], [3]]), "a",
              Chrom=np.array(["chr3", "chr1", "chr2"], dtype=object))
    b = write(tmp_path / "b.loom", ["G4", "G2", "G3"], np.array([[4.0, 5], [6, 7], [8, 9]]), "b")
    out = os.fspath(tmp_path / "o.loom")
    loomfile.combine([a, b], out, key="Accession", how="outer")
    with loompy.connect(out, "r") as ds:  # loompy reads it
        assert list(ds.ra.Accession) == ["G3", "G1", "G2", "G4"]
        assert list(ds.ra.Chrom) == ["chr3", "chr1", "chr2", ""]
        np.testing.assert_array_equal(ds[:, :], [[1, 8, 9], [2, 0, 0], [3, 6, 7], [0, 4, 5]])
    os.remove(out)
    loomfile.combine([a, b], out, key="Accession", how="inner")
    with loomfile.connect(out, "r") as ds:
        assert list(ds.ra.Accession) == ["G3", "G2"]
        np.testing.assert_array_equal(ds[:, :], [[1, 8, 9], [3, 6, 7]])


def test_sample_column_and_unique_ids(tmp_path: Path) -> None:
    """Two runs of one sample have the same barcodes: unique_ids prefixes them with the sample."""
    a = write(tmp_path / "run1.loom", ["G1", "G2"], np.ones((2, 3)), "AAAC-")
    b = write(tmp_path / "run2.loom", ["G1", "G2"], np.ones((2, 2)), "AAAC-")
    out = os.fspath(tmp_path / "o.loom")
    loomfile.combine([a, b], out, key="Accession", sample_attr="SampleID", unique_ids=True)
    with loomfile.connect(out, "r") as ds:
        assert list(ds.ca.SampleID) == ["run1"] * 3 + ["run2"] * 2
        assert list(ds.ca.CellID) == ["run1:AAAC-0", "run1:AAAC-1", "run1:AAAC-2", "run2:AAAC-0", "run2:AAAC-1"]
    os.remove(out)
    loomfile.combine([a, b], out, key="Accession", how="outer", sample_attr="batch", samples=["x", "y"])
    with loomfile.connect(out, "r") as ds:
        assert list(ds.ca.batch) == ["x"] * 3 + ["y"] * 2
        assert len(set(ds.ca.CellID)) == 3  # not made unique unless asked
    with pytest.raises(loomfile.LoomValueError, match="samples has 1 names for 2 files"):
        loomfile.combine([a, b], out + "2", samples=["x"], sample_attr="s")
    with pytest.raises(loomfile.LoomValueError, match="pass key="):
        loomfile.combine([a, b], out + "2", how="outer")
    with pytest.raises(loomfile.LoomValueError, match="how must be one of"):
        loomfile.combine([a, b], out + "2", key="Accession", how="left")
    assert not os.path.exists(out + "2")


def test_join_memory_is_a_band_of_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    from loomfile._ops import join as _join

    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(1500)]
    a = write(tmp_path / "a.loom", genes, rng.poisson(1, (1500, 1500)).astype(np.float32), "a")
    b = write(tmp_path / "b.loom", genes[::-1][:1400], rng.poisson(1, (1400, 1500)).astype(np.float32), "b")
    monkeypatch.setattr(_join, "BAND_BYTES", 1 << 20)
    tracemalloc.start()
    loomfile.combine([a, b], os.fspath(tmp_path / "o.loom"), key="Accession", how="outer")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB for 9 + 8 MB of float32 input"


@st.composite
def cell_files(draw: st.DrawFn) -> list[tuple[list[str], np.ndarray]]:
    """Files of the same pool of cells (columns, random subsets and orders), each with genes of its own."""
    out = []
    for _ in range(draw(st.integers(2, 3))):
        cells = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=len(POOL), unique=True))
        n_genes = draw(st.integers(1, 4))
        seed = draw(st.integers(0, 2**16))
        out.append((cells, np.random.default_rng(seed).integers(0, 9, (n_genes, len(cells))).astype(np.float32)))
    return out


@settings(max_examples=40, deadline=None)
@given(inputs=cell_files(), how=st.sampled_from(["inner", "outer"]))
def test_row_merges_match_a_pandas_join(inputs: list[tuple[list[str], np.ndarray]], how: str) -> None:
    """axis=0: the rows of files with the same cells, the columns matched on CellID."""
    frames = [
        pd.DataFrame(m, index=[f"f{i}_g{k}" for k in range(m.shape[0])], columns=cells)
        for i, (cells, m) in enumerate(inputs)
    ]
    expected = pd.concat(frames, axis=0, join=how, sort=False).fillna(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, (cells, m) in enumerate(inputs):
            path = os.path.join(folder, f"f{i}.loom")
            loomfile.create(path, m, {"Gene": np.array([f"f{i}_g{k}" for k in range(m.shape[0])])},
                            {"CellID": np.array(cells), "Weight": np.arange(len(cells), dtype=float)})
            paths.append(path)
        out = os.path.join(folder, "out.loom")
        if expected.shape[1] == 0:
            with pytest.raises(loomfile.LoomValueError, match="share no value"):
                loomfile.combine(paths, out, axis=0, how=how)
            return
        loomfile.combine(paths, out, axis=0, how=how, sample_attr="Source")
        with loomfile.connect(out, "r") as ds:
            got = pd.DataFrame(ds[:, :], index=list(ds.ra.Gene), columns=list(ds.ca.CellID))
            assert list(ds.ra.Source) == [f"f{i}" for i, (_, m) in enumerate(inputs) for _ in range(m.shape[0])]
            first = dict(zip(inputs[0][0], range(len(inputs[0][0])), strict=True))
            for cell, weight in zip(ds.ca.CellID, ds.ca.Weight, strict=True):  # from the first file holding it
                holder = next(i for i, (cells, _) in enumerate(inputs) if cell in cells)
                assert weight == (first[cell] if holder == 0 else inputs[holder][0].index(cell))
    assert sorted(got.columns) == sorted(expected.columns)
    pd.testing.assert_frame_equal(got.loc[expected.index, expected.columns], expected.astype(np.float32))


def test_row_merge_strict_names_the_cells_that_differ(tmp_path: Path) -> None:
    a, b = os.fspath(tmp_path / "a.loom"), os.fspath(tmp_path / "b.loom")
    loomfile.create(a, np.ones((2, 3)), {"Gene": np.array(["x", "y"])}, {"CellID": np.array(["c1", "c2", "c3"])})
    loomfile.create(b, np.ones((1, 3)), {"Gene": np.array(["ADT_CD3"])}, {"CellID": np.array(["c3", "c1", "c9"])})
    with pytest.raises(loomfile.LoomValueError, match=r"Column attribute 'CellID' differs.*'c2'.*'c9'"):
        loomfile.combine([a, b], os.fspath(tmp_path / "o.loom"), axis=0)
    with loomfile.connect(a) as ds:
        ds.layers["spliced"] = np.full((2, 3), 5.0)
    with pytest.warns(UserWarning, match=r"b.loom has no layers \['spliced'\]: they are zeros"):
        loomfile.combine([a, b], os.fspath(tmp_path / "o.loom"), axis=0, how="inner")
    with loompy.connect(os.fspath(tmp_path / "o.loom"), "r") as ds:
        assert list(ds.ca.CellID) == ["c1", "c3"] and list(ds.ra.Gene) == ["x", "y", "ADT_CD3"]
        np.testing.assert_array_equal(ds.layers["spliced"][:, :], [[5, 5], [5, 5], [0, 0]])
    with loomfile.connect(a) as ds:
        ds.ra.Accession = np.array(["E1", "E2"])
    loomfile.combine([a, b], os.fspath(tmp_path / "o.loom"), axis=0, how="inner")  # (replaced)
    with loomfile.connect(os.fspath(tmp_path / "o.loom"), "r") as ds:  # kept: empty for the antibody
        assert list(ds.ra.Accession) == ["E1", "E2", ""]
    with pytest.raises(loomfile.LoomValueError, match="unique_ids"):
        loomfile.combine([a, b], os.fspath(tmp_path / "p.loom"), axis=0, unique_ids=True)


def test_the_first_files_chunks_are_copied_as_stored(tmp_path: Path) -> None:
    """In a join the first file's rows are the output's first rows, in order: its whole chunk
    columns are copied without decoding (as combine does), the rest decoded and placed."""
    import h5py

    rng = np.random.default_rng(3)
    genes = [f"G{i:03d}" for i in range(130)]
    a = write(tmp_path / "a.loom", genes, rng.poisson(1, (130, 150)).astype(np.float32), "a")
    b = write(tmp_path / "b.loom", genes[::-1][:120], rng.poisson(1, (120, 70)).astype(np.float32), "b")
    out = os.fspath(tmp_path / "o.loom")
    loomfile.combine([a, b], out, key="Accession", how="outer")
    with h5py.File(a, "r") as fa, h5py.File(out, "r") as fo:
        for col in (0, 64):
            for row in (0, 64, 128):
                assert fo["matrix"].id.read_direct_chunk((row, col)) == fa["matrix"].id.read_direct_chunk((row, col))
    with loomfile.connect(a, "r") as da, loomfile.connect(b, "r") as db, loomfile.connect(out, "r") as do:
        np.testing.assert_array_equal(do[:, :150], da[:, :])
        order = [genes.index(g) for g in db.ra.Accession]
        np.testing.assert_array_equal(do[order, 150:], db[:, :])
        np.testing.assert_array_equal(do.layers["spliced"][:, :150], da.layers["spliced"][:, :])
