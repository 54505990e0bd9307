"""The chunk read engine (``_codec``, ``_chunks``, ``_engine``) and how ``LoomStore`` uses it.

Every expected value comes from numpy or h5py, never from the engine. Files are real HDF5 files
written with h5py (or loompy) in temporary directories, in many layouts: chunk shapes, dtypes
(big-endian included), filter pipelines, unwritten chunks with a non-zero fill value, a userblock,
chunks stored out of order, each kind of chunk index, per-chunk filter masks.

Engine settings are parametrized (threads, segment and task sizes, which inflater) so that the
segmentation, task grouping, thread pool and fallback decoders all run at test sizes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loomfile
from loomfile import testing
from loomfile._engine import codec as _codec
from loomfile._engine import pools
from loomfile._engine import read as _engine
from loomfile._engine.chunks import ChunkLayout, layout_of
from loomfile._engine.codec import FILTER_DEFLATE, FILTER_SHUFFLE, Pipeline, unshuffle
from loomfile._errors import LoomFormatError
from loomfile._selection import AxisSelection

N_ROWS, N_COLS = 150, 140  # a multiple of none of the chunk edges used below


# --- references, written here independently of src --------------------------------------------------


def ref_shuffle(raw: bytes, itemsize: int) -> bytes:
    """HDF5's shuffle filter: byte 0 of every item, then byte 1 of every item...; leftover bytes last."""
    n = len(raw) // itemsize
    out = bytearray(len(raw))
    for b in range(itemsize):
        for i in range(n):
            out[b * n + i] = raw[i * itemsize + b]
    out[n * itemsize :] = raw[n * itemsize :]
    return bytes(out)


def ref_unshuffle(data: bytes, itemsize: int) -> bytes:
    """The inverse of :func:`ref_shuffle`, one byte at a time."""
    n = len(data) // itemsize
    out = bytearray(len(data))
    for i in range(n):
        for b in range(itemsize):
            out[i * itemsize + b] = data[b * n + i]
    out[n * itemsize :] = data[n * itemsize :]
    return bytes(out)


def numpy_indices(key: Any, n: int) -> np.ndarray:
    """The positions ``key`` selects on an axis of length ``n`` ("full": all), by numpy's indexing."""
    axis = np.arange(n)
    if isinstance(key, str):
        return axis
    if isinstance(key, int | np.integer):
        return np.atleast_1d(axis[key])
    if isinstance(key, slice):
        return axis[key]
    arr = np.asarray(key)
    if arr.dtype == bool:
        return axis[arr]
    return axis[arr.astype(np.intp)] if arr.size else np.zeros(0, dtype=np.intp)


def expected_of(full: np.ndarray, rkey: Any, ckey: Any) -> np.ndarray:
    """``full[rows, cols]`` with orthogonal semantics, always 2-D (as ``_engine.read`` returns)."""
    return full[np.ix_(numpy_indices(rkey, full.shape[0]), numpy_indices(ckey, full.shape[1]))]


def public_expected(full: np.ndarray, rkey: Any, ckey: Any) -> np.ndarray:
    """As :func:`expected_of`, with int keys dropping their axis (as ``ds[...]`` does)."""
    out = expected_of(full, rkey, ckey)
    if isinstance(rkey, int):
        out = out[0]
    if isinstance(ckey, int):
        out = out[..., 0]
    return out


def selection(key: Any, n: int, axis: int) -> AxisSelection:
    return AxisSelection.full(n) if isinstance(key, str) else AxisSelection.from_key(key, n, axis)


def assert_same(got: np.ndarray, want: np.ndarray, what: Any = "") -> None:
    """Equal shape, dtype (byte order included) and values (NaN equal to NaN)."""
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype, what
    np.testing.assert_array_equal(got, want, err_msg=repr(what))


NOT_CACHED = object()


def cached_layout(ds: loomfile.LoomConnection, name: str) -> Any:
    """The chunk layout the connection's store holds for layer ``name`` (None: h5py), or NOT_CACHED.

    The store keeps either the layout or (generation, layout); both forms are accepted.
    """
    entry = ds._store._layouts.get(name, NOT_CACHED)
    return entry[-1] if isinstance(entry, tuple) else entry


