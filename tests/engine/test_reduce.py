"""map(axis=1)'s reductions down the columns of a band: bit for bit what numpy gives on each column
alone (the oracle is numpy called column by column, as loompy calls it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import loomfile
from loomfile._engine import reduce as _reduce
from looms import counts_file

pytestmark = pytest.mark.skipif(
    not _reduce.handles([np.mean], np.dtype(np.float32)), reason="the compiled helper was not built"
)

HEIGHTS = [*range(0, 20), 23, 64, 127, 128, 129, 136, 255, 256, 257, 1000, 4097]


def wild(rng: np.random.Generator, shape: tuple[int, int], dtype: type) -> np.ndarray:
    """Values over many magnitudes and both signs: any other order of summation rounds differently."""
    return (rng.standard_normal(shape) * 10 ** rng.uniform(-3, 6, shape)).astype(dtype)


def per_column(f: object, band: np.ndarray) -> np.ndarray:
    return np.array([f(np.ascontiguousarray(band[:, j])) for j in range(band.shape[1])])  # type: ignore[operator]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_sums_equal_numpy_on_each_column_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(11)
    for h in HEIGHTS:
        band = wild(rng, (h, int(rng.integers(1, 600))), dtype)
        expected = per_column(np.add.reduce, band).astype(dtype)
        np.testing.assert_array_equal(_reduce.column_sums(band).view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_reduction_equals_numpy_on_each_column(dtype: type) -> None:
    rng = np.random.default_rng(12)
    functions = [np.mean, np.std, np.var, np.sum, np.max, np.amin, np.count_nonzero]
    for h in [1, 7, 8, 9, 130, 2000]:
        band = wild(rng, (h, 300), dtype)
        band[rng.random(band.shape) < 0.8] = 0  # mostly zeros, as in counts
        for f, got in zip(functions, _reduce.down_columns(band, functions), strict=True):
            expected = per_column(f, band)
            assert got.dtype == expected.dtype or f is np.count_nonzero, f
            np.testing.assert_array_equal(got, expected, err_msg=f.__name__)
            assert np.array_equal(np.signbit(got), np.signbit(expected)), f.__name__


def test_a_strided_band_and_negative_zeros() -> None:
    rng = np.random.default_rng(13)
    wide = wild(rng, (300, 700), np.float32)
    band = wide[:, 50:450]  # rows 700 apart: summed in place
    np.testing.assert_array_equal(_reduce.column_sums(band), per_column(np.add.reduce, band))
    zeros = np.full((200, 5), -0.0, dtype=np.float32)  # numpy's sum starts from +0.0
    assert not np.signbit(_reduce.column_sums(zeros)).any()
    assert not np.signbit(per_column(np.add.reduce, zeros)).any()


def test_handles_only_what_it_computes() -> None:
    assert _reduce.handles([np.mean, np.std, np.count_nonzero], np.dtype(np.float64))
    assert not _reduce.handles([np.mean, np.median], np.dtype(np.float32))  # median: per column
    assert not _reduce.handles([np.mean], np.dtype(np.uint16))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_map_along_columns_equals_each_column_alone(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "f.loom"
    counts_file(path, 333, 450, seed=14)
    functions = [np.mean, np.std, np.var, np.sum, np.max, np.min, np.count_nonzero]
    with loomfile.connect(os.fspath(path)) as ds:
        rng = np.random.default_rng(15)
        ds.layers["wild"] = wild(rng, ds.shape, np.float32).astype(dtype)
        values = ds.layers["wild"][:, :]
        rows = np.sort(rng.choice(ds.shape[0], 200, replace=False))
        for selection, block in [(None, values), (rows, values[rows])]:
            got = ds.layers["wild"].map(functions, axis=1, selection=selection)
            for f, g in zip(functions, got, strict=True):
                np.testing.assert_array_equal(g, per_column(f, block).astype(np.float64), err_msg=f.__name__)
