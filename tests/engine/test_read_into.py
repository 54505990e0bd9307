"""Reads placed into a caller's buffer (``out=``), as add_loom recycles its band buffers, and the
NaN/infinity check that no longer allocates."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from loomfile._engine import matrix as _matrix_io
from loomfile._engine.chunks import layout_of
from loomfile._errors import LoomValueError
from loomfile._format import spec as _format
from loomfile._selection import AxisSelection


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[h5py.Dataset, np.ndarray]]:
    values = np.random.default_rng(0).random((150, 130)).astype(np.float32)
    f = h5py.File(tmp_path / "m.h5", "w")
    dset = f.create_dataset("m", data=values, chunks=(64, 64), compression="gzip")
    yield dset, values
    f.close()


@pytest.mark.parametrize("engine", [True, False], ids=["engine", "h5py"])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize(
    ("rows", "cols"),
    [
        (slice(None), slice(10, 100)),
        (np.random.default_rng(1).permutation(150), slice(None)),  # rows reordered
        (slice(None), [5, 3, 3, 100, 0]),  # columns reordered and repeated
        (np.arange(149, -1, -2), [7, 1, 64]),  # both
    ],
)
def test_read_into_a_buffer(
    stored: tuple[h5py.Dataset, np.ndarray], engine: bool, transposed: bool, rows: object, cols: object
) -> None:
    dset, values = stored
    r = AxisSelection.from_key(rows, 150, 0)
    c = AxisSelection.from_key(cols, 130, 1)
    want = values[np.ix_(r.indices, c.indices)]
    if transposed:
        want = want.T
    buffer = np.full(want.size + 17, -1, dtype=np.float32)
    out = buffer[: want.size].reshape(want.shape)
    layout = layout_of(dset) if engine else None
    got = _matrix_io.read(dset, r, c, layout, transposed, out=out)
    assert got is out or np.shares_memory(got, buffer)
    np.testing.assert_array_equal(out, want)
    assert (buffer[want.size :] == -1).all()  # nothing written past the result


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_finds_nan_and_infinities_even_when_the_sum_overflows(bad: float) -> None:
    big = np.full((100, 100), 3e38, dtype=np.float32)  # finite, but the sum overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no RuntimeWarning from the overflow
        _format.check_finite(big, "big")
        big[50, 50] = bad
        with pytest.raises(LoomValueError, match="NaN or infinite"):
            _format.check_finite(big, "big")
    small = np.zeros(10, dtype=np.float64)
    small[3] = bad
    with pytest.raises(LoomValueError):
        _format.check_finite(small, "small")
