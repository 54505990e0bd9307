"""Small reads index only the chunks they touch: a pruned walk of the B-tree must find exactly the
chunks the full index has in those rows x columns, and reads through it must equal h5py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loomfile
from loomfile._engine import chunks as _chunks
from loomfile._engine import read as _engine
from loomfile._engine.btree import chunk_records
from loomfile._engine.chunks import layout_of
from loomfile._selection import AxisSelection

SHAPE = (150, 140)
LAYOUTS = {
    "2x2-deep-tree": dict(chunks=(2, 2)),  # 5250 chunks: a three-level B-tree
    "7x13-random-order": dict(chunks=(7, 13), order="random"),
    "5x3-holes": dict(chunks=(5, 3), holes=True),  # chunks never written: none to find there
    "64x64": dict(chunks=(64, 64)),
}


def build(path: Path, chunks: tuple[int, int], order: str = "rows", holes: bool = False) -> np.ndarray:
    rng = np.random.default_rng(11)
    full = rng.integers(0, 1000, SHAPE).astype(np.int32)
    grid = [(r, c) for r in range(0, SHAPE[0], chunks[0]) for c in range(0, SHAPE[1], chunks[1])]
    if order == "random":
        rng.shuffle(grid)
    kept = np.ones(SHAPE, dtype=bool)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("m", shape=SHAPE, dtype="i4", chunks=chunks, compression="gzip", fillvalue=0)
        for r, c in grid:
            if holes and (r // chunks[0] + 2 * (c // chunks[1])) % 5 == 0:
                kept[r : r + chunks[0], c : c + chunks[1]] = False
                continue
            d[r : r + chunks[0], c : c + chunks[1]] = full[r : r + chunks[0], c : c + chunks[1]]
    return np.where(kept, full, 0)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    d = tmp_path_factory.mktemp("partial")
    out = {}
    for name, opts in LAYOUTS.items():
        path = d / f"{name}.h5"
        out[name] = (path, build(path, **opts))  # type: ignore[arg-type]
    return out


def as_dict(records: Any) -> dict[tuple[int, ...], tuple[int, int, int]]:
    coords, offsets, sizes, masks = records
    return {
        tuple(int(x) for x in k): (int(o), int(s), int(m))
        for k, o, s, m in zip(coords, offsets, sizes, masks, strict=True)
    }


grid_subset = st.lists(st.integers(0, 80), min_size=0, max_size=6, unique=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(list(LAYOUTS)), rows=grid_subset, cols=grid_subset)
def test_pruned_walk_finds_exactly_the_wanted_chunks(
    files: dict[str, tuple[Path, np.ndarray]], name: str, rows: list[int], cols: list[int]
) -> None:
    path, _ = files[name]
    with h5py.File(path, "r") as f:
        dset = f["m"]
        c0, c1 = dset.chunks
        n_r, n_c = -(-SHAPE[0] // c0), -(-SHAPE[1] // c1)
        wanted = (np.unique([r % n_r for r in rows]), np.unique([c % n_c for c in cols]))
        fd = f.id.get_vfd_handle()
        everything = chunk_records(dset, fd)
        part = chunk_records(dset, fd, wanted)
    assert everything is not None and part is not None
    expect = {
        k: v
        for k, v in as_dict(everything).items()
        if k[0] // c0 in set(wanted[0].tolist()) and k[1] // c1 in set(wanted[1].tolist())
    }
    assert as_dict(part) == expect


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(list(LAYOUTS)), data=st.data())
def test_reads_through_a_partial_index_match_h5py(
    files: dict[str, tuple[Path, np.ndarray]], name: str, data: st.DataObject
) -> None:
    path, full = files[name]
    rows = np.array(data.draw(st.lists(st.integers(0, SHAPE[0] - 1), min_size=1, max_size=5)))
    cols = np.array(data.draw(st.lists(st.integers(0, SHAPE[1] - 1), min_size=1, max_size=9)))
    r_sel, c_sel = AxisSelection(SHAPE[0], rows), AxisSelection(SHAPE[1], cols)
    with h5py.File(path, "r") as f:
        dset = f["m"]
        layout = layout_of(dset, _engine.chunks_of(dset.chunks, r_sel, c_sel))
        assert layout is not None and layout.wanted is not None
        got = _engine.read(layout, r_sel, c_sel)
    np.testing.assert_array_equal(got, full[np.ix_(rows, cols)])


def test_small_public_reads_use_a_partial_index(tmp_path: Path) -> None:
    m = np.zeros((6400, 2000), dtype=np.float32)  # 100 x 32 chunks: a one-row read touches 1%
    m[::7, ::3] = np.arange(m[::7, ::3].size).reshape(m[::7, ::3].shape) % 13
    path = tmp_path / "f.loom"
    loomfile.create(path, m, {"Gene": np.array([f"g{i}" for i in range(6400)])}, {"C": np.arange(2000)})
    calls: list[Any] = []
    real = _chunks.layout_of

    def spy(dset: h5py.Dataset, wanted: Any = None, fd: int | None = None) -> Any:
        calls.append(None if wanted is None else tuple(w.tolist() for w in wanted))
        return real(dset, wanted, fd)

    with mock.patch("loomfile._store.store.layout_of", spy), loomfile.connect(path, "r") as ds:
        np.testing.assert_array_equal(ds[ds.ra.Gene == "g123", :], m[[123], :])
        np.testing.assert_array_equal(ds[5:9, [3, 1999, 70]], m[5:9][:, [3, 1999, 70]])
    assert calls[0] == ([1], list(range(32)))  # row 123 is in chunk row 1; 2000 columns = 32 chunks
    assert calls[1] == ([0], [0, 1, 31])


def test_a_partial_index_that_misses_a_chunk_is_not_trusted(
    files: dict[str, tuple[Path, np.ndarray]],
) -> None:
    """If the pruned walk ever skipped a subtree it needed, the absent-chunk check asks HDF5 and
    the read goes through h5py instead of returning fill values."""
    path, _ = files["2x2-deep-tree"]
    with (
        h5py.File(path, "r") as f,
        mock.patch("loomfile._engine.btree._Pruner.keep", lambda self, o: np.zeros(len(o), bool)),
    ):
        assert layout_of(f["m"], (np.array([3, 4]), np.array([5]))) is None
