"""ds.subset() / ``loomfile subset``: a new file from a selection, against the in-memory view of the
same selection (itself checked against numpy) and against stored chunks, with bounded memory."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import h5py
import loompy
import numpy as np
import pytest
import scipy.sparse as sparse
from click.testing import CliRunner

import loomfile
from loomfile._ops import subset as _subset
from loomfile.cli import cli

N_GENES, N_CELLS = 150, 300  # partial chunks on both axes (64 x 64)


@pytest.fixture
def source(tmp_path: Path) -> str:
    rng = np.random.default_rng(5)
    m = rng.poisson(0.6, (N_GENES, N_CELLS)).astype(np.float32)
    path = os.fspath(tmp_path / "src.loom")
    loomfile.create(
        path,
        {"": m, "spliced": (m * 3).astype(np.uint16)},
        {"Gene": np.array([f"g{i}" for i in range(N_GENES)]), "Loadings": rng.normal(size=(N_GENES, 3))},
        {
            "CellID": np.array([f"c{j}" for j in range(N_CELLS)]),
            "ClusterID": rng.integers(0, 4, N_CELLS),
            "PCA": rng.normal(size=(N_CELLS, 5)),
        },
        file_attrs={"title": "source"},
    )
    with loomfile.connect(path) as ds:
        a, b = rng.integers(0, N_CELLS, 900), rng.integers(0, N_CELLS, 900)
        ds.col_graphs["KNN"] = sparse.coo_matrix((rng.random(900), (a, b)), shape=(N_CELLS, N_CELLS))
        ds.row_graphs["net"] = sparse.coo_matrix((np.ones(40), (np.arange(40), np.arange(40)[::-1])),
                                                 shape=(N_GENES, N_GENES))
    return path


SELECTIONS: dict[str, tuple[Any, Any]] = {
    "columns by mask": (slice(None), lambda ds: ds.ca.ClusterID == 2),
    "rows and columns": (slice(10, 120), slice(64, 256)),
    "unsorted indices with repeats": ([5, 3, 3, 140], [299, 0, 17, 17, 64]),
    "every other column": (slice(None), slice(None, None, 2)),
    "whole file": (slice(None), slice(None)),
}


@pytest.mark.parametrize("name", SELECTIONS)
def test_subset_is_the_view_written_to_a_file(source: str, tmp_path: Path, name: str) -> None:
    rows, cols = SELECTIONS[name]
    out = os.fspath(tmp_path / "out.loom")
    with loomfile.connect(source, "r") as ds:
        cols = cols(ds) if callable(cols) else cols
        ds.subset(out, rows=rows, cols=cols)
        view = ds.view[rows, cols]
    with loomfile.connect(out, "r") as got:
        assert got.shape == view.shape
        assert sorted(got.layers.keys()) == sorted(view.layers.keys())
        for layer in view.layers.keys():
            assert got.layers[layer].dtype == view.layers[layer].dtype
            np.testing.assert_array_equal(got.layers[layer][:, :], view.layers[layer][:, :])
        for mine, theirs in ((got.ra, view.ra), (got.ca, view.ca)):
            assert sorted(mine.keys()) == sorted(theirs.keys())
            for key in theirs.keys():
                np.testing.assert_array_equal(mine[key], theirs[key])
        for mine, theirs in ((got.row_graphs, view.row_graphs), (got.col_graphs, view.col_graphs)):
            assert sorted(mine.keys()) == sorted(theirs.keys())
            for key in theirs.keys():
                np.testing.assert_array_equal(mine[key].toarray(), theirs[key].toarray())
        assert got.attrs["title"] == "source"
    with loompy.connect(out, "r") as lp:  # loompy reads it
        assert lp.shape == view.shape


def test_whole_chunk_columns_are_copied_as_stored(source: str, tmp_path: Path) -> None:
    out = os.fspath(tmp_path / "out.loom")
    with loomfile.connect(source, "r") as ds:
        ds.subset(out, cols=slice(64, 256))
    with h5py.File(source, "r") as a, h5py.File(out, "r") as b:
        for name in ("matrix", "layers/spliced"):
            for col in (0, 64, 128):
                for row in (0, 64, 128):
                    assert b[name].id.read_direct_chunk((row, col)) == a[name].id.read_direct_chunk((row, col + 64))


def test_memory_stays_at_a_few_bands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    path, out = os.fspath(tmp_path / "big.loom"), os.fspath(tmp_path / "out.loom")
    m = rng.poisson(1.0, (2000, 3000)).astype(np.float32)  # 24 MB
    loomfile.create(path, m, {"Gene": np.arange(2000)}, {"CellID": np.arange(3000)})
    del m
    monkeypatch.setattr(_subset, "BAND_BYTES", 1 << 20)
    with loomfile.connect(path, "r") as ds:
        tracemalloc.start()
        ds.subset(out, rows=slice(1, 2000), cols=np.arange(3000) % 3 != 0)  # nothing copied as stored
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        expected = ds[1:2000, np.arange(3000) % 3 != 0]
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a 16 MB result"
    with loomfile.connect(out, "r") as got:
        np.testing.assert_array_equal(got[:, :], expected)


def test_bad_selections_write_nothing(source: str, tmp_path: Path) -> None:
    out = tmp_path / "out.loom"
    with loomfile.connect(source, "r") as ds:
        with pytest.raises(loomfile.LoomValueError, match="empty"):
            ds.subset(out, cols=np.zeros(N_CELLS, bool))
        with pytest.raises(IndexError):
            ds.subset(out, rows=[N_GENES])
        with pytest.raises(loomfile.LoomValueError, match="the file it reads"):
            ds.subset(source, cols=slice(0, 10))
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["src.loom"]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="loomfile")
    return result.exit_code, result.stdout, result.stderr


def test_command_line(source: str, tmp_path: Path) -> None:
    cells, genes = tmp_path / "cells.txt", tmp_path / "genes.txt"
    cells.write_text("c7\nc3\nc250\n")
    genes.write_text("g1\ng140\n")
    out = tmp_path / "out.loom"
    status, text, err = run("subset", source, "-o", str(out), "--cells", str(cells), "--genes", str(genes))
    assert status == 0, err
    assert f"wrote {out}" in text
    with loomfile.connect(source, "r") as ds, loomfile.connect(out, "r") as got:
        np.testing.assert_array_equal(got.ca.CellID, ["c3", "c7", "c250"])  # the file's order
        np.testing.assert_array_equal(got[:, :], ds[[1, 140], :][:, [3, 7, 250]])
    status, _, err = run("subset", source, "-o", str(out), "--where", "ClusterID=1,3", "--force")
    assert status == 0, err
    with loomfile.connect(source, "r") as ds, loomfile.connect(out, "r") as got:
        np.testing.assert_array_equal(got.ca.CellID, ds.ca.CellID[np.isin(ds.ca.ClusterID, [1, 3])])
    cells.write_text("c7\nnobody\n")
    status, _, err = run("subset", source, "-o", str(tmp_path / "x.loom"), "--cells", str(cells))
    assert status == 1 and "nobody" in err and not (tmp_path / "x.loom").exists()
    status, _, err = run("subset", source, "-o", str(tmp_path / "x.loom"), "--where", "Nope=1")
    assert status == 1 and "Nope" in err
    status, _, err = run("subset", source, "-o", source, "--force")
    assert status == 2 and "input" in err
