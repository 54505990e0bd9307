"""Shared fixtures of the reliability suite: a folder of small files to break, its snapshot, and a
report of how loompy 3.0.8 handles the same cases.

``workdir`` is a fresh copy (per test) of a folder built once per session:

====================  ===========================================================================
``main.loom``          12 x 10 float32 counts, a uint16 layer "spliced", row attributes Gene and
                       Number, column attributes CellID, Cluster and Score, a column graph KNN, a
                       row graph G, a global attribute "title"
``same_rows.loom``     12 x 4, the same rows (Gene) and layers
``fewer_rows.loom``    5 x 4
``no_spliced.loom``    12 x 4, the same rows, the main matrix only
``notes.txt``          a text file
``empty.loom``         a file of 0 bytes
``folder.loom``        a directory
``plain.h5``           an HDF5 file that is not a Loom file
``truncated.loom``     the first half of main.loom
``bad_graph.loom``     main.loom whose column graph names vertex 15 (there are 10 columns)
``bad_attr.loom``      main.loom whose column attribute Score has 9 values for 10 columns
====================  ===========================================================================

The files are written with loomfile and h5py; loompy reads all of the valid ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import loomfile

N_ROWS, N_COLS = 12, 10


def counts(n_rows: int, n_cols: int, seed: int) -> np.ndarray:
    """Whole-number float32 counts (exact in every dtype the tests cast them to)."""
    return np.random.default_rng(seed).poisson(2.0, (n_rows, n_cols)).astype(np.float32)


def genes(n: int = N_ROWS) -> np.ndarray:
    return np.array([f"g{i}" for i in range(n)], dtype=object)


def col_attrs(n: int, prefix: str = "c") -> dict[str, np.ndarray]:
    return {
        "CellID": np.array([f"{prefix}{j}" for j in range(n)], dtype=object),
        "Cluster": np.arange(n) % 3,
        "Score": np.linspace(0.0, 1.0, n),
    }


def _write_loom(path: Path, n_rows: int, n_cols: int, seed: int, *, spliced: bool = True) -> None:
    m = counts(n_rows, n_cols, seed)
    layers = {"": m, "spliced": (m * 2).astype(np.uint16)} if spliced else {"": m}
    row_attrs = {"Gene": genes(n_rows), "Number": np.arange(n_rows)}
    loomfile.create(os.fspath(path), layers, row_attrs, col_attrs(n_cols, f"s{seed}_"))


def _add_graphs_and_title(path: Path) -> None:
    with loomfile.connect(path) as ds:
        ring = np.arange(N_COLS)
        ds.col_graphs["KNN"] = _coo(ring, np.roll(ring, 1), N_COLS)
        rows = np.arange(N_ROWS)
        ds.row_graphs["G"] = _coo(rows, np.roll(rows, 1), N_ROWS)
        ds.attrs["title"] = "reliability"


def _coo(a: np.ndarray, b: np.ndarray, n: int) -> Any:
    import scipy.sparse as sparse

    return sparse.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))


def _build_template(folder: Path) -> None:
    main = folder / "main.loom"
    _write_loom(main, N_ROWS, N_COLS, 1)
    _add_graphs_and_title(main)
    _write_loom(folder / "same_rows.loom", N_ROWS, 4, 2)
    _write_loom(folder / "fewer_rows.loom", 5, 4, 3)
    _write_loom(folder / "no_spliced.loom", N_ROWS, 4, 4, spliced=False)
    (folder / "notes.txt").write_text("gene\tcell\tcount\ng0\tc0\t3\n")
    (folder / "empty.loom").write_bytes(b"")
    (folder / "folder.loom").mkdir()
    with h5py.File(folder / "plain.h5", "w") as h5:
        h5.create_dataset("x", data=np.arange(10))
    data = main.read_bytes()
    (folder / "truncated.loom").write_bytes(data[: len(data) // 2])
    shutil.copy(main, folder / "bad_graph.loom")
    with h5py.File(folder / "bad_graph.loom", "a") as h5:
        b = h5["col_graphs/KNN/b"]
        values = b[()]
        values[0] = 15
        b[...] = values
    shutil.copy(main, folder / "bad_attr.loom")
    with h5py.File(folder / "bad_attr.loom", "a") as h5:
        del h5["col_attrs/Score"]
        h5["col_attrs"].create_dataset("Score", data=np.linspace(0.0, 1.0, 9))


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reliability_template")
    _build_template(folder)
    return folder


@pytest.fixture
def workdir_factory(template_dir: Path, tmp_path: Path) -> Callable[[str], Path]:
    """``workdir_factory(name)``: a fresh copy of the template folder, in this test's tmp_path."""

    def make(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(template_dir, target)
        return target

    return make


@pytest.fixture
def workdir(workdir_factory: Callable[[str], Path]) -> Path:
    """A fresh copy of the template folder, for one test to break."""
    return workdir_factory("work")


def take_snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's SHA-256, or "<dir>" (so new, lost or changed files show)."""
    state: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            state[os.path.relpath(os.path.join(root, name), folder)] = "<dir>"
        for name in files:
            path = os.path.join(root, name)
            state[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="session")
def snapshot() -> Callable[[Path], dict[str, str]]:
    """``snapshot(folder)``: every entry under the folder, a file's SHA-256 or "<dir>"."""
    return take_snapshot


# --- the loompy report -------------------------------------------------------------------------------


@dataclass
class LoompyReport:
    """How loompy 3.0.8 fared on each case of each suite: "clean" or what went wrong."""

    outcomes: dict[str, dict[str, str]] = field(default_factory=dict)

    def record(self, suite: str, case: str, outcome: str) -> None:
        self.outcomes.setdefault(suite, {})[case] = outcome

    def lines(self) -> list[str]:
        out = []
        for suite, cases in sorted(self.outcomes.items()):
            clean = sum(1 for o in cases.values() if o == "clean")
            out.append(f"{suite}: loompy 3.0.8 handled {clean} of {len(cases)} cases cleanly")
        return out


_REPORT = LoompyReport()


@pytest.fixture(scope="session")
def loompy_report() -> Iterator[LoompyReport]:
    """Record loompy's outcomes here; the counts are printed at the end of the session, and with
    LOOMFILE_RELIABILITY_REPORT=path every case's outcome is written there (tab-separated)."""
    yield _REPORT
    target = os.environ.get("LOOMFILE_RELIABILITY_REPORT")
    if target:
        with open(target, "w", encoding="utf-8") as f:
            for suite, cases in sorted(_REPORT.outcomes.items()):
                for case, outcome in cases.items():
                    f.write(f"{suite}\t{case}\t{outcome}\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = _REPORT.lines()
    if lines:
        terminalreporter.section("loompy 3.0.8 reference")
        for line in lines:
            terminalreporter.write_line(line)
