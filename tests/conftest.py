"""Shared fixtures. loompy (the test oracle) still calls np.in1d, removed in numpy 2.4: alias it here only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

if not hasattr(np, "in1d"):
    np.in1d = np.isin  # type: ignore[attr-defined]



@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def small_data(rng: np.random.Generator) -> dict:
    """A realistic small dataset: counts (90% zeros), string/numeric/2-D attributes, a KNN graph."""
    n_genes, n_cells = 150, 130
    counts = rng.negative_binomial(1, 0.5, size=(n_genes, n_cells)).astype(np.float32)
    counts[rng.random((n_genes, n_cells)) < 0.8] = 0
    genes = np.array([f"Gene{i}" for i in range(n_genes)], dtype=object)
    genes[:3] = ["Actb", "Gapdh", "S6Kβ"]
    return {
        "matrix": counts,
        "row_attrs": {
            "Gene": genes,
            "Accession": np.array([f"ENSG{i:08d}" for i in range(n_genes)], dtype=object),
            "Selected": (rng.random(n_genes) < 0.5).astype(np.int64),
        },
        "col_attrs": {
            "CellID": np.array([f"cell_{j}_é" for j in range(n_cells)], dtype=object),
            "ClusterID": rng.integers(0, 5, n_cells),
            "PCA": rng.normal(size=(n_cells, 4)),
        },
    }


@pytest.fixture
def loom_path(tmp_path: Path, small_data: dict) -> str:
    """A file written by loomfile.create from ``small_data``."""
    import loomfile

    path = os.fspath(tmp_path / "small.loom")
    loomfile.create(path, small_data["matrix"], small_data["row_attrs"], small_data["col_attrs"])
    return path
