"""Property tests: loomfile reads and writes agree with numpy on random shapes, dtypes and selections.

Shapes go up to 70 x 70 so that the 64-element chunk edge is crossed. Selections are drawn per axis
among an int (drops the axis, as in numpy), a slice (any step, including negative), a list of ints
(unsorted, repeated, negative) and a boolean mask. Two selections select the sub-matrix, like
``m[np.ix_(rows, cols)]`` (loomfile's orthogonal semantics), which loompy/h5py cannot do: so the oracle
here is numpy, not loompy.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loomfile
from loomfile import testing
from loomfile.testing import AxisKey
from oracle import axis_indices, orthogonal

DTYPES = ["float32", "int32", "uint16"]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_oracle_helpers() -> None:
    m = np.arange(20).reshape(4, 5)
    np.testing.assert_array_equal(orthogonal(m, ([2, 0], [1, 1])), m[np.ix_([2, 0], [1, 1])])
    np.testing.assert_array_equal(orthogonal(m, (-1, slice(None, None, -2))), m[-1, ::-2])
    np.testing.assert_array_equal(orthogonal(m, (np.array([True, False, True, False]), 3)), m[[0, 2], 3])
    assert orthogonal(m, (1, -1)) == m[1, -1]


def axis_keys(n: int) -> st.SearchStrategy[AxisKey]:
    """This module's keys: the kinds its docstring names, slice steps up to 9, lists up to min(2n, 24)."""
    return testing.axis_keys(n, kinds=("int", "slice", "list", "mask"), max_list=min(2 * n, 24), max_step=9)


@st.composite
def matrices(draw: st.DrawFn) -> np.ndarray:
    n_rows = draw(st.integers(1, 70))
    n_cols = draw(st.integers(1, 70))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 1000, (n_rows, n_cols))
    m[rng.random((n_rows, n_cols)) < 0.5] = 0
    return m.astype(dtype)


def _create(directory: str, m: np.ndarray) -> str:
    path = os.path.join(directory, "prop.loom")
    loomfile.create(
        path,
        m,
        {"RowIdx": np.arange(m.shape[0])},
        {"ColIdx": np.arange(m.shape[1])},
    )
    return path


@SETTINGS
@given(m=matrices(), data=st.data())
def test_reads_match_numpy_orthogonal_indexing(m: np.ndarray, data: st.DataObject) -> None:
    keys = data.draw(
        st.lists(st.tuples(axis_keys(m.shape[0]), axis_keys(m.shape[1])), min_size=1, max_size=6),
        label="keys",
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = _create(tmp, m)
        with loomfile.connect(path, "r") as ds:
            assert ds.shape == m.shape
            for key in keys:
                expected = orthogonal(m, key)
                got = ds[key]
                assert np.shape(got) == np.shape(expected), key
                assert np.asarray(got).dtype == m.dtype, key
                np.testing.assert_array_equal(got, expected, err_msg=repr(key))
                # the same selection through a view
                if not isinstance(key[0], int) and not isinstance(key[1], int):
                    view = ds.view[key]
                    np.testing.assert_array_equal(view[:, :], expected, err_msg=repr(key))
                    np.testing.assert_array_equal(view.ra.RowIdx, axis_indices(key[0], m.shape[0])[0])
                    np.testing.assert_array_equal(view.ca.ColIdx, axis_indices(key[1], m.shape[1])[0])


@st.composite
def write_ops(draw: st.DrawFn, shape: tuple[int, int]) -> list[tuple[tuple[Any, Any], Any]]:
    """A list of (key, value) writes; values are arrays of the selection's shape or scalars."""
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        key = (draw(axis_keys(shape[0])), draw(axis_keys(shape[1])))
        r, r_drop = axis_indices(key[0], shape[0])
        c, c_drop = axis_indices(key[1], shape[1])
        target = tuple(s for s, drop in ((r.size, r_drop), (c.size, c_drop)) if not drop)
        if draw(st.booleans()):
            value: Any = draw(st.integers(0, 60000))
        else:
            seed = draw(st.integers(0, 2**32 - 1))
            value = np.random.default_rng(seed).integers(0, 60000, target)
        ops.append((key, value))
    return ops


@SETTINGS
@given(m=matrices(), data=st.data())
def test_write_sequences_match_numpy(m: np.ndarray, data: st.DataObject) -> None:
    ops = data.draw(write_ops(m.shape), label="ops")
    expected = m.copy()
    with tempfile.TemporaryDirectory() as tmp:
        path = _create(tmp, m)
        with loomfile.connect(path) as ds:
            for key, value in ops:
                r, _ = axis_indices(key[0], m.shape[0])
                c, _ = axis_indices(key[1], m.shape[1])
                cast = np.asarray(value).astype(m.dtype)
                # numpy: with repeated positions the last value wins
                expected[np.ix_(r, c)] = cast.reshape(r.size, c.size) if cast.ndim else cast
                ds[key] = cast
                np.testing.assert_array_equal(ds[:, :], expected, err_msg=repr(key))
        with loomfile.connect(path, "r") as ds:
            got = ds[:, :]
            assert got.dtype == m.dtype
            np.testing.assert_array_equal(got, expected)
