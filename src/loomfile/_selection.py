"""One selection model for every read, write, view and scan.

Any key a user may give for one axis (int, numpy integer or 0-d integer array, slice with any step,
list or array of ints, boolean mask) becomes an :class:`AxisSelection`: the positions it selects, in the caller's order, plus whether the axis is
dropped (an int key). A whole key is first spread over the axes as numpy and h5py do
(:func:`expand_key`: ``()``, ``...`` and ``(..., k)``). Storage code reads the sorted unique positions and numpy finishes the job
(order, repeats), so no HDF5 indexing limit ever reaches the user.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import LoomValueError, SelectionError
from ._format.spec import AXIS_NAMES

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class AxisSelection:
    """The positions selected along one axis of length ``n``."""

    n: int
    indices: IntArray
    drop: bool = False
    contiguous: slice | None = None

    @classmethod
    def full(cls, n: int) -> AxisSelection:
        return cls(n, np.arange(n, dtype=np.intp), contiguous=slice(0, n))

    @classmethod
    def from_key(cls, key: Any, n: int, axis: int = 0) -> AxisSelection:
        """Normalise a user key for an axis of length ``n``."""
        where = AXIS_NAMES[axis]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            idx = np.arange(start, stop, step, dtype=np.intp)
            contiguous = slice(start, max(start, stop)) if step == 1 else None
            return cls(n, idx, contiguous=contiguous)
        if key is Ellipsis:
            return cls.full(n)
        if isinstance(key, int | np.integer) and not isinstance(key, bool | np.bool_):
            i = operator.index(key)
            if not -n <= i < n:
                msg = f"{where} index {i} is out of range for {n} {where}s"
                raise SelectionError(msg)
            i %= n
            return cls(n, np.array([i], dtype=np.intp), drop=True, contiguous=slice(i, i + 1))
        if isinstance(key, str | bytes):
            msg = f"cannot select {where}s with a string ({key!r}); use a mask such as ds.ra.Gene == {key!r}"
            raise SelectionError(msg)
        arr = np.asarray(key)
        if arr.ndim != 1:
            if arr.ndim == 0 and arr.dtype.kind in "iu":
                return cls.from_key(int(arr), n, axis)
            if arr.ndim == 0:
                msg = (
                    f"{where} index must be an integer, a slice, a list of integers or a boolean mask, "
                    f"not {type(key).__name__} ({key!r})"
                )
                raise SelectionError(msg)
            msg = f"{where} selection must be one-dimensional, got shape {arr.shape}"
            raise SelectionError(msg)
        if arr.dtype.kind == "b":
            if arr.shape[0] != n:
                msg = f"boolean {where} mask has {arr.shape[0]} elements but there are {n} {where}s"
                raise SelectionError(msg)
            return cls(n, np.flatnonzero(arr).astype(np.intp))
        if arr.size == 0:
            return cls(n, np.zeros(0, dtype=np.intp))
        if arr.dtype.kind not in "iu":
            msg = f"{where} indices must be integers or booleans, not {arr.dtype}"
            raise SelectionError(msg)
        idx = arr.astype(np.intp)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            msg = f"{where} index {int(idx[bad][0])} is out of range for {n} {where}s"
            raise SelectionError(msg)
        idx = np.where(idx < 0, idx + n, idx)
        return cls(n, idx)

    @property
    def size(self) -> int:
        return int(self.indices.shape[0])

    def bounds(self) -> tuple[int, int]:
        """[start, stop) of the smallest range holding every selected index."""
        if self.indices.size == 0:
            return (0, 0)
        return (int(self.indices.min()), int(self.indices.max()) + 1)

    def sorted_unique(self) -> tuple[IntArray, IntArray | None]:
        """Sorted unique positions, and how to expand them back (None if already in that form)."""
        idx = self.indices
        if self.contiguous is not None or idx.size < 2 or bool(np.all(idx[1:] > idx[:-1])):
            return idx, None
        unique, inverse = np.unique(idx, return_inverse=True)
        return unique.astype(np.intp), inverse.astype(np.intp)


def expand_key(key: Any, ndim: int) -> tuple[Any, ...]:
    """One key per axis, by numpy's rules: ``()`` and ``...`` select everything, a single ``...``
    stands for as many whole axes as are missing, and missing trailing axes are whole."""
    parts = key if isinstance(key, tuple) else (key,)
    ellipses = [i for i, part in enumerate(parts) if part is Ellipsis]
    if len(ellipses) > 1:
        msg = f"an index can only have a single ellipsis (...), got {len(ellipses)}"
        raise SelectionError(msg)
    if any(part is None for part in parts):
        msg = "np.newaxis (None) cannot index a Loom matrix; select first, then reshape the numpy result"
        raise SelectionError(msg)
    if ellipses:
        at = ellipses[0]
        parts = parts[:at] + (slice(None),) * max(0, ndim - len(parts) + 1) + parts[at + 1 :]
    if len(parts) > ndim:
        what = "a Loom matrix has two axes" if ndim == 2 else "an attribute or graph has one axis"
        msg = f"{what}, but the key has {len(parts)} parts"
        raise SelectionError(msg)
    return parts + (slice(None),) * (ndim - len(parts))


def normalize_key(key: Any, shape: tuple[int, int]) -> tuple[AxisSelection, AxisSelection]:
    """Split a 2-D key (``ds[rows, cols]``, ``ds[()]``, ``ds[..., 3]``) into one selection per axis."""
    rows, cols = expand_key(key, 2)
    return (AxisSelection.from_key(rows, shape[0], 0), AxisSelection.from_key(cols, shape[1], 1))


def normalize_axis_key(key: Any, n: int, axis: int) -> AxisSelection:
    """The selection for a 1-D key (``ds.ca[mask]``, ``ds.ra[()]``, ``ds.col_graphs[...]``)."""
    (only,) = expand_key(key, 1)
    return AxisSelection.from_key(only, n, axis)


def result_shape(rows: AxisSelection, cols: AxisSelection) -> tuple[int, ...]:
    """The numpy shape of ``m[rows, cols]`` (int keys drop their axis)."""
    return tuple(s.size for s in (rows, cols) if not s.drop)


def take(values: np.ndarray[Any, Any], rows: AxisSelection, cols: AxisSelection) -> np.ndarray[Any, Any]:
    """``values`` (2-D, in memory) restricted to rows x cols, orthogonally.

    Ranges are applied by basic slicing, so selecting whole bands returns a numpy view without
    copying (as loompy's in-memory layers do); index arrays are gathered.
    """
    r: Any = rows.contiguous if rows.contiguous is not None else rows.indices
    c: Any = cols.contiguous if cols.contiguous is not None else cols.indices
    if isinstance(r, slice) or isinstance(c, slice):
        return values[r, c]
    return values[np.ix_(r, c)]


def check_ordering(ordering: Any, n: int, axis: int) -> np.ndarray:
    """A permutation of ``range(n)``, or a clear error (loompy accepted anything and lost data)."""
    order = np.asarray(ordering).ravel()
    if order.dtype.kind not in "iu":
        msg = f"ordering must be integers, not {order.dtype}"
        raise LoomValueError(msg)
    if order.shape[0] != n or not np.array_equal(np.sort(order), np.arange(n)):
        msg = f"ordering must be a permutation of the {n} {AXIS_NAMES[axis]} indices 0..{n - 1}"
        raise LoomValueError(msg)
    return order.astype(np.intp)