def axis_keys(n: int, rng: np.random.Generator) -> list[Any]:
    """Keys for one axis of length ``n``: every kind, with its edge cases."""
    return [
        "full",  # AxisSelection.full
        0,
        n - 1,
        -1,
        n // 2,
        slice(None),
        slice(3, n - 2),
        slice(None, None, 3),
        slice(None, None, -1),
        slice(n - 2, 1, -7),
        slice(5, 5),  # empty
        slice(10, 2),  # empty
        [n - 1, 0, 0, n // 2, -2, n // 2],  # unsorted, repeated, negative
        rng.integers(0, n, 25).tolist(),
        sorted(set(rng.integers(0, n, 12).tolist())),
        [],
        rng.random(n) < 0.3,
        np.zeros(n, dtype=bool),
        np.ones(n, dtype=bool),
    ]


def key_pairs(rkeys: list[Any], ckeys: list[Any], per_row: int) -> Iterator[tuple[Any, Any]]:
    """Each row key with ``per_row`` column keys, rotating so every column key is used as often."""
    for i, rkey in enumerate(rkeys):
        for k in range(per_row):
            yield rkey, ckeys[(i + 5 * k) % len(ckeys)]


# --- engine settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    threads: int
    segment_chunks: int = _engine.SEGMENT_CHUNKS
    task_chunks: int = _engine.TASK_CHUNKS
    # "libdeflate": batches through the compiled helper; "loop": ctypes into libdeflate chunk by chunk
    # from Python (no helper); "package": deflate's own API; "zlib"
    codec: str = "libdeflate"


MODES = {
    "t1": Mode(1),
    "t2": Mode(2),
    "t1-seg3-task4": Mode(1, segment_chunks=3, task_chunks=4),
    "t2-seg2-task1": Mode(2, segment_chunks=2, task_chunks=1),
    "t2-seg1-package": Mode(2, segment_chunks=1, task_chunks=8, codec="package"),
    "t1-zlib": Mode(1, codec="zlib"),
    "t2-loop": Mode(2, segment_chunks=2, task_chunks=4, codec="loop"),
}


@contextlib.contextmanager
def engine_settings(mode: Mode) -> Iterator[None]:
    """Run the engine with ``mode`` (build layouts inside: a Pipeline picks its decoder when built)."""
    patches = [
        mock.patch.dict(os.environ, {"LOOMFILE_THREADS": str(mode.threads)}),
        mock.patch.object(_engine, "SEGMENT_CHUNKS", mode.segment_chunks),
        mock.patch.object(_engine, "TASK_CHUNKS", mode.task_chunks),
        mock.patch.object(pools, "_pool", None),
    ]
    if mode.codec == "loop" and _codec.LIBDEFLATE is not None:
        patches.append(mock.patch.object(_codec.LIBDEFLATE, "many", None))
    if mode.codec not in ("libdeflate", "loop"):
        patches.append(mock.patch.object(_codec, "LIBDEFLATE", None))
    if mode.codec == "zlib":
        patches.append(mock.patch.object(_codec, "_deflate", None))
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        try:
            yield
        finally:
            if pools._pool is not None:
                pools._pool.shutdown(wait=True)


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> Iterator[Mode]:
    with engine_settings(MODES[request.param]):
        yield MODES[request.param]


# --- dataset configurations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    dtype: str = "float32"
    chunks: tuple[int, int] = (64, 64)
    compression: str | None = "gzip"
    level: int = 4
    shuffle: bool = False
    fillvalue: float | None = None
    order: str = "once"  # one write; or chunk by chunk: "rows", "reverse" (last column first), "random"
    region: tuple[slice, slice] | None = None  # only this part is written; the rest is the fill value
    userblock: int = 0
    libver: str | None = None
    maxshape: tuple[int | None, int | None] | None = None
    masked: tuple[tuple[int, int, int], ...] = ()  # (grid row, grid col, filter mask): stored by hand
    resize: tuple[tuple[int, int], ...] = ()  # shapes the dataset goes through after writing


CONFIGS = {
    "f4-64x64-gzip4": Config(),
    "f4-7x13-gzip1": Config(chunks=(7, 13), level=1),
    "f4-7x13-gzip0": Config(chunks=(7, 13), level=0),  # deflate's stored blocks
    "f8-1xN-gzip9": Config("float64", chunks=(1, N_COLS), level=9),
    "i1-Nx1-gzip4": Config("int8", chunks=(N_ROWS, 1)),
    "u2-100x3-gzip4": Config("uint16", chunks=(100, 3)),
    "i4-64x64-shuffle": Config("int32", shuffle=True),
    "i8-7x13-shuffle-gzip9": Config("int64", chunks=(7, 13), shuffle=True, level=9),
    "f2-64x64-gzip": Config("float16"),
    "f2-7x13-shuffle": Config("float16", chunks=(7, 13), shuffle=True),
    "bef4-64x64-shuffle": Config(">f4", shuffle=True),
    "bei4-7x13-gzip": Config(">i4", chunks=(7, 13)),
    "f4-7x13-uncompressed": Config(chunks=(7, 13), compression=None),
    "bei4-100x3-uncompressed": Config(">i4", chunks=(100, 3), compression=None),
    "u2-7x13-shuffle-only": Config("uint16", chunks=(7, 13), compression=None, shuffle=True),
    "i4-fill7-partial": Config("int32", chunks=(7, 13), fillvalue=7, region=(slice(20, 90), slice(30, 100))),
    "f4-fill7-partial-shuffle": Config(
        chunks=(16, 16), shuffle=True, fillvalue=7, region=(slice(0, 40), slice(70, None))
    ),
    "bef8-fill7-partial-uncompressed": Config(
        ">f8", chunks=(16, 16), compression=None, fillvalue=7, region=(slice(50, None), slice(0, 33))
    ),
    "userblock512": Config(chunks=(7, 13), shuffle=True, userblock=512),
    "userblock512-fill7-partial": Config(userblock=512, fillvalue=7, region=(slice(64, None), slice(0, 64))),
    "reverse-order": Config(chunks=(7, 13), order="reverse"),
    "random-order-shuffle": Config("int16", chunks=(16, 16), shuffle=True, order="random"),
    "random-order-uncompressed-fill7": Config(
        chunks=(16, 16), compression=None, fillvalue=7, order="random", region=(slice(10, 140), slice(5, 120))
    ),
    "latest-fixed-array": Config(chunks=(16, 16), libver="latest", order="rows"),
    "latest-fixed-array-larger-max": Config(chunks=(16, 16), libver="latest", maxshape=(300, 300)),
    # Extensible-array index growing down the rows. Growing along the columns: see test_extensible_array_*.
    "latest-extensible-array-rows": Config(chunks=(16, 16), libver="latest", maxshape=(None, N_COLS)),
    "latest-btree2-random": Config(chunks=(16, 16), libver="latest", maxshape=(None, None), order="random"),
    "never-written-fill7": Config(chunks=(16, 16), fillvalue=7, region=(slice(0, 0), slice(0, 0))),
    "one-chunk-larger-than-dataset": Config(chunks=(256, 256), shuffle=True, maxshape=(None, None)),
    "resized-fill7": Config(
        chunks=(16, 16), maxshape=(None, None), fillvalue=7, resize=((100, 90), (N_ROWS, N_COLS))
    ),
    "masked-gzip": Config(chunks=(16, 16), masked=((0, 0, 1), (3, 5, 1), (9, 8, 1))),
    "masked-shuffle-gzip": Config(
        "int32", chunks=(16, 16), shuffle=True, masked=((0, 0, 1), (0, 1, 2), (0, 2, 3), (9, 8, 2))
    ),
}
SCATTERED = [
    "reverse-order",
    "random-order-shuffle",
    "random-order-uncompressed-fill7",
    "latest-btree2-random",
]


def make_values(rng: np.random.Generator, shape: tuple[int, int], dtype: str) -> np.ndarray:
    """Count-like values (half zeros) over the dtype's whole range; floats include NaN and infinities."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        values = (rng.standard_normal(shape) * 1000).astype(dt)
        values.flat[[1, 2, 3]] = [np.nan, np.inf, -np.inf]
    else:
        info = np.iinfo(dt)
        values = rng.integers(info.min, info.max, shape, dtype=dt.newbyteorder("="), endpoint=True).astype(dt)
    values[rng.random(shape) < 0.5] = 0
    return values


def dataset_filters(dset: h5py.Dataset) -> list[int]:
    plist = dset.id.get_create_plist()
    return [int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]


def write_blocks(cfg: Config, shape: tuple[int, int], rng: np.random.Generator) -> list[tuple[slice, slice]]:
    """The blocks to write, in order: the region at once, or its part of each chunk in ``cfg.order``."""
    region = cfg.region or (slice(None), slice(None))
    (r_lo, r_hi, _), (c_lo, c_hi, _) = region[0].indices(shape[0]), region[1].indices(shape[1])
    if cfg.order == "once":
        return [(slice(r_lo, r_hi), slice(c_lo, c_hi))]
    c0, c1 = cfg.chunks
    cells = [(i, j) for i in range(-(-shape[0] // c0)) for j in range(-(-shape[1] // c1))]
    if cfg.order == "reverse":
        cells.sort(key=lambda ij: (-ij[1], ij[0]))
    elif cfg.order == "random":
        cells = [cells[k] for k in rng.permutation(len(cells))]
    blocks = []
    for i, j in cells:
        rs = slice(max(i * c0, r_lo), min((i + 1) * c0, r_hi))
        cs = slice(max(j * c1, c_lo), min((j + 1) * c1, c_hi))
        if rs.start < rs.stop and cs.start < cs.stop:
            blocks.append((rs, cs))
    return blocks


def write_chunk_by_hand(dset: h5py.Dataset, row: int, col: int, mask: int, values: np.ndarray) -> None:
    """Store chunk (row, col) of ``values`` through the filters mask leaves on, as HDF5 would."""
    c0, c1 = dset.chunks
    block = np.full((c0, c1), dset.fillvalue, dtype=dset.dtype)
    part = values[row * c0 : (row + 1) * c0, col * c1 : (col + 1) * c1]
    block[: part.shape[0], : part.shape[1]] = part
    stored = block.tobytes()
    for i, f in enumerate(dataset_filters(dset)):
        if not mask & (1 << i):
            stored = (
                ref_shuffle(stored, dset.dtype.itemsize) if f == FILTER_SHUFFLE else zlib.compress(stored)
            )
    dset.id.write_direct_chunk((row * c0, col * c1), stored, filter_mask=mask)


def build(path: Path, cfg: Config, seed: int) -> np.ndarray:
    """Write ``cfg``'s dataset "m" to ``path``; return its content as h5py reads it."""
    shape = (N_ROWS, N_COLS)
    rng = np.random.default_rng(seed)
    expected = np.full(shape, cfg.fillvalue or 0, dtype=cfg.dtype)
    region = cfg.region or (slice(None), slice(None))
    expected[region] = make_values(rng, shape, cfg.dtype)[region]
    # No chunk cache: each chunk reaches the file when written, so write order is file order.
    options: dict[str, Any] = {"rdcc_nbytes": 0}
    if cfg.userblock:
        options["userblock_size"] = cfg.userblock
    if cfg.libver:
        options["libver"] = cfg.libver
    with h5py.File(path, "w", **options) as f:
        dset = f.create_dataset(
            "m",
            shape=shape,
            dtype=cfg.dtype,
            chunks=cfg.chunks,
            compression=cfg.compression,
            compression_opts=cfg.level if cfg.compression else None,
            shuffle=cfg.shuffle,
            fillvalue=cfg.fillvalue,
            maxshape=cfg.maxshape,
        )
        for block in write_blocks(cfg, shape, rng):
            if expected[block].size:
                dset[block] = expected[block]
        for row, col, mask in cfg.masked:
            write_chunk_by_hand(dset, row, col, mask, expected)
        for new_shape in cfg.resize:
            dset.resize(new_shape)
    with h5py.File(path, "r") as f:
        stored = f["m"][()]
        if cfg.masked:
            infos = [f["m"].id.get_chunk_info(i) for i in range(f["m"].id.get_num_chunks())]
            assert {i.filter_mask for i in infos} == {0} | {m for _, _, m in cfg.masked}
    if not cfg.resize:  # h5py and numpy agree on what the file holds
        assert_same(stored, expected)
    return stored


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, np.ndarray]]:
    """``files(name)``: the path of CONFIGS[name]'s file (built once per module) and its content."""
    root = tmp_path_factory.mktemp("engine")
    cache: dict[str, tuple[Path, np.ndarray]] = {}

    def get(name: str) -> tuple[Path, np.ndarray]:
        if name not in cache:
            path = root / f"{name}.h5"
            cache[name] = (path, build(path, CONFIGS[name], seed=zlib.crc32(name.encode())))
        return cache[name]

    return get


