"""The write operations test_durability traces, one per child process.

    python durability_ops.py setup FOLDER           # the files the operations change
    python durability_ops.py OPERATION FOLDER full  # one operation, with durability "full" or "none"

FOLDER holds ``f.loom`` (40 x 30, a "spliced" layer, column attributes), ``other.loom`` (the same
rows, 20 columns) and ``out.loom`` (an older file that ``combine`` replaces); ``create`` writes
``new.loom``, which does not exist before. Each operation changes exactly one file: ``TARGETS``.

Chunks are written two ways: by h5py, and by the engine straight through HDF5's ``H5Dwrite_chunk``
(``_chunkwrite``; at least ``MIN_CHUNKS`` whole chunks per write, so not on files this small). Both
reach the file through the same file object, and both are traced: "layer" writes its chunks
directly anyway, "permute" and "combine" are run with ``MIN_CHUNKS = 1`` (``direct_chunks``), the
other operations through h5py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

import loomfile
from loomfile._engine import write as _chunkwrite

N_ROWS, N_COLS, N_OTHER = 40, 30, 20


def _counts(n_rows: int, n_cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(2.0, (n_rows, n_cols)).astype(np.float32)


def _genes() -> np.ndarray:
    return np.array([f"g{i}" for i in range(N_ROWS)])


def _write(path: str, n_cols: int, seed: int, durability: str = "full") -> None:
    m = _counts(N_ROWS, n_cols, seed)
    loomfile.create(
        path,
        {"": m, "spliced": (m * 2).astype(np.uint16)},
        {"Gene": _genes()},
        {"CellID": np.array([f"s{seed}c{j}" for j in range(n_cols)]), "Cluster": np.arange(n_cols) % 3},
        durability=durability,  # type: ignore[arg-type]
    )


def setup(folder: str) -> None:
    _write(os.path.join(folder, "f.loom"), N_COLS, 1)
    _write(os.path.join(folder, "other.loom"), N_OTHER, 2)
    _write(os.path.join(folder, "out.loom"), 5, 3)


def _in_place(change: Callable[[loomfile.LoomConnection], None]) -> Callable[[str, str], None]:
    def run(folder: str, durability: str) -> None:
        with loomfile.connect(os.path.join(folder, "f.loom"), durability=durability) as ds:  # type: ignore[arg-type]
            change(ds)

    return run


def direct_chunks(run: Callable[[str, str], None]) -> Callable[[str, str], None]:
    """``run`` with every chunk it writes handed to HDF5 directly (see the module docs)."""

    def direct(folder: str, durability: str) -> None:
        _chunkwrite.MIN_CHUNKS = 1
        run(folder, durability)

    return direct


def _add_columns(ds: loomfile.LoomConnection) -> None:
    m = _counts(N_ROWS, 7, 4)
    ds.add_columns(
        {"": m, "spliced": (m * 2).astype(np.uint16)},
        {"CellID": np.array([f"n{j}" for j in range(7)]), "Cluster": np.arange(7) % 3},
    )


def _block(ds: loomfile.LoomConnection) -> None:
    ds[5:30, 3:20] = np.full((25, 17), 7.0, dtype=np.float32)


OPERATIONS: dict[str, Callable[[str, str], None]] = {
    "create": lambda folder, durability: _write(os.path.join(folder, "new.loom"), 12, 5, durability),
    "create over": lambda folder, durability: _write(os.path.join(folder, "f.loom"), 12, 6, durability),
    "add_columns": _in_place(_add_columns),
    "permute": direct_chunks(_in_place(lambda ds: ds.permute(np.random.default_rng(7).permutation(N_COLS), axis=1))),
    "layer": _in_place(lambda ds: ds.layers.__setitem__("extra", _counts(N_ROWS, N_COLS, 8))),
    "block": _in_place(_block),
    "attribute": _in_place(lambda ds: ds.ca.__setitem__("Cluster", np.arange(N_COLS) % 5)),
    "combine": direct_chunks(
        lambda folder, durability: loomfile.combine(
            [os.path.join(folder, "f.loom"), os.path.join(folder, "other.loom")], os.path.join(folder, "out.loom")
        )
    ),
}
TARGETS = {"create": "new.loom", "combine": "out.loom"}  # the others change f.loom


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2])
    else:
        if sys.argv[1] == "combine":  # combine takes no durability argument: the environment's
            os.environ["LOOMFILE_DURABILITY"] = sys.argv[3]
        OPERATIONS[sys.argv[1]](sys.argv[2], sys.argv[3])
