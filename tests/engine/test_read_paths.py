"""scan, map and sparse on the chunk engine: exact agreement with loompy on wide data, and scans that
prefetch the next band while the caller writes to the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import loompy
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
from loomfile._engine import pools

N_ROWS, N_COLS = 150, 9000  # rows longer than numpy's 8192-element reduction blocks


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, np.ndarray]:
    """The same float32 matrix (and a uint16 layer), written by loompy and by loomfile."""
    rng = np.random.default_rng(7)
    m = rng.gamma(0.5, 3.0, (N_ROWS, N_COLS)).astype(np.float32)
    m[rng.random(m.shape) < 0.8] = 0
    layer = (m * 3).astype(np.uint16)
    ra = {"Gene": np.array([f"g{i}" for i in range(N_ROWS)])}
    ca = {"Cell": np.array([f"c{j}" for j in range(N_COLS)])}
    d = tmp_path_factory.mktemp("wide")
    ref, new = os.fspath(d / "ref.loom"), os.fspath(d / "new.loom")
    loompy.create(ref, {"": m, "counts": layer}, ra, ca)
    loomfile.create(new, {"": m, "counts": layer}, ra, ca)
    return ref, new, m


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("LOOMFILE_THREADS", str(request.param))
    monkeypatch.setattr(pools, "_pool", None)
    return int(request.param)


FUNCTIONS = [np.mean, np.std, np.var, np.sum, np.max, np.min, np.median, np.count_nonzero]


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("selection", [None, "mask"])
def test_map_is_bit_identical_to_loompy(wide: Any, threads: int, axis: int, selection: Any) -> None:
    ref, new, _ = wide
    if selection == "mask":
        selection = np.arange((N_COLS, N_ROWS)[axis]) % 3 != 0
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        expected = a.map(FUNCTIONS, axis=axis, selection=selection)
        got = b.map(FUNCTIONS, axis=axis, selection=selection)
    for f, e, g in zip(FUNCTIONS, expected, got, strict=True):
        assert g.dtype == e.dtype == np.float64
        np.testing.assert_array_equal(g, e, err_msg=f.__name__)


def test_map_calls_other_functions_per_vector(wide: Any) -> None:
    _, new, m = wide
    seen: list[tuple[int, ...]] = []

    def nonzero_fraction(v: np.ndarray) -> float:
        seen.append(v.shape)
        return float(np.count_nonzero(v)) / v.size

    with loomfile.connect(new, "r") as b:
        (got,) = b.map([nonzero_fraction], axis=1)
    assert set(seen) == {(N_ROWS,)} and len(seen) == N_COLS
    np.testing.assert_array_equal(got, np.count_nonzero(m, axis=0) / N_ROWS)


def test_integer_layer_map_matches_loompy(wide: Any) -> None:
    ref, new, _ = wide
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        for axis in (0, 1):
            for e, g in zip(
                a.layers["counts"].map([np.mean, np.sum], axis=axis),
                b.layers["counts"].map([np.mean, np.sum], axis=axis),
                strict=True,
            ):
                np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("cols", [None, "ints", "mask"])
def test_sparse_matches_loompy_entry_for_entry(wide: Any, threads: int, cols: Any) -> None:
    ref, new, m = wide
    rows = None
    if cols == "ints":
        cols = np.sort(np.random.default_rng(1).choice(N_COLS, 700, replace=False))
        rows = np.arange(0, N_ROWS, 2)
    elif cols == "mask":
        cols = np.arange(N_COLS) % 5 == 1
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        e = a.layers[""].sparse(rows=rows, cols=cols)
        g = b.layers[""].sparse(rows=rows, cols=cols)
    assert isinstance(g, sparse.coo_matrix) and g.shape == e.shape and g.dtype == e.dtype
    assert (g != e).nnz == 0
    # the same entries in the same order
    for name in ("row", "col", "data"):
        np.testing.assert_array_equal(getattr(g, name), getattr(e, name), err_msg=name)
    expect = m if rows is None else m[rows]
    if cols is not None:
        expect = expect[:, cols]
    np.testing.assert_array_equal(g.toarray(), expect)


def test_sparse_uses_compact_indices_and_casts(wide: Any) -> None:
    _, new, m = wide
    with loomfile.connect(new, "r") as b:
        g = b.layers["counts"].sparse(dtype="float64")
    assert g.row.dtype == np.int32 and g.col.dtype == np.int32 and g.dtype == np.float64
    np.testing.assert_array_equal(g.toarray(), (m * 3).astype(np.uint16))


@pytest.mark.parametrize("axis", [0, 1])
def test_scan_matches_loompy_with_prefetch(wide: Any, threads: int, axis: int) -> None:
    ref, new, _ = wide
    items = np.arange((N_ROWS, N_COLS)[axis]) % 4 != 2
    batch = (40, 1024)[axis]
    with loompy.connect(ref, "r") as a, loomfile.connect(new, "r") as b:
        theirs = [
            (ix, s, v.layers["counts"][:, :], v[:, :])
            for ix, s, v in a.scan(axis=axis, items=items, batch_size=batch)
        ]
        ours = [
            (ix, s, v.layers["counts"][:, :], v[:, :])
            for ix, s, v in b.scan(axis=axis, items=items, batch_size=batch)
        ]
    assert len(ours) == len(theirs) > 2
    for (ix_a, sel_a, la, ma), (ix_b, sel_b, lb, mb) in zip(theirs, ours, strict=True):
        assert ix_a == ix_b
        np.testing.assert_array_equal(sel_b, sel_a)
        np.testing.assert_array_equal(mb, ma)
        np.testing.assert_array_equal(lb, la)


def _copy(path: str, tmp_path: Path) -> str:
    import shutil

    out = os.fspath(tmp_path / "copy.loom")
    shutil.copyfile(path, out)
    return out


def test_scan_sees_writes_made_ahead_of_it(wide: Any, tmp_path: Path) -> None:
    """Writing into the band after the current one must show in that band, as without prefetching."""
    _, new, m = wide
    path = _copy(new, tmp_path)
    with loomfile.connect(path, "r+") as ds:
        seen = []
        for ix, _sel, view in ds.scan(axis=1, batch_size=512):
            seen.append(view[:, :].copy())
            nxt = slice(ix + 512, min(ix + 1024, N_COLS))
            if nxt.start < N_COLS:
                ds[:, nxt] = np.full((N_ROWS, nxt.stop - nxt.start), ix + 1.0, dtype=np.float32)
    assert len(seen) == -(-N_COLS // 512)
    np.testing.assert_array_equal(seen[0], m[:, :512])
    for k in range(1, len(seen)):
        assert np.all(seen[k] == (k - 1) * 512 + 1.0), k


def test_scan_write_back_and_attribute_changes(wide: Any, tmp_path: Path) -> None:
    """Normalising band by band in place, and changing attributes mid-scan, give loompy's results."""
    _, new, m = wide
    path = _copy(new, tmp_path)
    with loomfile.connect(path, "r+") as ds:
        labels = []
        for ix, sel, view in ds.scan(axis=1, batch_size=1000):
            block = view[:, :]
            ds[:, sel] = block * 2
            labels.append(view.ca["Cell"][0])
            if ix == 2000:
                ds.ca["Cell"] = np.array([f"x{j}" for j in range(N_COLS)])
        np.testing.assert_array_equal(ds[:, :], m * 2)
    assert labels[:3] == ["c0", "c1000", "c2000"] and labels[3] == "x3000"


