"""build_coo, sparse()'s one-pass builder: pool threads write each block's entries straight into the
result, in loompy's order, growing it when the density guess is short, and stop cleanly on errors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from loomfile._engine import pools
from loomfile._engine import read as _engine
from loomfile._engine.sparse import SPARSE_BAND, build_coo
from loomfile._selection import AxisSelection


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("LOOMFILE_THREADS", str(request.param))
    monkeypatch.setattr(pools, "_pool", None)
    yield int(request.param)
    if pools._pool is not None:
        pools._pool.shutdown(wait=True)


def loompy_order(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries as loompy's sparse() lists them: bands of SPARSE_BAND columns, row-major in each."""
    rows, cols, data = [], [], []
    for lo in range(0, m.shape[1], SPARSE_BAND):
        r, c = np.nonzero(m[:, lo : lo + SPARSE_BAND])
        rows.append(r)
        cols.append(c + lo)
        data.append(m[r, c + lo])
    return np.concatenate(data), np.concatenate(rows), np.concatenate(cols)


def reader(m: np.ndarray, calls: list[int] | None = None):  # type: ignore[no-untyped-def]
    lock = threading.Lock()

    def read(rows: AxisSelection, cols: AxisSelection) -> np.ndarray:
        if calls is not None:
            with lock:
                calls.append(rows.size * cols.size)
        return m[np.ix_(rows.indices, cols.indices)]

    return read


def skewed(n_rows: int, n_cols: int, seed: int) -> np.ndarray:
    """Almost empty at the top and dense at the bottom: the early density guess is far too small."""
    rng = np.random.default_rng(seed)
    m = rng.integers(1, 50, (n_rows, n_cols)).astype(np.float32)
    density = np.linspace(0.001, 0.95, n_rows)[:, None]
    m[rng.random(m.shape) >= density] = 0
    return m


@pytest.mark.parametrize("n_cols", [300, SPARSE_BAND + 700])
def test_entries_in_loompy_order_while_growing(threads: int, n_cols: int) -> None:
    m = skewed(2000, n_cols, 3)
    calls: list[int] = []
    got = build_coo(
        reader(m, calls), AxisSelection.full(2000), AxisSelection.full(n_cols), np.dtype("float64"), 64 * 256
    )
    assert len(calls) > 20  # many blocks, so the arrays had to grow several times
    data, row, col = loompy_order(m)
    assert got.shape == m.shape and got.dtype == np.float64
    assert got.row.dtype == np.int32 and got.col.dtype == np.int32
    np.testing.assert_array_equal(got.data, data)
    np.testing.assert_array_equal(got.row, row)
    np.testing.assert_array_equal(got.col, col)
    assert got.data.base is None or got.data.base.size == got.nnz  # no spare capacity kept


def test_selected_rows_and_scattered_columns(threads: int) -> None:
    m = skewed(500, 2 * SPARSE_BAND + 10, 4)
    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(500, 333, replace=False))
    cols = np.sort(rng.choice(m.shape[1], 3000, replace=False))
    got = build_coo(
        reader(m),
        AxisSelection(500, rows),
        AxisSelection(m.shape[1], cols),
        np.dtype("float32"),
        64 * 64,
    )
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.toarray(), m[np.ix_(rows, cols)])
    # within each band of file columns the entries are row-major
    band = cols[got.col] // SPARSE_BAND
    assert np.all(np.diff(band) >= 0)
    for b in np.unique(band):
        keys = got.row[band == b].astype(np.int64) * cols.size + got.col[band == b]
        assert np.all(np.diff(keys) > 0)


def test_empty_and_all_zero(threads: int) -> None:
    zeros = np.zeros((200, 100), dtype=np.float32)
    got = build_coo(
        reader(zeros), AxisSelection.full(200), AxisSelection.full(100), np.dtype("float64"), 4096
    )
    assert got.nnz == 0 and got.shape == (200, 100)
    none = build_coo(
        reader(zeros),
        AxisSelection(200, np.array([], dtype=np.intp)),
        AxisSelection.full(100),
        np.dtype("float64"),
        4096,
    )
    assert none.shape == (0, 100) and none.nnz == 0


