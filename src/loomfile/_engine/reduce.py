"""numpy's reductions down the columns of a C-ordered band, equal to calling each on every column.

``map(axis=1)`` calls its functions on each column, as loompy does. On a C-ordered band, numpy's
``axis=0`` reductions sum in another order than on a column alone (row after row, not pairwise), so
their float results differ in the last bits. The compiled helper sums down the columns with numpy's
own pairwise scheme (see ``_engine/_batch.c``), so mean, sum, var and std come out bit for bit as numpy
gives them on each column, without transposing the band first. Maxima, minima and counts do not
depend on the order: numpy's ``axis=0`` gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .codec import batch_function

_SUMS = {
    np.dtype(np.float32): batch_function("loomfile_column_sums_f4"),
    np.dtype(np.float64): batch_function("loomfile_column_sums_f8"),
}
_BY_SUM = (np.mean, np.sum, np.var, np.std)
_ANY_ORDER: dict[Any, Callable[[np.ndarray], np.ndarray]] = {
    np.max: lambda band: np.max(band, axis=0),
    np.amax: lambda band: np.max(band, axis=0),
    np.min: lambda band: np.min(band, axis=0),
    np.amin: lambda band: np.min(band, axis=0),
    np.count_nonzero: lambda band: np.count_nonzero(band, axis=0),
}


def handles(f_list: Sequence[Callable[..., Any]], dtype: np.dtype[Any]) -> bool:
    """Whether ``down_columns`` computes every function of ``f_list`` on bands of ``dtype``."""
    return _SUMS.get(np.dtype(dtype)) is not None and all(f in _BY_SUM or f in _ANY_ORDER for f in f_list)


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


def down_columns(band: np.ndarray, f_list: Sequence[Callable[..., Any]]) -> list[np.ndarray]:
    """Each function of ``f_list`` (see ``handles``) on every column of ``band``: what it returns for
    the column alone (numpy's rounding of its own mean, var and std included)."""
    h = band.shape[0]
    found: dict[str, np.ndarray] = {}

    def mean() -> np.ndarray:
        if "mean" not in found:  # np.mean: the float sum divided by the count in float64, rounded back
            found["mean"] = np.true_divide(sums(), np.intp(h), dtype=np.float64).astype(band.dtype)
        return found["mean"]

    def sums() -> np.ndarray:
        if "sum" not in found:
            found["sum"] = column_sums(band)
        return found["sum"]

    def var() -> np.ndarray:
        if "var" not in found:  # np.var: the sum of squared deviations from that mean, over the count
            squares = column_sums(band, mean())
            found["var"] = np.true_divide(squares, np.intp(h), dtype=np.float64).astype(band.dtype)
        return found["var"]

    results = []
    for f in f_list:
        if f is np.mean:
            results.append(mean())
        elif f is np.sum:
            results.append(sums())
        elif f is np.var:
            results.append(var())
        elif f is np.std:
            results.append(np.sqrt(var()))
        else:
            results.append(_ANY_ORDER[f](band))
    return results
