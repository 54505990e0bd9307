"""Band buffers recycled only once nothing outside holds them: a scan's views the caller keeps are
never overwritten, and the memory of views it dropped holds the next bands."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import loomfile
from loomfile._engine import memory as _memory
from looms import counts_file


def test_recycler_reuses_a_buffer_only_when_nothing_holds_it() -> None:
    recycler = _memory.Recycler(keep=3)
    first = recycler.get("", (4, 1 << 20), np.float32)
    first[:] = 1
    address = first.ctypes.data
    kept_slice = first[1:2, :10]  # the caller keeps a piece of it
    del first
    second = recycler.get("", (4, 1 << 20), np.float32)
    assert second.ctypes.data != address  # still held through the slice: not reused
    assert np.all(kept_slice == 1)
    del kept_slice, second
    third = recycler.get("", (2, 1 << 20), np.float32)  # smaller: fits a free buffer
    assert third.ctypes.data == address


def test_recycler_keeps_at_most_keep_buffers_per_name() -> None:
    recycler = _memory.Recycler(keep=2)
    held = [recycler.get("a", (1, 1 << 20), np.uint8) for _ in range(5)]  # all held: five buffers
    assert len({h.ctypes.data for h in held}) == 5
    assert len(recycler._pools["a"]) == 2
    other = recycler.get("b", (1, 16), np.uint8)  # names do not share buffers
    assert other.ctypes.data not in {h.ctypes.data for h in held}


def test_recycler_drops_free_buffers_too_small_and_allocates_the_capacity_asked() -> None:
    recycler = _memory.Recycler(keep=3)
    small = recycler.get("", (1, 1000), np.uint8, capacity=4000)  # room for the widest band to come
    address = small.ctypes.data
    del small
    wider = recycler.get("", (1, 3000), np.uint8)  # fits the capacity: the same memory
    assert wider.ctypes.data == address
    del wider
    widest = recycler.get("", (1, 8000), np.uint8)  # too large: a new buffer, the free small one dropped
    # (not "another address": malloc may well hand the freed block's address out again, grown)
    assert len(recycler._pools[""]) == 1
    assert recycler._pools[""][0].nbytes >= 8000 and widest.nbytes == 8000


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray]:
    path = tmp_path_factory.mktemp("memory") / "wide.loom"
    m = counts_file(path, 700, 3000, seed=5)
    return os.fspath(path), m


@pytest.mark.parametrize("axis", [0, 1])
def test_scan_views_kept_by_the_caller_keep_their_values(wide: tuple[str, np.ndarray], axis: int) -> None:
    path, m = wide
    with loomfile.connect(path, "r") as ds:
        kept = [(ix, view) for ix, _, view in ds.scan(axis=axis, batch_size=128)]
        spliced = ds.layers["spliced"][:, :]
    assert len(kept) > 4
    for ix, view in kept:
        part = m[ix : ix + 128] if axis == 0 else m[:, ix : ix + 128]
        np.testing.assert_array_equal(view[:, :], part)
        expected = spliced[ix : ix + 128] if axis == 0 else spliced[:, ix : ix + 128]
        np.testing.assert_array_equal(view.layers["spliced"][:, :], expected)


def test_scan_reuses_the_memory_of_views_the_caller_dropped(wide: tuple[str, np.ndarray]) -> None:
    path, m = wide
    fresh = mock.Mock(wraps=np.empty)
    with mock.patch.object(_memory.np, "empty", fresh), loomfile.connect(path, "r") as ds:
        sums = [float(view[:, :].sum(dtype=np.float64)) for _, _, view in ds.scan(axis=1, batch_size=256)]
    assert len(sums) == 12
    np.testing.assert_allclose(sums, [m[:, i : i + 256].sum(dtype=np.float64) for i in range(0, 3000, 256)])
    # numpy's np.empty is patched everywhere: count the band buffers (one int size), no other array
    bands = [c for c in fresh.call_args_list if isinstance(c.args[0], int) and c.args[0] >= 700 * 256 * 2]
    assert 0 < len(bands) <= 2 * 4  # two layers, at most four buffers each, for 12 bands


def test_add_loom_in_a_loop_with_a_kept_band(wide: tuple[str, np.ndarray], tmp_path: Path) -> None:
    """combine's bands go through one recycler for every file: values stay right across files."""
    path, m = wide
    out = tmp_path / "out.loom"
    loomfile.combine([path, path, path], os.fspath(out), key="Gene", batch_size=128)
    with loomfile.connect(out, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], np.hstack([m, m, m]))


@pytest.mark.parametrize("form", ["csr", "csc", "coo"])
def test_add_columns_of_a_sparse_matrix_is_never_dense_whole(
    tmp_path: Path, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sparse block is written a band of chunk columns at a time: with 1 MiB bands, the peak is
    the sparse input (and its csc copy for coo) plus a few bands, far below the 48 MB dense block
    (which it was, plus a cast copy); the values land exactly."""
    import tracemalloc

    import scipy.sparse as sparse

    from loomfile._ops import columns as _ops

    monkeypatch.setattr(_ops, "SPARSE_BAND_BYTES", 1 << 20)
    n = 8000
    m = sparse.random(n, 1500, density=0.1, format="csr", random_state=3, dtype=np.float32)
    path = os.fspath(tmp_path / "a.loom")
    loomfile.create(path, m[:, :70], {"Gene": np.arange(n)}, {"CellID": np.arange(70)})  # ends mid-chunk
    block = m.asformat(form)
    size = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    with loomfile.connect(path) as ds:
        tracemalloc.start()
        ds.add_columns(block, {"CellID": np.arange(70, 1570)})
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        np.testing.assert_array_equal(ds[:, 70:], m.toarray())
        np.testing.assert_array_equal(ds[:, :70], m[:, :70].toarray())
    limit = (2 if form == "coo" else 1) * size + (8 << 20)
    assert peak < limit, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB sparse block"
