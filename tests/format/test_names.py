"""Gene and cell names where other tools keep them (loomR, anndata), and files stored transposed."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import loomfile
from looms import FIXTURES


def fixture(name: str, tmp_path: Path) -> str:
    source = FIXTURES / name
    if not source.exists():
        pytest.skip(f"no fixture {source}")
    target = tmp_path / name
    shutil.copy(source, target)
    return os.fspath(target)


@pytest.mark.parametrize(
    ("name", "genes", "cells"),
    [("mimic_loomR_s0.loom", "gene_names", "cell_names"), ("anndata_pbmc68k_s0.loom", "index", "index")],
)
def test_to_anndata_names_from_other_tools_conventions(tmp_path: Path, name: str, genes: str, cells: str) -> None:
    """A loomR file (gene_names/cell_names) and an anndata-written one (index) have no Gene/CellID:
    the names come from where those tools keep them, not "0", "1", ..."""
    path = fixture(name, tmp_path)
    with h5py.File(path, "r") as f:
        expected_genes = [v.decode() if isinstance(v, bytes) else v for v in f["row_attrs"][genes][()]]
        expected_cells = [v.decode() if isinstance(v, bytes) else v for v in f["col_attrs"][cells][()]]
    with loomfile.connect(path, "r") as ds:
        adata = ds.to_anndata()
        explicit = ds.to_anndata(obs_names=None, var_names=None)
    assert list(adata.var_names) == expected_genes and list(adata.obs_names) == expected_cells
    assert list(explicit.var_names[:2]) == ["0", "1"]  # None still means no names


def test_a_transposed_file_is_named_in_a_warning(tmp_path: Path) -> None:
    path = os.fspath(tmp_path / "t.loom")
    loomfile.create(path, np.ones((4, 3)), {"obs_names": np.array(list("abcd"))}, {"var_names": np.array(list("xyz"))})
    with pytest.warns(UserWarning, match="looks transposed") as caught, loomfile.connect(path, "r"):
        pass
    assert [w.filename for w in caught] == [__file__]
    normal = os.fspath(tmp_path / "n.loom")
    loomfile.create(normal, np.ones((4, 3)), {"Gene": np.array(list("abcd"))}, {"CellID": np.array(list("xyz"))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with loomfile.connect(normal, "r"):
            pass