# --- 1, 2. differential reads: engine vs numpy/h5py ----------------------------------------------------


@pytest.mark.parametrize(
    "mode", ["t1", "t1-seg3-task4", "t2-seg2-task1", "t2-seg1-package", "t2-loop"], indirect=True
)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_read_matches_h5py(files: Callable[[str], tuple[Path, np.ndarray]], config: str, mode: Mode) -> None:
    path, full = files(config)
    rng = np.random.default_rng(0)
    rkeys, ckeys = axis_keys(N_ROWS, rng), axis_keys(N_COLS, rng)
    with h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        assert isinstance(layout, ChunkLayout)
        assert layout.chunks == CONFIGS[config].chunks
        # Every row key in each mode; more column keys with one thread (the pool costs per task).
        per_row = 5 if mode == MODES["t1"] else 2 if mode.threads == 1 else 1
        for rkey, ckey in key_pairs(rkeys, ckeys, per_row=per_row):
            got = _engine.read(layout, selection(rkey, N_ROWS, 0), selection(ckey, N_COLS, 1))
            assert_same(got, expected_of(full, rkey, ckey), (config, rkey, ckey))


@pytest.mark.parametrize("config", ["f4-7x13-gzip1", "masked-shuffle-gzip", "i4-fill7-partial"])
def test_read_sorted_and_decode_row(
    files: Callable[[str], tuple[Path, np.ndarray]], config: str, mode: Mode
) -> None:
    path, full = files(config)
    rng = np.random.default_rng(1)
    with h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        assert layout is not None
        c0, c1 = layout.chunks
        for _ in range(10):
            ru = np.unique(rng.integers(0, N_ROWS, rng.integers(1, 40))).astype(np.intp)
            cu = np.unique(rng.integers(0, N_COLS, rng.integers(1, 40))).astype(np.intp)
            assert_same(_engine.read_sorted(layout, ru, cu), full[np.ix_(ru, cu)])
        # decode_row: whole chunks (edge chunks hold the fill value or anything beyond the extent)
        grid_cols = np.array([layout.grid[1] - 1, 0, 2], dtype=np.intp)
        for grid_row in (0, layout.grid[0] - 1):
            chunks = layout.decode_row(grid_row, grid_cols)
            assert chunks.shape == (3, c0, c1)
            for j, g in enumerate(grid_cols.tolist()):
                want = full[grid_row * c0 : (grid_row + 1) * c0, g * c1 : (g + 1) * c1]
                assert_same(chunks[j, : want.shape[0], : want.shape[1]], want)


@pytest.mark.parametrize("transposed", [False, True])
def test_reused_band_buffer(files: Callable[[str], tuple[Path, np.ndarray]], transposed: bool) -> None:
    """reuse=True: consecutive reads on one thread land in the same memory, each one right."""
    path, full = files("f4-64x64-gzip4")
    rng = np.random.default_rng(3)
    with h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        assert layout is not None
        previous = None
        for _ in range(6):
            rkey = np.sort(rng.choice(N_ROWS, 50, replace=False))
            ckey = slice(int(rng.integers(0, 40)), N_COLS - 3)
            got = _engine.read(
                layout, selection(rkey, N_ROWS, 0), selection(ckey, N_COLS, 1), transposed, reuse=True
            )
            want = full[np.ix_(rkey, np.arange(N_COLS)[ckey])]
            assert_same(got, want.T if transposed else want)
            if previous is not None:
                assert np.shares_memory(got, previous)
            previous = got
        # unsorted selections come back in a new array, still right
        rkey = rng.permutation(N_ROWS)[:30]
        got = _engine.read(
            layout, selection(rkey, N_ROWS, 0), AxisSelection.full(N_COLS), transposed, reuse=True
        )
        assert_same(got, full[rkey].T if transposed else full[rkey])


def test_pool_is_used_only_with_several_threads(files: Callable[[str], tuple[Path, np.ndarray]]) -> None:
    path, full = files("f4-7x13-gzip1")
    with h5py.File(path, "r") as f:
        for name, pooled in (("t1-seg3-task4", False), ("t2-seg2-task1", True)):
            with engine_settings(MODES[name]):
                layout = layout_of(f["m"])
                assert layout is not None
                assert_same(
                    _engine.read(layout, AxisSelection.full(N_ROWS), AxisSelection.full(N_COLS)), full
                )
                assert (pools._pool is not None) == pooled
                if pooled:
                    assert pools._pool._max_workers == 2


def test_scattered_configs_store_chunks_out_of_order(files: Callable[[str], tuple[Path, np.ndarray]]) -> None:
    """A check of the fixtures themselves: these files really have chunks out of row-major order."""
    for name in SCATTERED:
        path, _ = files(name)
        with h5py.File(path, "r") as f:
            layout = layout_of(f["m"])
            assert layout is not None
            offsets = layout.offsets[layout.sizes > 0]  # row-major grid order
            assert np.any(np.diff(offsets) < 0), name


# A dataset unlimited along its columns only (maxshape=(n, None): the shape of every Loom layer) in a
# file written with libver="latest" has an extensible-array chunk index. For those, HDF5 2.0's chunk
# queries (H5Dchunk_iter, H5Dget_chunk_info, H5Dget_chunk_info_by_coord) report the chunk holding
# (r, c) at chunk (0, c * grid_rows + r), while h5py's own reads are right. The engine must notice
# (positions outside the grid, or bytes that differ from HDF5's own read of a chunk) and let h5py
# read such datasets.
@pytest.mark.parametrize("via", ["engine", "public-api"])
def test_extensible_array_index_along_columns(tmp_path: Path, rng: np.random.Generator, via: str) -> None:
    path = str(tmp_path / "ea.loom")
    matrix = rng.integers(0, 50, (N_ROWS, N_COLS)).astype(np.float32)
    row_attrs = {"Gene": np.array([f"g{i}" for i in range(N_ROWS)], dtype=object)}
    col_attrs = {"CellID": np.array([f"c{j}" for j in range(N_COLS)], dtype=object)}
    loomfile.create(path, matrix, row_attrs, col_attrs)
    with h5py.File(path, "r+", libver="latest") as f:
        del f["matrix"]
        f.create_dataset(
            "matrix", data=matrix, chunks=(64, 64), compression="gzip", maxshape=(N_ROWS, None), fillvalue=0
        )
    with h5py.File(path, "r") as f:
        assert_same(f["matrix"][()], matrix)  # h5py reads it right
        assert layout_of(f["matrix"]) is None
    if via == "public-api":
        with loomfile.connect(path, "r") as ds:
            assert_same(ds[:, :], matrix)


