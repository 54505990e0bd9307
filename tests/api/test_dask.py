"""loomfile.dask: map and scan in Dask tasks (threads, and a 2-process LocalCluster on loopback),
layers as dask arrays. In-process loomfile, loompy and scipy are the oracles."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
import loomfile.dask as ld

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

N = 20000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 20000 x 20000 float32 file at 10% density, and its nonzero counts and sums per row and column."""
    rng = np.random.default_rng(2026)
    flat = np.cumsum(rng.geometric(0.1, size=int(N * N * 0.101))) - 1
    flat = flat[flat < N * N]
    indptr = np.searchsorted(flat, np.arange(N + 1, dtype=np.int64) * N)
    values = rng.integers(1, 100, size=flat.size).astype(np.float32)
    m = sparse.csr_matrix((values, (flat % N).astype(np.int32), indptr), shape=(N, N))
    del flat
    path = os.fspath(tmp_path_factory.mktemp("dask") / "big.loom")
    loomfile.create(path, m, {"Gene": np.arange(N)}, {"CellID": np.arange(N)})
    facts = {
        "path": path,
        "nnz": (m.getnnz(axis=1), m.getnnz(axis=0)),
        "sums": (
            np.asarray(m.sum(axis=1, dtype=np.float64)).ravel(),
            np.asarray(m.sum(axis=0, dtype=np.float64)).ravel(),
        ),
    }
    return facts


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two worker processes of one thread each, listening on loopback only."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.mark.parametrize("axis", [0, 1])
def test_map_on_two_worker_processes_matches_in_process(big: dict[str, Any], client: Any, axis: int) -> None:
    fs = [np.mean, np.std, np.count_nonzero]
    with loomfile.connect(big["path"], "r") as ds:
        local = ds.map(fs, axis=axis)
    got = ld.map(big["path"], fs, axis, client=client)
    assert len(got) == 3
    for a, b in zip(local, got, strict=True):
        assert b.dtype == np.float64 and b.shape == (N,)
        assert np.array_equal(a, b)
    assert np.array_equal(got[2], big["nnz"][axis])
    np.testing.assert_allclose(got[0], big["sums"][axis] / N, rtol=1e-6)
    workers = set(client.run(os.getpid).values())
    assert len(workers) == 2 and os.getpid() not in workers


def test_dask_array_on_worker_processes(big: dict[str, Any], client: Any) -> None:
    with loomfile.connect(big["path"], "r") as ds:
        arr = ds.to_dask()
        assert arr.shape == (N, N) and arr.dtype == np.float32
        assert all(width % 64 == 0 for width in arr.chunks[1][:-1]) and arr.chunks[0] == (N,)
        expected = ds[:, 4000:4300]
        got = arr[:, 4000:4300].compute(scheduler=client)
    assert np.array_equal(got, expected)
    nnz = (arr != 0).sum(axis=1).compute(scheduler=client)
    assert np.array_equal(nnz, big["nnz"][0])


# --- small files, threads ---------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(5)
    m = rng.poisson(0.7, (300, 250)).astype(np.float32)
    path = os.fspath(tmp_path / "small.loom")
    loomfile.create(
        path,
        {"": m, "spliced": (m * 3).astype(np.uint16)},
        {"Gene": np.array([f"g{i}" for i in range(300)])},
        {"CellID": np.array([f"c{j}" for j in range(250)]), "Size": rng.random(250)},
    )
    return path, m


def spread(v: np.ndarray) -> float:
    return float(v.max() - v.min())


@pytest.mark.parametrize("axis", [0, 1])
def test_map_in_tasks_matches_loompy_and_map(small: tuple[str, np.ndarray], axis: int) -> None:
    import loompy

    path = small[0]
    mask = np.arange((250, 300)[axis]) % 3 != 0
    fs = [np.mean, np.std, spread]
    got = ld.map(path, fs, axis, client="threads", selection=mask, block=70)
    with loomfile.connect(path, "r") as ds:
        local = ds.map(fs, axis=axis, selection=mask)
    with loompy.connect(path, "r") as lp:
        oracle = lp.map(fs, axis=axis, selection=mask)
    for a, b, c in zip(local, got, oracle, strict=True):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(b, c, rtol=1e-6)


