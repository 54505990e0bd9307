"""The reductions ``map()`` and ``aggregate()`` compute: one registry, ``REDUCTIONS``, one entry each.

Each ``Reduction`` has its name for ``aggregate(aggr_by=...)``, the numpy functions ``map()``
recognises as it, and the ways it can be computed (None where it cannot):

- ``band``: every row of a C-ordered float band, each reduced alone, in one call (``map()`` runs
  these on whole bands on the thread pool). Only for what gives, on the rows of a C-ordered band
  with ``axis=1``, exactly what it gives on each row alone (the same pairwise summation over the
  same contiguous values). ``map()`` calls any other function once per row or column, as loompy.
- ``down_columns``: every column of a C-ordered band, each reduced alone, from a ``Columns``
  (``map(axis=1)`` on bands read as stored, not transposed; see below).
- ``grouped``: the columns of each group (clusters) reduced together, from a ``GroupedValues``
  (``aggregate()``, with numpy's ``reduceat`` where there is one); ``aggregate()`` offers the names
  that have it.

Adding a reduction is one new entry in ``REDUCTIONS``, say
``Reduction("nanmean", (np.nanmean,), band=along_rows(np.nanmean), grouped=each_group(np.nanmean))``:
``map()`` (``on_bands``, ``handles``, ``down_columns``) and ``aggregate()`` (``named``,
``grouped_names``) look everything up here, in the tuple as it is at the call (no ``register()``:
the tuple is the one list; ``tests/test_reduce_registry.py`` swaps in extra entries for a test).

Down the columns: ``map(axis=1)`` calls its functions on each column, as loompy does. On a C-ordered
band, numpy's ``axis=0`` reductions sum in another order than on a column alone (row after row, not
pairwise), so their float results differ in the last bits. The compiled helper sums down the columns
with numpy's own pairwise scheme (see ``_engine/_batch.c``), so mean, sum, var and std come out bit for bit
as numpy gives them on each column, without transposing the band first. Maxima, minima and counts do
not depend on the order: numpy's ``axis=0`` gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .codec import batch_function

_SUMS = {
    np.dtype(np.float32): batch_function("loomfile_column_sums_f4"),
    np.dtype(np.float64): batch_function("loomfile_column_sums_f8"),
}


def column_sums(band: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """``np.add.reduce`` of each column of ``band`` alone (of ``(x - mean) ** 2`` with ``mean``)."""
    h, w = band.shape
    out = np.empty(w, dtype=band.dtype)
    if w == 0:
        return out
    if band.strides[1] != band.itemsize or band.strides[0] % band.itemsize:
        band = np.ascontiguousarray(band)
    lda = band.strides[0] // band.itemsize
    m = None if mean is None else np.ascontiguousarray(mean, dtype=band.dtype)
    _SUMS[band.dtype](band.ctypes.data, h, w, lda, None if m is None else m.ctypes.data, out.ctypes.data)
    return out


class Columns:
    """A C-ordered float band whose columns are reduced each alone: the column sums, means and
    variances, computed once and shared by the reductions that need them."""

    def __init__(self, band: np.ndarray) -> None:
        self.band = band

    @cached_property
    def sum(self) -> np.ndarray:
        return column_sums(self.band)

    @cached_property
    def mean(self) -> np.ndarray:
        # np.mean: the float sum divided by the count in float64, rounded back
        return np.true_divide(self.sum, np.intp(self.band.shape[0]), dtype=np.float64).astype(self.band.dtype)

    @cached_property
    def var(self) -> np.ndarray:
        # np.var: the sum of squared deviations from that mean, over the count
        squares = column_sums(self.band, self.mean)
        return np.true_divide(squares, np.intp(self.band.shape[0]), dtype=np.float64).astype(self.band.dtype)


@dataclass(frozen=True)
class GroupedValues:
    """Columns gathered group by group: ``values`` (columns x rows, float64) holds group g's
    columns in its rows ``starts[g] : starts[g] + counts[g]`` (every group has at least one), so
    that every reduction runs down whole contiguous rows. A reduction gives (groups x rows)."""

    values: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    def sums(self) -> np.ndarray:
        return np.add.reduceat(self.values, self.starts, axis=0)

    def means(self) -> np.ndarray:
        return self.sums() / self.counts[:, None]

    def parts(self) -> list[np.ndarray]:
        """Each group's rows of ``values``, in group order."""
        return [
            self.values[s : s + c] for s, c in zip(self.starts.tolist(), self.counts.tolist(), strict=True)
        ]