def test_concurrent_callers_share_a_layout(files: Callable[[str], tuple[Path, np.ndarray]]) -> None:
    """Several threads reading through one layout (each with its own scratch buffers) at once."""
    from concurrent.futures import ThreadPoolExecutor

    path, full = files("masked-shuffle-gzip")
    rng = np.random.default_rng(5)
    keys = [
        (rng.random(N_ROWS) < 0.5, slice(int(rng.integers(0, 50)), None, int(rng.integers(1, 4))))
        for _ in range(40)
    ]
    with engine_settings(MODES["t2-seg2-task1"]), h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        assert layout is not None

        def one(key: tuple[Any, Any]) -> np.ndarray:
            return _engine.read(layout, selection(key[0], N_ROWS, 0), selection(key[1], N_COLS, 1))

        with ThreadPoolExecutor(4) as callers:
            results = list(callers.map(one, keys))
    for key, got in zip(keys, results, strict=True):
        assert_same(got, expected_of(full, *key))


@pytest.mark.skipif(bool(os.environ.get("LOOMFILE_NO_BATCH")), reason="the helper is switched off")
def test_batch_helper_is_built_and_used() -> None:
    """pip install builds the C helper here (CI has a compiler), and the decoder uses it."""
    assert _codec.LIBDEFLATE is not None
    assert _codec.LIBDEFLATE.many is not None
    packed = [zlib.compress(bytes([i]) * 64 + bytes(range(64))) for i in range(5)]
    src = np.frombuffer(b"".join(packed), dtype=np.uint8)
    sizes = np.array([len(p) for p in packed])
    positions = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    dst = np.zeros(5 * 128, dtype=np.uint8)
    slots = np.array([4, 0, 3, 1, 2])
    assert _codec.LIBDEFLATE.decompress_many(src, positions, sizes, dst, slots, 128) == -1
    for i, slot in enumerate(slots):
        assert dst[slot * 128 : (slot + 1) * 128].tobytes() == zlib.decompress(packed[i])
    bad = src.copy()
    bad[positions[3] + 2 : positions[3] + 12] ^= 0xFF
    assert _codec.LIBDEFLATE.decompress_many(bad, positions, sizes, dst, slots, 128) == 3
    assert _codec.LIBDEFLATE.decompress_many(src, positions, sizes, dst, slots, 127) == 0  # wrong length


def test_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    default = max(1, min(8, os.cpu_count() or 1))
    for value, want in [
        ("3", 3),
        ("1", 1),
        ("0", default),
        ("-2", default),
        ("many", default),
        ("", default),
    ]:
        monkeypatch.setenv("LOOMFILE_THREADS", value)
        assert pools.threads() == want, value
    monkeypatch.delenv("LOOMFILE_THREADS")
    assert pools.threads() == default


