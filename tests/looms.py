"""Small Loom files the tests build: Poisson counts in a float32 main matrix and a uint16 layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import loomfile

SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # ../shared beside the repo
FIXTURES = SHARED / "fixtures"  # files written by third-party tools


def counts_file(
    path: Path, n_rows: int, n_cols: int, seed: int, cell_prefix: str = "c", sizes: bool = True
) -> np.ndarray:
    """Write the file (Gene row attribute; CellID and, with ``sizes``, Size column attributes) and
    return its main matrix; the "spliced" layer is twice the matrix."""
    rng = np.random.default_rng(seed)
    m = rng.poisson(0.5, (n_rows, n_cols)).astype(np.float32)
    col_attrs = {"CellID": np.array([f"{cell_prefix}{j}" for j in range(n_cols)])}
    if sizes:
        col_attrs["Size"] = rng.random(n_cols)
    loomfile.create(
        path,
        {"": m, "spliced": (m * 2).astype(np.uint16)},
        {"Gene": np.array([f"g{i}" for i in range(n_rows)])},
        col_attrs,
    )
    return m
