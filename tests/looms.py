"""Small Loom files the tests build: Poisson counts in a float32 main matrix and a uint16 layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
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


# The submodules of loompy 3.0.8 callers import from (loomfile has each, re-exporting its names)
LOOMPY_SUBMODULES = [
    "attribute_manager",
    "bus_file",
    "cell_calling",
    "global_attribute_manager",
    "graph_manager",
    "layer_manager",
    "loom_layer",
    "loom_validator",
    "loom_view",
    "loompy",
    "metadata_loaders",
    "normalize",
    "to_html",
    "utils",
    "view_manager",
]


def stored_contents(path: str) -> dict[str, Any]:
    """The matrix, layers and attributes of a Loom file as h5py reads them (text decoded)."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in (
                "matrix",
                "layers",
                "row_attrs",
                "col_attrs",
            ):
                values = obj[()]
                if values.dtype.kind in "OS":
                    values = np.array(
                        [v.decode() if isinstance(v, bytes) else v for v in values.ravel()], dtype=object
                    )
                out[name] = values

        f.visititems(visit)
    return out