def failures_of(call: Callable[[], object]) -> list[BaseException]:
    """What ``call`` raised, run on a thread that must finish within a minute (no hang)."""
    done: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:
            done.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "build_coo hung after a block failed"
    return done


def test_a_failing_block_raises_its_error_without_hanging(threads: int) -> None:
    m = skewed(2000, 200, 6)
    read_ok = reader(m)

    def read(rows: AxisSelection, cols: AxisSelection) -> np.ndarray:
        if rows.indices[0] == 7 * 64:
            raise OSError("chunk 7 is unreadable")
        return read_ok(rows, cols)

    done = failures_of(
        lambda: build_coo(
            read, AxisSelection.full(2000), AxisSelection.full(200), np.dtype("float64"), 64 * 200
        )
    )
    assert len(done) == 1 and isinstance(done[0], OSError) and "chunk 7" in str(done[0])


def test_a_block_failing_after_it_reserved_space_does_not_hang_the_others(threads: int) -> None:
    """A failure while writing (here: a block wider than its column list) must release the blocks
    that wait for it to finish before they can grow the arrays."""
    m = skewed(3000, 300, 8)
    cols = np.arange(0, 300, 2)
    read_ok = reader(m)

    def read(rows: AxisSelection, c: AxisSelection) -> np.ndarray:
        block = read_ok(rows, c)
        return np.hstack([block, block]) if rows.indices[0] == 4 * 64 else block  # the fifth block

    done = failures_of(
        lambda: build_coo(
            read, AxisSelection.full(3000), AxisSelection(300, cols), np.dtype("float64"), 64 * 150
        )
    )
    assert len(done) == 1 and isinstance(done[0], (IndexError, ValueError))


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
)
@pytest.mark.parametrize("extraction", ["compiled", "numpy"])
@pytest.mark.parametrize("result", ["stored", "float64"])
def test_every_value_type_in_loompy_order(
    dtype: str, extraction: str, result: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled one-pass extraction (and numpy's, without it) for every layer type, values kept
    as stored or made float64 (sparse()'s default), with scattered columns (a lookup) and
    consecutive ones (an offset)."""
    from loomfile._engine import sparse as _sparse

    to = np.dtype(dtype if result == "stored" else result)
    if extraction == "numpy":
        monkeypatch.setattr(_sparse, "NONZEROS", {})
    else:
        assert (np.dtype(dtype), to) in _sparse.NONZEROS and np.dtype(dtype) in _sparse.COUNTS
    m = skewed(700, 500, 5).astype(dtype)
    if np.dtype(dtype).kind == "f":
        m[3, 7], m[5, 9] = np.nan, -0.0  # NaN is kept (it is not zero), -0.0 is not
    if np.dtype(dtype).itemsize == 8 and np.dtype(dtype).kind in "iu":
        m[4, 4] = np.iinfo(dtype).max  # rounded to the nearest float64, as numpy's astype does
    pick = np.sort(np.random.default_rng(2).choice(500, 123, replace=False))
    for cols in (AxisSelection(500, pick), AxisSelection.full(500)):
        rows = AxisSelection.full(700)
        got = build_coo(reader(m), rows, cols, to, 700 * cols.size)
        data, r, c = loompy_order(m[:, cols.indices])
        assert got.data.dtype == to
        np.testing.assert_array_equal(got.data, data.astype(to))
        np.testing.assert_array_equal(got.row, r)
        np.testing.assert_array_equal(got.col, c)


def as_tiles(block: np.ndarray, chunk: tuple[int, int], padding: float) -> _engine.Tiles:
    """``block`` laid out as decoded chunks (m, k, h, c1), the edge chunks' spare cells holding
    ``padding`` (what HDF5 leaves there is not part of the layer)."""
    h, c1 = chunk
    m, k = -(-block.shape[0] // h), -(-block.shape[1] // c1)
    grid = np.full((m * h, k * c1), padding, dtype=block.dtype)
    grid[: block.shape[0], : block.shape[1]] = block
    values = np.ascontiguousarray(grid.reshape(m, h, k, c1).transpose(0, 2, 1, 3))
    return _engine.Tiles(values, *block.shape)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int64"])
@pytest.mark.parametrize("extraction", ["compiled", "numpy"])
def test_blocks_given_as_decoded_chunks(
    threads: int, dtype: str, extraction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader may hand over a block's decoded chunks (Tiles) instead of a placed array: entries
    come in the same order, edge chunks' spare cells are ignored, and the lookup of scattered
    columns still applies."""
    from loomfile._engine import sparse as _sparse

    if extraction == "numpy":
        monkeypatch.setattr(_sparse, "NONZEROS", {})
    m = skewed(1000, SPARSE_BAND + 300, 9).astype(dtype)  # edge chunks in both directions
    read_ok = reader(m)
    tiles_given = []

    def read(rows: AxisSelection, cols: AxisSelection) -> np.ndarray | _engine.Tiles:
        tiles_given.append(1)
        return as_tiles(read_ok(rows, cols), (64, 48), padding=7)

    pick = np.sort(np.random.default_rng(3).choice(m.shape[1], 2000, replace=False))
    for cols in (AxisSelection.full(m.shape[1]), AxisSelection(m.shape[1], pick)):
        got = build_coo(read, AxisSelection.full(1000), cols, np.dtype("float64"), 64 * 1000)
        # loompy's bands are of file columns: the selected columns of each band, row-major
        parts = []
        for lo in range(0, m.shape[1], SPARSE_BAND):
            where = np.flatnonzero((cols.indices >= lo) & (cols.indices < lo + SPARSE_BAND))
            d, r, c = loompy_order(m[:, cols.indices[where]])
            parts.append((d, r, where[c]))
        data, r, c = (np.concatenate(x) for x in zip(*parts, strict=True))
        np.testing.assert_array_equal(got.data, data.astype(np.float64))
        np.testing.assert_array_equal(got.row, r)
        np.testing.assert_array_equal(got.col, c)
    assert len(tiles_given) > 4


def test_tiles_of_a_layer_only_for_blocks_on_the_chunk_grid(tmp_path: Path) -> None:
    import loomfile
    from looms import counts_file

    path = tmp_path / "t.loom"
    m = counts_file(path, 200, 300, seed=4)
    with loomfile.connect(path, "r") as ds:
        store = ds._store
        chunk = store.layer("").chunks
        run = AxisSelection(200, np.arange(chunk[0], 200))
        tiles = store.read_tiles("", run, AxisSelection.full(300))
        assert tiles is not None and (tiles.rows, tiles.cols) == (200 - chunk[0], 300)
        np.testing.assert_array_equal(tiles.dense(), m[chunk[0] :])
        off_grid = AxisSelection(200, np.arange(1, 200))
        assert store.read_tiles("", off_grid, AxisSelection.full(300)) is None
        gaps = AxisSelection(300, np.array([0, 1, 5]))
        assert store.read_tiles("", AxisSelection.full(200), gaps) is None
        np.testing.assert_array_equal(ds.sparse().toarray(), m)  # the layer read as tiles


def test_no_tiles_when_the_chunks_reach_far_beyond_the_block(tmp_path: Path) -> None:
    """Chunks of whole columns (a layout some writers choose): a band of rows would decode every
    column entirely; such blocks are read the usual way, a few chunks at a time."""
    import h5py

    import loomfile

    path = tmp_path / "columns.loom"
    m = skewed(300, 40, 6)
    loomfile.create(str(path), m, {"Gene": np.arange(300)}, {"CellID": np.arange(40)})
    with h5py.File(path, "r+") as f:
        del f["matrix"]
        f.create_dataset("matrix", data=m, chunks=(300, 1), compression="gzip")
    with loomfile.connect(path, "r") as ds:
        store = ds._store
        assert store.read_tiles("", AxisSelection(300, np.arange(0, 64)), AxisSelection.full(40)) is None
        assert store.read_tiles("", AxisSelection.full(300), AxisSelection.full(40)) is not None
        np.testing.assert_array_equal(ds.sparse().toarray(), m)
