"""loompy's module-level helpers (``loompy.utils``, ``loompy.normalize``), on loomfile's format rules.

Programs written for loompy call these directly: ``compare_loom_spec_version(ds._file, "3.0.0")``,
``normalize_attr_values(values)`` before writing with h5py, ``materialize_attr_values(raw)`` after
reading with h5py. They keep loompy's signatures and results, except where loompy loses data (text
is decoded and escaped as loomfile does: docs/input-rules.md).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import scipy.sparse as sparse

from .._errors import LoomValueError
from . import spec as fmt

logger = logging.getLogger("loomfile")


def deprecated(message: str) -> None:
    """Log ``message`` as a warning, with the caller's file and line (as loompy's ``deprecated``)."""
    caller = inspect.stack()[1]
    logger.warning("%s (at %s, line %d)", message, caller.filename, caller.lineno)


def get_loom_spec_version(f: Any) -> str:
    """The LOOM_SPEC_VERSION of ``f``, an open h5py.File, as text ("0.0.0" when it has none).

    As in loompy, a version on the root group takes precedence over one in ``/attrs``.
    """
    version: Any = "0.0.0"
    if fmt.GLOBALS_GROUP.strip("/") in f and fmt.SPEC_VERSION_NAME in f[fmt.GLOBALS_GROUP]:
        version = materialize_attr_values(f[fmt.GLOBALS_GROUP][fmt.SPEC_VERSION_NAME][()])
    if fmt.SPEC_VERSION_NAME in f.attrs:
        version = materialize_attr_values(f.attrs[fmt.SPEC_VERSION_NAME])
    if isinstance(version, np.ndarray):
        version = version.ravel()[0]
    return str(version)


def compare_loom_spec_version(f: Any, v: str) -> int:
    """-1, 0 or 1 as the spec version of ``f`` (an open h5py.File) is older than, equal to or newer
    than ``v``.

    Versions are compared part by part (loompy concatenated the digits, so "3.10.0" came before
    "3.9.0").
    """
    mine = fmt.parse_spec_version(get_loom_spec_version(f))
    other = fmt.parse_spec_version(v)
    return (mine > other) - (mine < other)


def normalize_attr_array(a: Any) -> np.ndarray[Any, Any]:
    """Lists, tuples, ``np.matrix`` rows or columns, sparse matrices and pandas input as one ndarray."""
    if sparse.issparse(a):
        a = a.toarray()
    if isinstance(a, np.matrix):
        if 1 not in a.shape:
            msg = f"Attribute values must be 1-dimensional, got a matrix of shape {a.shape}"
            raise LoomValueError(msg)
        return np.asarray(a).ravel()
    return fmt.dense_array(a, "Attribute values")


def normalize_attr_strings(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Text values as ASCII bytes, non-ASCII characters as XML character references (what spec-2
    files hold), escaped reversibly (docs/input-rules.md)."""
    texts = fmt.normalize_values(a, "Attribute values")
    if texts.dtype.kind != "O":
        msg = f"String values must be text, not {texts.dtype}"
        raise LoomValueError(msg)
    return np.array([fmt.escape_legacy(v) for v in texts.ravel()], dtype=bytes).reshape(texts.shape)


def normalize_attr_values(a: Any, use_object_strings: bool = False) -> Any:
    """Values ready to be stored: numbers as they are, bools as uint8, text as an object array of
    ``str`` (``use_object_strings``, spec 3) or as escaped ASCII bytes (spec 2). A scalar gives a
    scalar. Mixtures of text, numbers and missing values become text, with a warning, as in
    :func:`loomfile.create`."""
    scalar = np.ndim(a) == 0 and not isinstance(a, np.ndarray | list | tuple)
    values = fmt.normalize_values(normalize_attr_array([a] if scalar else a), "Attribute values")
    if values.dtype.kind == "O" and not use_object_strings:
        values = np.array([fmt.escape_legacy(v) for v in values.ravel()], dtype=bytes).reshape(values.shape)
    return values[0] if scalar else values


def materialize_attr_values(a: Any) -> Any:
    """Values read from a file (h5py) as users get them: bytes decoded (UTF-8; XML character
    references from spec-2 files decoded), text as an object array of ``str``; numbers unchanged.
    A scalar gives a scalar."""
    if isinstance(a, bytes | np.bytes_ | str):
        return fmt.decode_text(a)
    if not isinstance(a, np.ndarray):
        return a
    if a.dtype.kind in "SUO":
        out = np.empty(a.shape, dtype=object)
        out.ravel()[:] = [
            fmt.decode_text(v) if isinstance(v, bytes | np.bytes_ | str) else v
            for v in a.ravel().tolist()
        ]
        return out
    return a
