"""Direct chunk writes: whatever box is written, with whatever chunking and filters, the dataset
holds what h5py's own write would have put there, in standard chunks that plain HDF5 decodes."""

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
from loomfile._engine import codec as _codec
from loomfile._engine import stored as _hdf5chunks
from loomfile._engine import write as _chunkwrite
from loomfile._engine.write import Encoder
from loomfile._format import spec as fmt

FILTERS = {
    "gzip": {"compression": "gzip", "compression_opts": 2},
    "gzip 9": {"compression": "gzip", "compression_opts": 9},
    "shuffle + gzip": {"compression": "gzip", "shuffle": True},
}


@st.composite
def cases(draw: Any) -> tuple[Any, ...]:
    n0, n1 = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    chunks = (draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    r0, c0 = draw(st.integers(0, n0 - 1)), draw(st.integers(0, n1 - 1))
    h, w = draw(st.integers(1, n0 - r0)), draw(st.integers(1, n1 - c0))
    dtype = draw(st.sampled_from(["float32", "float64", "uint16", "int8", "uint8"]))
    filters = draw(st.sampled_from(sorted(FILTERS)))
    fill = draw(st.sampled_from([0, 3]))
    return (n0, n1), chunks, (r0, c0, h, w), np.dtype(dtype), filters, fill


def test_hdf5s_chunk_writer_was_found() -> None:
    """On Linux the helper hands whole groups of chunks to HDF5 itself (one call, not one per chunk)."""
    assert None not in _hdf5chunks._writers.values()


def test_a_chunk_hdf5_refuses_is_a_clear_error(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        d = f.create_dataset("m", shape=(64, 64), dtype="f4", chunks=(32, 32), compression="gzip")
        data = np.frombuffer(b"x" * 16, dtype=np.uint8)
        one = np.array([0], dtype=np.int64)
        with pytest.raises(OSError, match=r"could not write the chunk at \(640, 0\) of /m"):
            _hdf5chunks.hand_to_hdf5(d, data, one, one + 16, one, np.array([[640, 0]]))
        d[:, :] = 1  # and the file is fine
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["m"][:].sum() == 64 * 64


def test_igzip_passed_its_check() -> None:
    """The fast encoder is there (isal is a dependency, the helper is built) and used for Loom's level."""
    assert _codec.IGZIP is not None
    assert 1 <= fmt.COMPRESSION_LEVEL <= _chunkwrite.IGZIP_LEVELS


@pytest.mark.parametrize("codec", ["igzip", "libdeflate", "h5py per chunk"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), seed=st.integers(0, 2**16))
def test_a_direct_write_equals_h5pys(tmp_path: Path, codec: str, case: tuple[Any, ...], seed: int) -> None:
    (n0, n1), chunks, (r0, c0, h, w), dtype, filters, fill = case
    rng = np.random.default_rng(seed)
    start = rng.integers(0, 50, (n0, n1)).astype(dtype)
    values = rng.integers(0, 50, (h, w)).astype(dtype)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        for name in ("ours", "h5py"):
            f.create_dataset(
                name, data=start, chunks=chunks, maxshape=(None, None), fillvalue=fill, **FILTERS[filters]
            )
        with (
            mock.patch.object(_chunkwrite, "MIN_CHUNKS", 1),
            mock.patch.object(_chunkwrite, "IGZIP", _codec.IGZIP if codec == "igzip" else None),
            mock.patch.dict(
                _hdf5chunks._writers,
                dict.fromkeys((True, False), None) if codec == "h5py per chunk" else {},
            ),
        ):
            _chunkwrite.write(f["ours"], r0, c0, values)
        f["h5py"][r0 : r0 + h, c0 : c0 + w] = values
    with h5py.File(path, "a") as f:  # a fresh open: nothing comes from HDF5's chunk cache
        np.testing.assert_array_equal(f["ours"][:], f["h5py"][:])
        # padding in edge chunks holds the fill value, as HDF5 expects when the dataset grows
        for name in ("ours", "h5py"):
            f[name].resize((n0 + 7, n1 + 9))
        np.testing.assert_array_equal(f["ours"][:], f["h5py"][:])


def test_a_ragged_box_writes_whole_chunks(tmp_path: Path) -> None:
    """Partly covered chunks keep what they held outside the box; everything is written directly."""
    with h5py.File(tmp_path / "f.h5", "w") as f:
        before = np.arange(100 * 130, dtype="f4").reshape(100, 130)
        d = f.create_dataset("m", data=before, chunks=(10, 10), compression="gzip")
        calls: list[tuple[int, ...]] = []
        real = Encoder.encode

        def spy(self: Encoder, block: np.ndarray) -> Any:
            calls.append(block.shape)
            return real(self, block)

        with mock.patch.object(Encoder, "encode", spy):
            _chunkwrite.write(d, 5, 15, -np.ones((95, 112), dtype="f4"))
        # inside: rows 10..100 (the edge), columns 20..120; then the partly covered chunks around
        assert calls == [(90, 100), (10, 120), (90, 10), (90, 10)]
        expected = before.copy()
        expected[5:, 15:127] = -1
        np.testing.assert_array_equal(d[:, :], expected)


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "gzip", "fletcher32": True},
        {"compression": "lzf"},
        {},  # no compression: h5py writes it (nothing to gain)
        {"chunks": None},
    ],
    ids=["fletcher32", "lzf", "uncompressed", "contiguous"],
)
def test_other_layouts_are_written_by_h5py(tmp_path: Path, options: dict[str, Any]) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        d = f.create_dataset("m", shape=(200, 200), dtype="f4", **{"chunks": (16, 16), **options})
        assert Encoder.of(d) is None
        values = np.arange(190 * 180, dtype="f4").reshape(190, 180)
        _chunkwrite.write(d, 3, 7, values)
        np.testing.assert_array_equal(d[3:193, 7:187], values)


def test_files_written_directly_open_in_loompy(tmp_path: Path) -> None:
    """create() and add_columns() write their chunks directly; loompy reads the result."""
    import loompy

    rng = np.random.default_rng(0)
    m = rng.poisson(0.4, (300, 500)).astype(np.float32)
    path = tmp_path / "f.loom"
    loomfile.create(path, m[:, :333], {"Gene": np.arange(300)}, {"Cell": np.arange(333)})
    with loomfile.connect(path) as ds:
        ds.add_columns(m[:, 333:], {"Cell": np.arange(333, 500)})
    with loompy.connect(str(path), "r") as ds:
        np.testing.assert_array_equal(ds[:, :], m)


@given(
    n=st.integers(0, 5000), offset=st.integers(0, 300), width=st.integers(1, 2000), chunk=st.integers(1, 100)
)
def test_add_loom_bands_fill_whole_chunks(n: int, offset: int, width: int, chunk: int) -> None:
    from loomfile._ops.columns import aligned_bands

    got = list(aligned_bands(n, offset, width, chunk))
    assert [i for b in got for i in range(b.start, b.stop)] == list(range(n))
    for b in got[:-1]:
        assert (offset + b.stop) % chunk == 0
        assert b.stop - b.start <= max(chunk, width) + chunk