def test_chunks_touched_counts_distinct_chunks() -> None:
    rng = np.random.default_rng(9)
    for chunks in [(64, 64), (7, 13), (1, N_COLS), (N_ROWS, 1)]:
        for _ in range(20):
            rows = AxisSelection.from_key(rng.integers(0, N_ROWS, rng.integers(0, 30)), N_ROWS, 0)
            cols = AxisSelection.from_key(rng.random(N_COLS) < rng.random(), N_COLS, 1)
            want = len(
                {
                    (r // chunks[0], c // chunks[1])
                    for r in rows.indices.tolist()
                    for c in cols.indices.tolist()
                }
            )
            assert _engine.chunks_touched(chunks, rows, cols) == want


HYPOTHESIS_CONFIGS = [
    "f4-7x13-gzip1",
    "i1-Nx1-gzip4",
    "f8-1xN-gzip9",
    "u2-100x3-gzip4",
    "i4-fill7-partial",
    "masked-shuffle-gzip",
    "bef8-fill7-partial-uncompressed",
    "latest-btree2-random",
]


modes = st.builds(
    Mode,
    threads=st.sampled_from([1, 2]),
    segment_chunks=st.sampled_from([1, 2, 3, 512]),
    task_chunks=st.sampled_from([1, 3, 256]),
    codec=st.sampled_from(["libdeflate", "package", "zlib"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_read_property(files: Callable[[str], tuple[Path, np.ndarray]], data: st.DataObject) -> None:
    config = data.draw(st.sampled_from(HYPOTHESIS_CONFIGS), label="config")
    engine_mode = data.draw(modes, label="mode")
    rkey = data.draw(testing.axis_keys(N_ROWS), label="rows")
    ckey = data.draw(testing.axis_keys(N_COLS), label="cols")
    path, full = files(config)
    with engine_settings(engine_mode), h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        assert layout is not None
        got = _engine.read(
            layout, AxisSelection.from_key(rkey, N_ROWS, 0), AxisSelection.from_key(ckey, N_COLS, 1)
        )
    assert_same(got, expected_of(full, rkey, ckey))


# --- 3. datasets the engine does not read: h5py reads them ---------------------------------------------

FALLBACK_LAYERS: dict[str, dict[str, Any]] = {
    "contiguous": {},
    "lzf": {"chunks": (16, 16), "compression": "lzf"},
    "fletcher32": {"chunks": (16, 16), "compression": "gzip", "fletcher32": True},
    "scaleoffset": {"chunks": (16, 16), "scaleoffset": 0},
    "gzip-fletcher32-shuffle": {
        "chunks": (16, 16),
        "compression": "gzip",
        "shuffle": True,
        "fletcher32": True,
    },
}


DRIVERS: dict[str, dict[str, Any]] = {"core-driver": {"driver": "core"}, "stdio-driver": {"driver": "stdio"}}


@pytest.mark.parametrize(
    "kind", [*FALLBACK_LAYERS, *DRIVERS, "file-object", "three-dimensional", "bool", "complex64"]
)
def test_layout_of_is_none_for_what_the_engine_cannot_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "f.h5"
    values = np.arange(60 * 50, dtype=np.int32).reshape(60, 50)
    options: dict[str, Any] = {"chunks": (16, 16), "compression": "gzip"}
    if kind in FALLBACK_LAYERS:
        options = FALLBACK_LAYERS[kind]
    elif kind == "three-dimensional":
        values, options = values.reshape(60, 10, 5), {"chunks": (16, 4, 5), "compression": "gzip"}
    elif kind in ("bool", "complex64"):
        values = (values % 3 == 0) if kind == "bool" else values.astype(np.complex64)
    with h5py.File(path, "w") as f:
        f.create_dataset("m", data=values, **options)
    with contextlib.ExitStack() as stack:
        target: Any = stack.enter_context(open(path, "rb")) if kind == "file-object" else path
        f = stack.enter_context(h5py.File(target, "r", **DRIVERS.get(kind, {})))
        assert layout_of(f["m"]) is None
        np.testing.assert_array_equal(f["m"][()], values)
    with h5py.File(path, "r") as f:  # the control: the same file, default driver
        assert (layout_of(f["m"]) is not None) == (kind in DRIVERS or kind == "file-object")


@pytest.fixture
def odd_loom(tmp_path: Path, rng: np.random.Generator) -> tuple[str, dict[str, np.ndarray]]:
    """A Loom file with one layer per FALLBACK_LAYERS kind, added with h5py, and a contiguous /matrix."""
    path = str(tmp_path / "odd.loom")
    matrix = rng.integers(0, 50, (N_ROWS, N_COLS)).astype(np.float32)
    row_attrs = {"Gene": np.array([f"g{i}" for i in range(N_ROWS)], dtype=object)}
    col_attrs = {"CellID": np.array([f"c{j}" for j in range(N_COLS)], dtype=object)}
    loomfile.create(path, matrix, row_attrs, col_attrs)
    content = {"": matrix}
    with h5py.File(path, "r+") as f:
        del f["matrix"]
        f.create_dataset("matrix", data=matrix)  # contiguous
        for name, options in FALLBACK_LAYERS.items():
            content[name] = rng.integers(-1000, 1000, (N_ROWS, N_COLS)).astype(np.int32)
            f.create_dataset(f"layers/{name}", data=content[name], **options)
    return path, content


PUBLIC_KEYS = [
    (slice(None), slice(None)),
    (slice(3, 70), slice(5, 9)),
    (5, slice(None)),
    (slice(None, None, -3), -1),
    ([100, 3, 3, 40], np.arange(N_COLS) % 4 == 0),
    (np.arange(N_ROWS) > 120, [139, 0, 64, 65, 64]),
    ([], slice(None)),
]


def test_public_api_reads_fallback_layers(odd_loom: tuple[str, dict[str, np.ndarray]]) -> None:
    path, content = odd_loom
    with loomfile.connect(path, "r") as ds:
        for name, full in content.items():
            for rkey, ckey in PUBLIC_KEYS:
                want = public_expected(full, rkey, ckey)
                assert_same(ds.layers[name][rkey, ckey], want, (name, rkey, ckey))
                if name == "":
                    assert_same(ds[rkey, ckey], want, (rkey, ckey))
            assert not isinstance(cached_layout(ds, name), ChunkLayout), name  # read through h5py
        assert_same(ds.layers[:, 7:9]["lzf"][:, :], content["lzf"][:, 7:9])


# --- 4. the public API uses the engine, and never reads a stale layout -----------------------------------


@pytest.fixture
def loom(tmp_path: Path, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    path = str(tmp_path / "plain.loom")
    matrix = rng.integers(0, 50, (N_ROWS, N_COLS)).astype(np.float32)
    row_attrs = {"Gene": np.array([f"g{i}" for i in range(N_ROWS)], dtype=object)}
    col_attrs = {"CellID": np.array([f"c{j}" for j in range(N_COLS)], dtype=object)}
    loomfile.create(path, matrix, row_attrs, col_attrs)
    return path, matrix


def test_public_reads_build_a_layout(loom: tuple[str, np.ndarray], mode: Mode) -> None:
    path, matrix = loom
    with loomfile.connect(path, "r") as ds:
        assert_same(ds[:, :], matrix)
        layout = cached_layout(ds, "")
        assert isinstance(layout, ChunkLayout)
        for rkey, ckey in PUBLIC_KEYS:
            assert_same(ds[rkey, ckey], public_expected(matrix, rkey, ckey), (rkey, ckey))
        assert cached_layout(ds, "") is layout  # built once


def test_tiny_read_of_a_fine_grained_layer_does_not_index_it(loom: tuple[str, np.ndarray]) -> None:
    path, matrix = loom
    fine = matrix * 3
    with h5py.File(path, "r+") as f:
        f.create_dataset("layers/fine", data=fine, chunks=(4, 4), compression="gzip")  # 38 x 35 chunks
    with loomfile.connect(path, "r") as ds:
        assert_same(ds.layers["fine"][0:2, 1:3], fine[0:2, 1:3])
        assert_same(ds.layers["fine"][7, [1, 2]], fine[7, [1, 2]])
        assert cached_layout(ds, "fine") is NOT_CACHED
        assert_same(ds.layers["fine"][:, ::-1], fine[:, ::-1])
        assert isinstance(cached_layout(ds, "fine"), ChunkLayout)


def test_r_plus_writes_drop_layouts(
    loom: tuple[str, np.ndarray], rng: np.random.Generator, mode: Mode
) -> None:
    path, matrix = loom
    want = matrix.copy()
    with loomfile.connect(path, "r+") as ds:
        assert_same(ds[:, :], want)
        before = cached_layout(ds, "")
        assert isinstance(before, ChunkLayout)

        values = rng.integers(100, 200, (67, 4)).astype(np.float32)
        ds[3:70, 5:9] = values
        want[3:70, 5:9] = values
        assert_same(ds[:, :], want)
        after = cached_layout(ds, "")
        assert isinstance(after, ChunkLayout)  # read through the engine again,
        assert after is not before  # with a layout built after the write

        rows, cols = [149, 0, 77], np.arange(N_COLS) % 9 == 2
        values = rng.integers(300, 400, (3, int(cols.sum()))).astype(np.float32)
        ds[rows, cols] = values
        want[np.ix_(rows, np.flatnonzero(cols))] = values
        assert_same(ds[:, :], want)
        assert_same(ds[::-1, [1, 1, 139]], want[::-1][:, [1, 1, 139]])

        first = rng.integers(0, 9, (N_ROWS, N_COLS)).astype(np.int32)
        ds.layers["x"] = first
        assert_same(ds.layers["x"][:, :], first)
        assert isinstance(cached_layout(ds, "x"), ChunkLayout)
        second = first * 2 + 1
        ds.layers["x"] = second  # replaces the dataset: chunks move
        assert_same(ds.layers["x"][:, :], second)
        assert_same(ds[:, :], want)

        extra = rng.integers(0, 9, (N_ROWS, 70)).astype(np.float32)
        ds.add_columns(
            {"": extra, "x": (extra * 2).astype(np.int32)},
            {"CellID": np.array([f"new{j}" for j in range(70)], dtype=object)},
        )
        want = np.hstack([want, extra])
        assert ds.shape == want.shape
        assert_same(ds[:, :], want)
        assert_same(ds.layers["x"][:, :], np.hstack([second, (extra * 2).astype(np.int32)]))
        assert_same(ds[10:20, N_COLS - 3 : N_COLS + 3], want[10:20, N_COLS - 3 : N_COLS + 3])

        order = rng.permutation(want.shape[1])
        ds.permute(order, axis=1)  # band by band: reads and writes interleaved
        want = want[:, order]
        assert_same(ds[:, :], want)

        ds.layers["blank"] = "float32"  # no chunk written yet: all fill value
        assert_same(ds.layers["blank"][:, :], np.zeros(want.shape, dtype=np.float32))
        assert isinstance(cached_layout(ds, "blank"), ChunkLayout)
        ds.layers["blank"][60:130, 100:200] = np.ones((70, 100), dtype=np.float32)  # chunks appear
        blank = np.zeros(want.shape, dtype=np.float32)
        blank[60:130, 100:200] = 1
        assert_same(ds.layers["blank"][:, :], blank)
    with h5py.File(path, "r") as f:  # what is on disk, read by h5py
        assert_same(f["matrix"][()], want)


# --- 5. corrupt and truncated files: a clear error, never a crash or wrong data ----------------------------


def chunk_at(dset: h5py.Dataset, grid_row: int, grid_col: int) -> Any:
    c0, c1 = dset.chunks
    return dset.id.get_chunk_info_by_coord((grid_row * c0, grid_col * c1))


def corrupt_copy(src: Path, dst: Path, grid_row: int, grid_col: int) -> None:
    """Copy ``src`` to ``dst`` and flip 16 bytes in the middle of chunk (grid_row, grid_col)."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r") as f:
        info = chunk_at(f["m"], grid_row, grid_col)
    assert info.size > 40
    with open(dst, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        middle = fh.read(16)
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes(b ^ 0xFF for b in middle))


@pytest.mark.parametrize(
    "config", ["f4-7x13-gzip1", "i4-64x64-shuffle", "userblock512", "random-order-shuffle"]
)
def test_corrupt_chunk_raises(
    files: Callable[[str], tuple[Path, np.ndarray]], tmp_path: Path, config: str, mode: Mode
) -> None:
    src, full = files(config)
    path = tmp_path / "corrupt.h5"
    grid_row, grid_col = 1, 2
    corrupt_copy(src, path, grid_row, grid_col)
    c0, c1 = CONFIGS[config].chunks
    touching = [
        (slice(None), slice(None)),
        (slice(grid_row * c0, grid_row * c0 + 1), slice(grid_col * c1, grid_col * c1 + 1)),
        ([grid_row * c0 + 2, 0], np.arange(N_COLS) >= grid_col * c1),
    ]
    with h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        assert layout is not None
        for rkey, ckey in touching:
            with pytest.raises(LoomFormatError, match=rf"Chunk \({grid_row}, {grid_col}\) of /m is corrupt"):
                _engine.read(layout, selection(rkey, N_ROWS, 0), selection(ckey, N_COLS, 1))
        # Chunks around it still read right, with the same layout.
        rkey, ckey = slice(grid_row * c0 + c0, None), slice(None)
        got = _engine.read(layout, selection(rkey, N_ROWS, 0), selection(ckey, N_COLS, 1))
        assert_same(got, expected_of(full, rkey, ckey))
    with (
        loomfile_file(path) as lpath,
        loomfile.connect(lpath, "r") as ds,
        pytest.raises(LoomFormatError, match=r"Chunk \("),
    ):
        ds[:, :]


@contextlib.contextmanager
def loomfile_file(path: Path) -> Iterator[str]:
    """``path``'s dataset "m" as the main matrix of a Loom file (a copy of the chunk bytes, as stored)."""
    loom_path = str(path.with_suffix(".loom"))
    with h5py.File(path, "r") as f:
        shape = f["m"].shape
    loomfile.create(
        loom_path,
        np.zeros(shape, dtype=np.float32),
        {"Gene": np.array([f"g{i}" for i in range(shape[0])], dtype=object)},
        {"CellID": np.array([f"c{j}" for j in range(shape[1])], dtype=object)},
    )
    with h5py.File(loom_path, "r+") as out, h5py.File(path, "r") as f:
        del out["matrix"]
        out.copy(f["m"], "matrix")  # H5Ocopy copies raw chunk bytes, corrupt ones included
    yield loom_path


@pytest.mark.parametrize("codec", ["libdeflate", "loop", "package", "zlib"])
def test_truncated_file_raises_cleanly(
    files: Callable[[str], tuple[Path, np.ndarray]], tmp_path: Path, codec: str
) -> None:
    src, _ = files("f4-7x13-gzip1")
    with engine_settings(Mode(2, segment_chunks=3, task_chunks=1, codec=codec)):
        # Truncated before opening: HDF5 refuses the file (a clean error) or the engine reports it.
        path = tmp_path / "cut.h5"
        shutil.copyfile(src, path)
        with h5py.File(path, "r") as f:
            infos = [f["m"].id.get_chunk_info(i) for i in range(f["m"].id.get_num_chunks())]
        last = max(infos, key=lambda i: i.byte_offset)
        os.truncate(path, last.byte_offset + last.size // 2)
        try:
            f = h5py.File(path, "r")
        except OSError:
            pass  # HDF5 checks the file's end against its superblock
        else:
            with f, pytest.raises(LoomFormatError):
                layout = layout_of(f["m"])
                assert layout is not None
                _engine.read(layout, AxisSelection.full(N_ROWS), AxisSelection.full(N_COLS))
        lpath = str(tmp_path / "cut.loom")
        shutil.copyfile(path, lpath)
        with pytest.raises(LoomFormatError):
            loomfile.connect(lpath, "r")

        # Truncated under an open file, after indexing: chunks now lie past the end of the file.
        path = tmp_path / "cut-later.h5"
        shutil.copyfile(src, path)
        with h5py.File(path, "r") as f:
            layout = layout_of(f["m"])
            assert layout is not None
            os.truncate(path, last.byte_offset + last.size // 2)
            with pytest.raises(LoomFormatError, match="truncated"):
                _engine.read(layout, AxisSelection.full(N_ROWS), AxisSelection.full(N_COLS))
            os.truncate(path, 2000)
            with pytest.raises(LoomFormatError, match="truncated"):
                _engine.read(layout, AxisSelection.full(N_ROWS), AxisSelection.full(N_COLS))


def wrong_length_chunks(raw: bytes) -> dict[str, tuple[bytes, int]]:
    """Chunk payloads that decode to the wrong number of bytes: (stored bytes, filter mask)."""
    return {
        "deflate-short": (zlib.compress(raw[:-8]), 0),
        "deflate-long": (zlib.compress(raw + b"\0" * 8), 0),
        "deflate-empty": (zlib.compress(b""), 0),
        "unfiltered-short": (raw[:-4], 1),
        "unfiltered-long": (raw + b"\0" * 4, 1),
        "not-zlib": (b"\x00" * len(raw), 0),
    }


@pytest.mark.parametrize("case", list(wrong_length_chunks(b"")))
def test_chunk_decoding_to_the_wrong_length_raises(
    files: Callable[[str], tuple[Path, np.ndarray]], tmp_path: Path, case: str, mode: Mode
) -> None:
    src, full = files("f4-7x13-gzip1")
    path = tmp_path / "bad.h5"
    shutil.copyfile(src, path)
    c0, c1 = CONFIGS["f4-7x13-gzip1"].chunks
    raw = np.ascontiguousarray(full[2 * c0 : 3 * c0, 4 * c1 : 5 * c1]).tobytes()
    stored, mask = wrong_length_chunks(raw)[case]
    with h5py.File(path, "r+") as f:
        f["m"].id.write_direct_chunk((2 * c0, 4 * c1), stored, filter_mask=mask)
    with h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        assert layout is not None
        with pytest.raises(LoomFormatError, match=r"Chunk \(2, 4\) of /m is corrupt"):
            _engine.read(layout, AxisSelection.full(N_ROWS), AxisSelection.full(N_COLS))
        with pytest.raises(LoomFormatError, match=r"Chunk \(2, 4\)"):
            layout.decode_row(2, np.array([3, 4, 5], dtype=np.intp))
        rkey = slice(3 * c0, None)  # other bands are fine
        got = _engine.read(layout, selection(rkey, N_ROWS, 0), AxisSelection.full(N_COLS))
        assert_same(got, expected_of(full, rkey, "full"))


# --- 6. the codec on its own ----------------------------------------------------------------------------------


@pytest.mark.parametrize("itemsize", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("nbytes", [0, 1, 7, 64, 1001])
def test_unshuffle_matches_reference(itemsize: int, nbytes: int) -> None:
    rng = np.random.default_rng(itemsize * 10_000 + nbytes)
    data = rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    got = unshuffle(np.frombuffer(data, dtype=np.uint8), itemsize)
    assert got.dtype == np.uint8
    assert got.tobytes() == ref_unshuffle(data, itemsize)
    assert ref_unshuffle(ref_shuffle(data, itemsize), itemsize) == data  # the references are inverses
    # A batch of chunks (k, nbytes) unshuffles row by row.
    batch = rng.integers(0, 256, (3, nbytes), dtype=np.uint8)
    got = unshuffle(batch, itemsize)
    assert got.shape == batch.shape
    for row, out in zip(batch, got, strict=True):
        assert out.tobytes() == ref_unshuffle(row.tobytes(), itemsize)


PIPELINES = {
    "deflate": (FILTER_DEFLATE,),
    "shuffle-deflate": (FILTER_SHUFFLE, FILTER_DEFLATE),
    "shuffle": (FILTER_SHUFFLE,),
    "none": (),
}


def encode(raw: bytes, filters: tuple[int, ...], mask: int, itemsize: int) -> bytes:
    """What HDF5 stores for ``raw``: each filter in order, unless its bit in ``mask`` is set."""
    for i, f in enumerate(filters):
        if not mask & (1 << i):
            raw = ref_shuffle(raw, itemsize) if f == FILTER_SHUFFLE else zlib.compress(raw, 6)
    return raw


@pytest.mark.parametrize("codec", ["libdeflate", "package", "zlib"])
@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_pipeline_decode_with_filter_masks(pipeline: str, codec: str) -> None:
    filters = PIPELINES[pipeline]
    values = np.random.default_rng(3).integers(0, 1000, (7, 13)).astype(">i4")
    raw = values.tobytes()
    with engine_settings(Mode(1, codec=codec)):
        p = Pipeline(filters, 4, len(raw))
        assert p.direct == (codec == "libdeflate" and FILTER_DEFLATE in filters)
        for mask in range(1 << len(filters)):
            stored = encode(raw, filters, mask, 4)
            for buffer in (stored, bytearray(stored), memoryview(stored)):
                out = p.decode(buffer, mask, "Chunk (0, 0) of /m")
                assert out.dtype == np.uint8
                assert out.tobytes() == raw, (mask, type(buffer))
            np.testing.assert_array_equal(out.view(">i4").reshape(7, 13), values)


@pytest.mark.parametrize("codec", ["libdeflate", "package", "zlib"])
def test_pipeline_decode_rejects_bad_bytes(codec: str) -> None:
    raw = np.arange(7 * 13, dtype=np.float32).tobytes()
    where = "Chunk (4, 2) of /layers/x"
    with engine_settings(Mode(1, codec=codec)):
        p = Pipeline((FILTER_SHUFFLE, FILTER_DEFLATE), 4, len(raw))
        good = zlib.compress(ref_shuffle(raw, 4))
        flipped = good[:10] + bytes(b ^ 0xFF for b in good[10:20]) + good[20:]
        for stored, mask in [
            (good[: len(good) // 2], 0),  # cut short
            (flipped, 0),
            (b"", 0),
            (b"not a zlib stream at all", 0),
            (zlib.compress(raw[:-4]), 0),
            (zlib.compress(raw + raw), 0),
            (ref_shuffle(raw, 4)[:-1], 2),  # deflate skipped, one byte short
            (raw + b"\0", 3),  # every filter skipped, one byte long
        ]:
            with pytest.raises(LoomFormatError, match=r"Chunk \(4, 2\) of /layers/x is corrupt"):
                p.decode(stored, mask, where)


def test_pipeline_refuses_other_filters() -> None:
    with pytest.raises(ValueError, match="32000"):
        Pipeline((FILTER_DEFLATE, 32000), 4, 64)


# --- 7. files written by loompy ----------------------------------------------------------------------------


def test_engine_reads_loompy_files(tmp_path: Path, rng: np.random.Generator) -> None:
    import loompy

    path = str(tmp_path / "loompy.loom")
    n_rows, n_cols = 170, 150
    matrix = rng.negative_binomial(1, 0.5, (n_rows, n_cols)).astype(np.float32)
    spliced = rng.integers(0, 30, (n_rows, n_cols)).astype(np.float64)
    row_attrs = {"Gene": np.array([f"g{i}" for i in range(n_rows)])}
    col_attrs = {"CellID": np.array([f"c{j}" for j in range(n_cols)])}
    keys = [
        (slice(None), slice(None)),
        (slice(10, 100), slice(60, 140)),
        (np.arange(n_rows) % 3 == 0, slice(60, 140)),  # loompy (h5py) takes one fancy axis at a time
        (slice(5, 150, 2), np.arange(n_cols) > 100),
        ([2, 64, 65, 169], slice(None)),
        (slice(None), [0, 63, 64, 149]),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loompy.create(path, {"": matrix, "spliced": spliced}, row_attrs, col_attrs)
        with loompy.connect(path, "r") as ref:
            refs = {
                (name, k): ref.layers[name][key] for name in ("", "spliced") for k, key in enumerate(keys)
            }
    with h5py.File(path, "r") as f:
        assert f["matrix"].chunks is not None
        for name, dset in (("", f["matrix"]), ("spliced", f["layers/spliced"])):
            layout = layout_of(dset)
            assert isinstance(layout, ChunkLayout)
            for k, (rkey, ckey) in enumerate(keys):
                got = _engine.read(layout, selection(rkey, n_rows, 0), selection(ckey, n_cols, 1))
                assert_same(got, refs[name, k], (name, k))
    with loomfile.connect(path, "r") as ds:
        for k, (rkey, ckey) in enumerate(keys):
            assert_same(ds[rkey, ckey], refs["", k], k)
            assert_same(ds.layers["spliced"][rkey, ckey], refs["spliced", k], k)
        assert isinstance(cached_layout(ds, ""), ChunkLayout)
        assert isinstance(cached_layout(ds, "spliced"), ChunkLayout)


def test_misreported_positions_inside_the_grid_are_caught(tmp_path: Path) -> None:
    """Only the first chunk column written: HDF5 reports chunks (r, 0) at (0, r), all inside the grid."""
    path = str(tmp_path / "ea_first_column.h5")
    m = np.zeros((300, 640), dtype=np.float32)
    m[:, :64] = np.arange(300 * 64, dtype=np.float32).reshape(300, 64)
    with h5py.File(path, "w", libver="latest") as f:
        d = f.create_dataset(
            "m", shape=m.shape, dtype="f4", chunks=(64, 64), compression="gzip", maxshape=(300, None)
        )
        d[:, :64] = m[:, :64]
    with h5py.File(path, "r") as f:
        layout = layout_of(f["m"])
        if layout is not None:  # a fixed HDF5 reports the right positions: then the engine must be right
            assert_same(_engine.read(layout, AxisSelection.full(300), AxisSelection.full(640)), m)
    with h5py.File(path, "r") as f:
        found: list[Any] = []
        f["m"].id.chunk_iter(found.append)
        if any(info.chunk_offset[0] == 0 and info.chunk_offset[1] > 0 for info in found):
            assert layout is None  # this HDF5 misreports, and the spot check caught it


def _fixture_matrices() -> list[tuple[str, str]]:
    from looms import FIXTURES

    found = []
    for path in sorted(FIXTURES.glob("*.loom")):
        try:
            with h5py.File(path, "r") as f:
                f.visititems(
                    lambda name, obj, p=path: (
                        found.append((str(p), name))
                        if isinstance(obj, h5py.Dataset) and obj.ndim == 2 and obj.chunks
                        else None
                    )
                )
        except OSError:
            continue  # the deliberately broken fixtures
    return found


@pytest.mark.parametrize(("path", "name"), _fixture_matrices(), ids=lambda v: Path(v).name if "/" in v else v)
def test_engine_reads_every_fixture_matrix_like_h5py(path: str, name: str) -> None:
    """Every 2-D chunked dataset that third-party tools wrote: the engine agrees with h5py, or declines."""
    with h5py.File(path, "r") as f:
        dset = f[name]
        layout = layout_of(dset)
        if layout is None:
            return
        got = _engine.read(layout, AxisSelection.full(dset.shape[0]), AxisSelection.full(dset.shape[1]))
        np.testing.assert_array_equal(got, dset[()])  # NaNs compare equal here


@pytest.mark.parametrize("dtype", ["f8", "i4", "u2"])
def test_one_dimensional_datasets_read_as_one_column(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "v.h5"
    values = (np.arange(10_000) * 7 % 1000).astype(dtype)
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=values, chunks=(100,), compression="gzip", shuffle=dtype == "f8")
    with h5py.File(path, "r") as f:
        layout = layout_of(f["v"])
        assert layout is not None and layout.shape == (10_000, 1)
        got = _engine.read(layout, AxisSelection.from_key([5, 9999, 0, 5], 10_000), AxisSelection.full(1))
        np.testing.assert_array_equal(got.ravel(), values[[5, 9999, 0, 5]])


def test_large_numeric_attributes_are_read_through_the_engine(tmp_path: Path, monkeypatch: Any) -> None:
    """Attributes stored in many chunks go through the engine and match what loompy reads.

    (loompy stores attributes in a handful of large chunks, which h5py reads whole, each chunk once.)
    """
    import loompy

    n = 6000
    path = str(tmp_path / "attrs.loom")
    rng = np.random.default_rng(3)
    ca = {"CellID": np.array([f"c{j}" for j in range(n)])}
    loompy.create(
        path, np.ones((10, n), dtype=np.float32), {"Gene": np.array([f"g{i}" for i in range(10)])}, ca
    )
    total, pca = rng.random(n), rng.random((n, 20)).astype(np.float32)
    with h5py.File(path, "r+") as f:
        f["col_attrs"].create_dataset("Total", data=total, chunks=(50,), compression="gzip")
        f["col_attrs"].create_dataset("PCA", data=pca, chunks=(50, 5), compression="gzip", shuffle=True)
    used = []
    real = _engine.read
    monkeypatch.setattr(_engine, "read", lambda *a: used.append(a[0].name) or real(*a))
    with loomfile.connect(path, "r") as ds, loompy.connect(path, "r") as ref:
        np.testing.assert_array_equal(ds.ca.Total, ref.ca.Total)
        np.testing.assert_array_equal(ds.ca.PCA, ref.ca.PCA)
        np.testing.assert_array_equal(ds.ca.PCA, pca)
        assert list(ds.ca.CellID) == list(ref.ca.CellID)
    assert "/col_attrs/Total" in used and "/col_attrs/PCA" in used


SELECTIONS_FOR_TRANSPOSE: list[tuple[Any, Any]] = [
    (slice(None), slice(None)),
    (slice(3, 140), slice(None, None, 3)),
    ([149, 0, 70, 70, 5], slice(60, 130)),
    (slice(None), [139, 2, 64, 65, 2]),
    (np.arange(N_ROWS) % 3 == 0, np.arange(N_COLS) % 7 != 0),
]


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("key", range(len(SELECTIONS_FOR_TRANSPOSE)))
@pytest.mark.parametrize("chunks", [(64, 64), (7, 13)])
def test_transposed_reads_match_numpy(
    tmp_path: Path, monkeypatch: Any, threads: str, key: int, chunks: tuple[int, int]
) -> None:
    monkeypatch.setenv("LOOMFILE_THREADS", threads)
    monkeypatch.setattr(pools, "_pool", None)
    values = np.random.default_rng(key).random((N_ROWS, N_COLS)).astype(np.float32)
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("m", data=values, chunks=chunks, compression="gzip")
    rows_key, cols_key = SELECTIONS_FOR_TRANSPOSE[key]
    rows = AxisSelection.from_key(rows_key, N_ROWS, 0)
    cols = AxisSelection.from_key(cols_key, N_COLS, 1)
    want = values[np.ix_(rows.indices, cols.indices)].T
    with h5py.File(path, "r") as f:
        from loomfile._engine import matrix as _matrix_io

        got = _engine.read(layout_of(f["m"]), rows, cols, transposed=True)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(_matrix_io.read(f["m"], rows, cols, None, transposed=True), want)


def _records_from_hdf5(dset: h5py.Dataset) -> dict[tuple[int, ...], tuple[int, int, int]]:
    found: list[Any] = []
    dset.id.chunk_iter(found.append)
    return {tuple(i.chunk_offset): (i.byte_offset, i.size, i.filter_mask) for i in found}


def _records_from_btree(dset: h5py.Dataset) -> dict[tuple[int, ...], tuple[int, int, int]] | None:
    from loomfile._engine.btree import chunk_records

    got = chunk_records(dset, dset.file.id.get_vfd_handle())
    if got is None:
        return None
    coords, offsets, sizes, masks = got
    return {
        tuple(c): (o, s, m)
        for c, o, s, m in zip(coords.tolist(), offsets.tolist(), sizes.tolist(), masks.tolist(), strict=True)
    }


BTREE_CASES: dict[str, dict[str, Any]] = {
    "many-chunks-two-levels": {"shape": (700, 900), "chunks": (8, 8)},  # 9,900 chunks: a deep tree
    "one-dimensional": {"shape": (50_000,), "chunks": (100,)},
    "userblock": {"shape": (300, 200), "chunks": (64, 64), "userblock_size": 1024},
    "partly-written": {"shape": (300, 200), "chunks": (16, 16), "partial": True},
    "never-written": {"shape": (300, 200), "chunks": (16, 16), "never": True},
    "resizable-like-loom": {"shape": (300, 200), "chunks": (64, 64), "maxshape": (300, None)},
}


@pytest.mark.parametrize("case", list(BTREE_CASES))
def test_btree_parser_agrees_with_hdf5(tmp_path: Path, case: str) -> None:
    spec = dict(BTREE_CASES[case])
    path = tmp_path / "b.h5"
    shape, chunks = spec.pop("shape"), spec.pop("chunks")
    partial, never = spec.pop("partial", False), spec.pop("never", False)
    file_options = {k: spec.pop(k) for k in ("userblock_size",) if k in spec}
    values = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    with h5py.File(path, "w", **file_options) as f:
        d = f.create_dataset("m", shape=shape, dtype="f4", chunks=chunks, compression="gzip", **spec)
        if partial:
            d[100:170, 30:90] = values[100:170, 30:90]
        elif not never:
            d[...] = values
    with h5py.File(path, "r") as f:
        expected = _records_from_hdf5(f["m"])
        got = _records_from_btree(f["m"])
        assert got == expected
        layout = layout_of(f["m"])
        assert layout is not None
        rows = AxisSelection.full(shape[0])
        cols = AxisSelection.full(shape[1] if len(shape) == 2 else 1)
        np.testing.assert_array_equal(_engine.read(layout, rows, cols).reshape(shape), f["m"][()])


def test_btree_parser_declines_newer_formats(tmp_path: Path) -> None:
    path = tmp_path / "latest.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("m", data=np.ones((300, 200), dtype="f4"), chunks=(64, 64), compression="gzip")
    with h5py.File(path, "r") as f:
        assert _records_from_btree(f["m"]) is None  # version-2 object header: HDF5's iteration is used
        layout = layout_of(f["m"])
        assert layout is not None
        np.testing.assert_array_equal(
            _engine.read(layout, AxisSelection.full(300), AxisSelection.full(200)), f["m"][()]
        )


def test_a_damaged_btree_is_not_trusted(tmp_path: Path) -> None:
    """A B-tree node whose signature is damaged: the parser declines, and nothing reads wrong data."""
    from loomfile._engine.btree import _btree_address

    path = tmp_path / "damaged.h5"
    values = np.arange(700 * 900, dtype=np.float32).reshape(700, 900)
    with h5py.File(path, "w") as f:
        f.create_dataset("m", data=values, chunks=(8, 8), compression="gzip")
    with h5py.File(path, "r") as f:
        root, _ = _btree_address(f.file.id.get_vfd_handle(), h5py.h5o.get_info(f["m"].id).addr, 0)
    with open(path, "r+b") as raw:
        raw.seek(root)
        raw.write(b"XXXX")
    try:
        with h5py.File(path, "r") as f:
            assert _records_from_btree(f["m"]) is None
            layout = layout_of(f["m"])
            if layout is not None:  # HDF5 could still index it: then the data must be right
                got = _engine.read(layout, AxisSelection.full(700), AxisSelection.full(900))
                np.testing.assert_array_equal(got, values)
    except (OSError, RuntimeError, ValueError):
        pass  # HDF5 itself refuses the damaged file: a clean error is fine
