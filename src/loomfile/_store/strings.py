"""Strings as HDF5 stores them: the string dtypes of datasets and attributes, and their decoding.

Which string dtype a dataset declares (h5py's variable-length UTF-8 or ASCII, fixed-length bytes)
decides how its values are decoded, so these rules live beside the file, in the storage layer; the
text rules themselves (UTF-8, the XML character references of spec-2 files) are in ``_format.spec``.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from .._format import spec as fmt

UTF8 = h5py.string_dtype("utf-8")


def _is_ascii_declared(dtype: np.dtype[Any]) -> bool:
    info = h5py.check_string_dtype(dtype)
    return info is not None and info.encoding == "ascii"


def decode_string_array(raw: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """Decode a string dataset's values into an object array of ``str``.

    Strings declared ASCII (spec 2 fixed-length, loomR variable-length) may carry XML character
    references; strings declared UTF-8 are taken as they are.
    """
    flat = raw.ravel().tolist()
    # (decode_bytes, inlined: the same text for valid UTF-8, and the same escapes for the rest)
    texts = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v) for v in flat]
    if _is_ascii_declared(dtype):
        texts = [fmt.unescape_char_refs(t) if "&#" in t else t for t in texts]
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out.reshape(raw.shape)


def decode_scalar_string(value: object, dtype: np.dtype[Any] | None) -> str:
    if dtype is None:
        return fmt.decode_text(value)
    text = fmt.decode_bytes(bytes(value)) if isinstance(value, bytes | np.bytes_) else str(value)
    if dtype.kind == "S" or _is_ascii_declared(dtype):
        return fmt.unescape_char_refs(text)
    return text


def is_string_dtype(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "SU" or h5py.check_string_dtype(dtype) is not None


def decode_values(raw: Any, dtype: np.dtype[Any]) -> Any:
    """Values read from a dataset or HDF5 attribute, in the form users get them."""
    if isinstance(raw, np.ndarray):
        if is_string_dtype(dtype) or (raw.dtype.kind == "O" and raw.size and isinstance(raw.flat[0], bytes)):
            return decode_string_array(raw, dtype)
        return raw
    if isinstance(raw, bytes | np.bytes_ | str):
        return decode_scalar_string(raw, dtype)
    return raw


def encode_utf8(values: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """(data, h5py dtype) to store normalized values, strings as variable-length UTF-8 (spec 3)."""
    if values.dtype.kind != "O":
        return values, values.dtype
    return values, UTF8


def encode_escaped_ascii(values: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    """(data, h5py dtype) to store normalized values, strings as fixed-length ASCII with the other
    characters as XML character references (spec 2, reversibly: see ``escape_legacy``)."""
    if values.dtype.kind != "O":
        return values, values.dtype
    flat = [fmt.escape_legacy(v) for v in values.ravel()]
    encoded = np.array(flat, dtype=bytes).reshape(values.shape) if flat else np.zeros(values.shape, "S1")
    return encoded, encoded.dtype
