"""Selecting genes and cells by name or by attribute value, as the command line does it.

``names_mask`` matches a list of names against one or more attributes (genes by symbol or by
accession) and names the ones it cannot find; ``where_mask`` reads ``ATTR=V1,V2`` conditions,
converting the values to the attribute's type so that ``ClusterID=3`` matches the integer 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._errors import LoomValueError

SHOWN = 5  # unknown names quoted in an error


def names_mask(attrs: Any, keys: Sequence[str], names: Sequence[str], what: str) -> np.ndarray:
    """True where any of the attributes ``keys`` (those present) holds one of ``names``; an error
    naming the names found in none of them."""
    present = [k for k in keys if k in attrs]
    if not present:
        msg = f"No attribute {' or '.join(repr(k) for k in keys)} to match the {what} against"
        raise LoomValueError(msg)
    wanted = np.asarray(list(names), dtype=object)
    mask = np.zeros(len(attrs[present[0]]), dtype=bool)
    found = np.zeros(wanted.size, dtype=bool)
    for key in present:
        values = np.asarray(attrs[key]).astype(str).astype(object)
        mask |= np.isin(values, wanted)
        found |= np.isin(wanted, values)
    if not found.all():
        missing = wanted[~found].tolist()
        msg = (
            f"{len(missing)} of the {wanted.size} {what} are not in {' or '.join(present)}: "
            f"{', '.join(missing[:SHOWN])}{' ...' if len(missing) > SHOWN else ''}"
        )
        raise LoomValueError(msg)
    return mask


def where_mask(attrs: Any, condition: str) -> np.ndarray:
    """True where the attribute named before ``=`` holds one of the comma-separated values after it."""
    key, sep, text = condition.partition("=")
    key = key.strip()
    if not sep or not key:
        msg = f"A condition reads ATTR=VALUE[,VALUE...], not {condition!r}"
        raise LoomValueError(msg)
    values = attrs[key]  # (a clear error naming the attributes present)
    if values.ndim != 1:
        msg = f"Attribute {key!r} has {values.ndim} dimensions; a condition needs a 1-D attribute"
        raise LoomValueError(msg)
    wanted: list[str] = [v.strip() for v in text.split(",")]
    if values.dtype.kind in "biuf":
        try:
            return np.isin(values, np.asarray(wanted, dtype=float))
        except ValueError:
            msg = f"Attribute {key!r} holds numbers; {text!r} are not all numbers"
            raise LoomValueError(msg) from None
    return np.isin(np.asarray(values).astype(str), wanted)
