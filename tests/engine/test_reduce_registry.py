"""The registry of reductions (``_engine.reduce.REDUCTIONS``): what map() and aggregate() compute is
listed there once, and one more entry there reaches map() (whole bands, or down the columns) and
aggregate() alike."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import loomfile
from loomfile._engine import reduce as _reduce
from loomfile._engine.reduce import REDUCTIONS, Reduction, along_rows, each_group
from loomfile._errors import LoomValueError
from looms import counts_file

HAS_HELPER = _reduce.handles([np.mean], np.dtype(np.float32))


class Spy:
    """A reduction's way of computing it, recording the shapes it was called on."""

    def __init__(self, f: Callable[[Any], np.ndarray]) -> None:
        self.f = f
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, x: Any) -> np.ndarray:
        self.shapes.append(
            x.values.shape if isinstance(x, _reduce.GroupedValues) else np.shape(getattr(x, "band", x))
        )
        return self.f(x)


@pytest.fixture
def counts(tmp_path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    path = tmp_path / "f.loom"
    m = counts_file(path, 150, 300, seed=21)
    labels = np.random.default_rng(22).integers(0, 6, m.shape[1])
    return os.fspath(path), m, labels


def registered(monkeypatch: pytest.MonkeyPatch, *entries: Reduction) -> None:
    """``REDUCTIONS`` with ``entries`` in place of those of the same name (or added), for one test."""
    names = {e.name for e in entries}
    monkeypatch.setattr(_reduce, "REDUCTIONS", (*(r for r in REDUCTIONS if r.name not in names), *entries))


def per_vector(f: Callable[..., Any], m: np.ndarray, axis: int) -> np.ndarray:
    vectors = m if axis == 0 else m.T
    return np.array([f(np.ascontiguousarray(v)) for v in vectors], dtype=np.float64)


def test_each_reduction_is_listed_once() -> None:
    names = [r.name for r in REDUCTIONS]
    assert len(names) == len(set(names))
    # map() finds each function in one entry (within an entry, numpy < 2 makes np.max np.amax)
    functions = [f for r in REDUCTIONS for f in {id(g): g for g in r.numpy_functions}.values()]
    assert len(functions) == len({id(f) for f in functions})
    assert _reduce.grouped_names() == (
        "sum", "mean", "max", "min", "first", "last", "std", "var", "median", "prod", "count"
    )  # fmt: skip
    on_bands = {id(f) for r in REDUCTIONS if r.band is not None for f in r.numpy_functions}
    assert on_bands == {
        id(f)
        for f in (
            np.mean,
            np.std,
            np.var,
            np.sum,
            np.max,
            np.min,
            np.amax,
            np.amin,
            np.count_nonzero,
            np.median,
        )
    }
    down = {id(f) for r in REDUCTIONS if r.down_columns is not None for f in r.numpy_functions}
    assert down == {
        id(f) for f in (np.mean, np.sum, np.var, np.std, np.max, np.amax, np.min, np.amin, np.count_nonzero)
    }


def test_an_entry_map_cannot_reach_is_refused() -> None:
    with pytest.raises(ValueError, match="numpy functions"):
        Reduction("rms", band=along_rows(np.mean))
    with pytest.raises(ValueError, match="needs band"):
        Reduction("rms", (np.mean,), down_columns=lambda c: c.mean)


def test_a_new_entry_reaches_map_and_aggregate(
    counts: tuple[str, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, m, labels = counts
    with loomfile.connect(path, "r") as ds:
        with pytest.raises(LoomValueError, match="aggr_by must be one of sum, mean"):
            ds.aggregate(None, group_by=labels, aggr_by="nanmean")
        alone = ds.map([np.nanmean], axis=0)[0]  # not registered: called once per row

        band, grouped = Spy(along_rows(np.nanmean)), Spy(each_group(np.nanmean))
        registered(monkeypatch, Reduction("nanmean", (np.nanmean,), band=band, grouped=grouped))
        for axis in (0, 1):
            got = ds.map([np.nanmean, np.mean], axis=axis)
            np.testing.assert_array_equal(got[0], per_vector(np.nanmean, m, axis))
            np.testing.assert_array_equal(got[1], per_vector(np.mean, m, axis))
        np.testing.assert_array_equal(alone, ds.map([np.nanmean], axis=0)[0])
        assert band.shapes and all(len(s) == 2 and s[0] > 1 for s in band.shapes)  # whole bands

        got = ds.aggregate(None, group_by=labels, aggr_by="nanmean")
        assert grouped.shapes
        for g in range(6):
            np.testing.assert_allclose(
                got[:, g], np.nanmean(m[:, labels == g].astype(np.float64), axis=1), rtol=1e-12
            )
        with pytest.raises(LoomValueError, match="median, prod, count, nanmean or a function"):
            ds.aggregate(None, group_by=labels, aggr_by="nanmin")


def test_prod_added_to_map(
    counts: tuple[str, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, m, labels = counts
    near_one = (1 + np.random.default_rng(23).uniform(-0.1, 0.1, m.shape)).astype(np.float32)
    with loomfile.connect(path) as ds:
        ds.layers["near_one"] = near_one
        before = ds.aggregate(None, group_by=labels, aggr_by="prod", layer="near_one")
        (prod,) = (r for r in REDUCTIONS if r.name == "prod")
        band = Spy(along_rows(np.prod))
        registered(monkeypatch, Reduction("prod", (np.prod,), band=band, grouped=prod.grouped))
        for axis in (0, 1):
            got = ds.layers["near_one"].map([np.prod], axis=axis)[0]
            np.testing.assert_array_equal(got, per_vector(np.prod, near_one, axis))
        assert band.shapes
        np.testing.assert_array_equal(
            ds.aggregate(None, group_by=labels, aggr_by="prod", layer="near_one"), before
        )


@pytest.mark.skipif(not HAS_HELPER, reason="the compiled helper was not built")
def test_a_new_entry_down_the_columns(
    counts: tuple[str, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, m, labels = counts
    down = Spy(lambda c: np.max(c.band, axis=0) - np.min(c.band, axis=0))
    ptp = Reduction(
        "ptp",
        (np.ptp,),
        band=along_rows(np.ptp),
        down_columns=down,
        grouped=lambda g: (
            np.maximum.reduceat(g.values, g.starts, axis=0) - np.minimum.reduceat(g.values, g.starts, axis=0)
        ),
    )
    assert not _reduce.handles([np.ptp, np.mean], np.dtype(np.float32))
    registered(monkeypatch, ptp)
    assert _reduce.handles([np.ptp, np.mean], np.dtype(np.float32))
    with loomfile.connect(path, "r") as ds:
        got = ds.map([np.ptp, np.mean], axis=1)
        assert down.shapes and all(s[0] == m.shape[0] for s in down.shapes)  # bands as stored
        np.testing.assert_array_equal(got[0], per_vector(np.ptp, m, 1))
        np.testing.assert_array_equal(got[1], per_vector(np.mean, m, 1))
        np.testing.assert_array_equal(ds.map([np.ptp], axis=0)[0], per_vector(np.ptp, m, 0))
        got = ds.aggregate(None, group_by=labels, aggr_by="ptp")
        for g in range(6):
            np.testing.assert_array_equal(got[:, g], np.ptp(m[:, labels == g], axis=1))