def test_map_of_an_integer_layer(small: tuple[str, np.ndarray]) -> None:
    path, m = small
    (sums,) = ld.map(path, [np.sum], 1, layer="spliced", client="synchronous", block=64)
    assert np.array_equal(sums, (m * 3).sum(axis=0))


def test_scan_in_tasks_matches_scan(small: tuple[str, np.ndarray]) -> None:
    path, m = small

    def summary(ix: int, selection: np.ndarray, view: Any) -> tuple[Any, ...]:
        return (
            ix,
            selection.copy(),
            view.ca.CellID.copy(),
            view[:, :].sum(axis=0),
            view.layers["spliced"][:, :].max(),
        )

    items = np.flatnonzero(np.arange(250) % 4 != 1)
    kwargs: dict[str, Any] = {"axis": 1, "items": items, "key": "Gene", "batch_size": 32}
    got = ld.scan(path, summary, client="threads", block=64, **kwargs)
    with loomfile.connect(path, "r") as ds:
        expected = [summary(*band) for band in ds.scan(**kwargs)]
    assert len(got) == len(expected) == 8
    for a, b in zip(got, expected, strict=True):
        assert a[0] == b[0]
        for x, y in zip(a[1:], b[1:], strict=True):
            assert np.array_equal(x, y)
    # independent check: the column sums of the visited columns
    visited = np.concatenate([g[1] for g in got])
    assert np.array_equal(visited, items)
    assert np.allclose(np.concatenate([g[3] for g in got]), m[:, items].sum(axis=0))


@pytest.mark.parametrize(("axis", "block", "widths"), [(1, 100, (64, 64, 64, 58)), (0, 130, (128, 128, 44))])
def test_to_dask_blocks_follow_the_chunk_grid(
    small: tuple[str, np.ndarray], axis: int, block: int, widths: tuple[int, ...]
) -> None:
    path, m = small
    with loomfile.connect(path, "r") as ds:
        arr = ds.layers[""].to_dask(axis=axis, block=block)
        spliced = ds.to_dask("spliced", axis=axis, block=block)
        assert ds.to_dask(axis=axis, block=block).name == arr.name
    assert arr.chunks[axis] == widths and arr.chunks[1 - axis] == (m.shape[1 - axis],)
    assert np.array_equal(arr.compute(scheduler="threads"), m)
    assert spliced.dtype == np.uint16
    assert np.array_equal(
        spliced[5:50, ::7].compute(scheduler="synchronous"), (m * 3).astype(np.uint16)[5:50, ::7]
    )
    again = pickle.loads(pickle.dumps(arr))
    assert np.array_equal(again.compute(scheduler="synchronous"), m)


def test_to_dask_default_blocks_are_about_dasks_chunk_size(small: tuple[str, np.ndarray]) -> None:
    path = small[0]
    with dask.config.set({"array.chunk-size": "100KiB"}):  # 102400 bytes: 85 columns of 300 float32, so 64
        arr = ld.layer_array(path)
    assert arr.chunks[1] == (64, 64, 64, 58)


def test_to_dask_needs_a_read_only_connection(small: tuple[str, np.ndarray]) -> None:
    with loomfile.connect(small[0], "r+") as ds, pytest.raises(loomfile.LoomLockedError, match="mode='r'"):
        ds.to_dask()


def test_bad_arguments(small: tuple[str, np.ndarray]) -> None:
    path, _ = small
    with pytest.raises(loomfile.LoomValueError, match="list of functions"):
        ld.map(path, np.mean, 0)  # type: ignore[arg-type]
    with pytest.raises(loomfile.LoomValueError, match="axis must be 0"):
        ld.map(path, [np.mean], 2)
    with pytest.raises(loomfile.LoomValueError, match="at least 1"):
        ld.map(path, [np.mean], 0, block=0)
    with pytest.raises(loomfile.LoomValueError, match="blocks of rows"):
        ld.layer_array(path, axis=3)
    with pytest.raises(loomfile.LoomValueError, match="batch_size"):
        ld.scan(path, lambda *a: None, axis=0, batch_size=0)
    with pytest.raises(loomfile.LoomKeyError):
        ld.map(path, [np.mean], 0, layer="nope")
    with pytest.raises(loomfile.LoomNotFoundError):
        ld.map(path + ".missing", [np.mean], 0)


def test_without_dask_the_error_says_what_to_install(
    small: tuple[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"loomfile\[dask\]"):
        ld.map(small[0], [np.mean], 0)