def test_scan_stopped_early_leaves_no_read_running(wide: Any) -> None:
    _, new, _ = wide
    ds = loomfile.connect(new, "r")
    for _ix, _sel, _view in ds.scan(axis=0, batch_size=64):
        break
    ds.close()
    assert pools._ahead is None or pools._ahead._work_queue.empty()


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray]:
    """80 MB of float32 (400 x 50000, 10% nonzero) in a file."""
    rng = np.random.default_rng(5)
    m = np.zeros((400, 50_000), dtype=np.float32)
    hits = rng.random(m.shape) < 0.1
    m[hits] = rng.integers(1, 50, int(hits.sum()))
    path = os.fspath(tmp_path_factory.mktemp("long") / "long.loom")
    loomfile.create(path, m, {"Gene": np.arange(400)}, {"Cell": np.arange(50_000)})
    return path, m


def _peak_during(action: Any) -> tuple[Any, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_scan_holds_about_two_bands(long_file: Any) -> None:
    path, m = long_file
    band_bytes = 400 * 512 * 4
    with loomfile.connect(path, "r") as ds:
        ds[:, :64]  # index the layer outside the measurement

        def scan() -> float:
            total = 0.0
            for _ix, _sel, view in ds.scan(axis=1, batch_size=512, layers=[""]):
                total += float(view[:, :].sum(dtype=np.float64))
            return total

        total, peak = _peak_during(scan)
    assert total == pytest.approx(float(m.sum(dtype=np.float64)))
    # two bands, decoding buffers and the view's attributes: far below the 80 MB of the layer
    assert peak < 8 * band_bytes, peak / band_bytes


def test_sparse_peak_memory_is_below_three_times_the_result(long_file: Any) -> None:
    path, m = long_file
    with loomfile.connect(path, "r") as ds:
        ds[:, :64]
        result, peak = _peak_during(lambda: ds.layers[""].sparse())
    size = result.data.nbytes + result.row.nbytes + result.col.nbytes
    assert result.nnz == np.count_nonzero(m)
    assert peak < 3 * size, peak / size


def test_dropped_connections_and_views_are_freed_without_the_garbage_collector(
    wide: Any, tmp_path: Path
) -> None:
    """No reference cycles: a dropped connection releases its file at once, a scan band its memory."""
    import gc
    import weakref

    import h5py

    path = _copy(wide[1], tmp_path)
    gc.disable()
    try:
        ds = loomfile.connect(path, "r+")
        view = ds.view[:5, :5]
        refs = [weakref.ref(ds), weakref.ref(view)]
        del ds, view
        assert all(r() is None for r in refs)
        with h5py.File(path, "w"):  # HDF5 refuses to truncate a file this process still has open
            pass
    finally:
        gc.enable()


def test_scan_views_follow_graph_changes(wide: Any, tmp_path: Path) -> None:
    """Graphs are read once per scan, and again if they change while it runs."""
    path = _copy(wide[1], tmp_path)
    ring = sparse.coo_matrix((np.ones(N_COLS), (np.arange(N_COLS), (np.arange(N_COLS) + 1) % N_COLS)))
    with loomfile.connect(path, "r+") as ds:
        ds.col_graphs["KNN"] = ring
        edges = []
        for ix, _sel, view in ds.scan(axis=1, batch_size=1000):
            edges.append(view.col_graphs["KNN"].nnz)
            if ix == 3000:
                ds.col_graphs["KNN"] = sparse.coo_matrix((N_COLS, N_COLS))
    # a band of 1000 ring vertices keeps 999 edges (the last wraps out), until the graph is emptied
    assert edges[:4] == [999, 999, 999, 999] and set(edges[4:]) == {0}
