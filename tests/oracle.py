"""The numpy oracle for orthogonal selections, shared by the differential and property tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def axis_indices(key: Any, n: int) -> tuple[np.ndarray, bool]:
    """The positions one axis key selects (in order, with repeats), and whether the axis is dropped."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return np.array([int(key) % n], dtype=np.intp), True
    if isinstance(key, slice):
        return np.arange(n)[key], False
    arr = np.asarray(key)
    if arr.dtype == bool:
        return np.flatnonzero(arr), False
    return (arr.astype(np.intp) % n) if arr.size else np.zeros(0, np.intp), False


def orthogonal(m: np.ndarray, key: tuple[Any, Any]) -> np.ndarray:
    """``m[rows, cols]`` with orthogonal (np.ix_) semantics; int keys drop their axis as numpy does."""
    (r, r_drop), (c, c_drop) = axis_indices(key[0], m.shape[0]), axis_indices(key[1], m.shape[1])
    out = m[np.ix_(r, c)]
    if r_drop and c_drop:
        return out[0, 0]
    if r_drop:
        return out[0]
    if c_drop:
        return out[:, 0]
    return out