@dataclass(frozen=True)
class Reduction:
    """One reduction: its ``aggregate()`` name, the numpy functions ``map()`` recognises as it, and
    how it is computed on a band's rows, down a band's columns and over groups (see the module)."""

    name: str
    numpy_functions: tuple[Callable[..., Any], ...] = ()
    band: Callable[[np.ndarray], np.ndarray] | None = None
    down_columns: Callable[[Columns], np.ndarray] | None = None
    grouped: Callable[[GroupedValues], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if (self.band is not None or self.down_columns is not None) and not self.numpy_functions:
            msg = f"Reduction {self.name!r}: map() reaches band and down_columns by its numpy functions"
            raise ValueError(msg)
        if self.down_columns is not None and self.band is None:  # map() runs it on the bands it reduces
            msg = f"Reduction {self.name!r}: down_columns needs band as well"
            raise ValueError(msg)


def along_rows(f: Callable[..., Any]) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy reduction on every row of a band: ``f(band, axis=1)``."""
    return lambda band: f(band, axis=1)


def each_group(f: Callable[..., Any]) -> Callable[[GroupedValues], np.ndarray]:
    """A numpy reduction with no ``reduceat`` form, called group by group: ``f(part, axis=0)``."""
    return lambda g: np.stack([f(part, axis=0) for part in g.parts()])


def _grouped_var(g: GroupedValues) -> np.ndarray:
    deviation = g.values - np.repeat(g.means(), g.counts, axis=0)
    return np.add.reduceat(deviation * deviation, g.starts, axis=0) / g.counts[:, None]


def _group_sizes(g: GroupedValues) -> np.ndarray:
    return np.broadcast_to(g.counts.astype(np.float64)[:, None], (g.counts.size, g.values.shape[1])).copy()


# In aggregate()'s order of names (its error message lists them so).
REDUCTIONS: tuple[Reduction, ...] = (
    Reduction(
        "sum", (np.sum,), band=along_rows(np.sum), down_columns=lambda c: c.sum, grouped=GroupedValues.sums
    ),
    Reduction(
        "mean",
        (np.mean,),
        band=along_rows(np.mean),
        down_columns=lambda c: c.mean,
        grouped=GroupedValues.means,
    ),
    Reduction(
        "max",
        (np.max, np.amax),
        band=along_rows(np.max),
        down_columns=lambda c: np.max(c.band, axis=0),
        grouped=lambda g: np.maximum.reduceat(g.values, g.starts, axis=0),
    ),
    Reduction(
        "min",
        (np.min, np.amin),
        band=along_rows(np.min),
        down_columns=lambda c: np.min(c.band, axis=0),
        grouped=lambda g: np.minimum.reduceat(g.values, g.starts, axis=0),
    ),
    Reduction("first", grouped=lambda g: g.values[g.starts]),
    Reduction("last", grouped=lambda g: g.values[g.starts + g.counts - 1]),
    Reduction(
        "std",
        (np.std,),
        band=along_rows(np.std),
        down_columns=lambda c: np.sqrt(c.var),
        grouped=lambda g: np.sqrt(_grouped_var(g)),
    ),
    Reduction("var", (np.var,), band=along_rows(np.var), down_columns=lambda c: c.var, grouped=_grouped_var),
    Reduction("median", (np.median,), band=along_rows(np.median), grouped=each_group(np.median)),
    Reduction("prod", grouped=lambda g: np.multiply.reduceat(g.values, g.starts, axis=0)),
    Reduction("count", grouped=_group_sizes),
    Reduction(  # map() only: aggregate()'s "count" is the number of columns in each group
        "count_nonzero",
        (np.count_nonzero,),
        band=along_rows(np.count_nonzero),
        down_columns=lambda c: np.count_nonzero(c.band, axis=0),
    ),
)


def find(f: Callable[..., Any]) -> Reduction | None:
    """The reduction ``map()`` recognises the function ``f`` as, if any."""
    for reduction in REDUCTIONS:
        if f in reduction.numpy_functions:
            return reduction
    return None


def named(name: str) -> Reduction | None:
    """The reduction ``aggregate()`` knows as ``name``, if it offers it."""
    for reduction in REDUCTIONS:
        if reduction.grouped is not None and reduction.name == name:
            return reduction
    return None


def grouped_names() -> tuple[str, ...]:
    """The names ``aggregate(aggr_by=...)`` accepts."""
    return tuple(r.name for r in REDUCTIONS if r.grouped is not None)


def on_bands(f_list: Sequence[Callable[..., Any]]) -> list[Callable[[np.ndarray], np.ndarray]] | None:
    """Each function of ``f_list`` as its reduction of a whole band's rows, or None unless all have one."""
    found = [find(f) for f in f_list]
    bands = [r.band for r in found if r is not None and r.band is not None]
    return bands if len(bands) == len(found) else None


def handles(f_list: Sequence[Callable[..., Any]], dtype: np.dtype[Any]) -> bool:
    """Whether ``down_columns`` computes every function of ``f_list`` on bands of ``dtype``."""
    if _SUMS.get(np.dtype(dtype)) is None:
        return False
    found = [find(f) for f in f_list]
    return all(r is not None and r.down_columns is not None for r in found)


def down_columns(band: np.ndarray, f_list: Sequence[Callable[..., Any]]) -> list[np.ndarray]:
    """Each function of ``f_list`` (see ``handles``) on every column of ``band``: what it returns for
    the column alone (numpy's rounding of its own mean, var and std included)."""
    columns = Columns(band)
    results = []
    for f in f_list:
        reduction = find(f)
        if reduction is None or reduction.down_columns is None:
            msg = f"{getattr(f, '__name__', f)!r} has no reduction down the columns"
            raise ValueError(msg)
        results.append(reduction.down_columns(columns))
    return results
