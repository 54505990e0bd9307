"""Nested AnnData ``uns`` entries (scanpy's ``neighbors``, ``pca``, ``leiden``, ``rank_genes_groups``)
as Loom global attributes, and back.

A Loom global attribute holds a number, a string or an array of them; a dict of those (nested
dicts, arrays, DataFrames) is stored as one JSON text that every Loom reader shows as a string::

    {"loomfile-uns": 1, "value": {"params": {"n_neighbors": 15}, "variance": {"ndarray": [...],
     "dtype": "<f4", "shape": [50]}}}

The wrapper says the text is ours, so :func:`decode` restores exactly the dict that was written
(arrays with their dtype and shape, structured arrays, DataFrames with their index) and leaves other
JSON text alone (SCENIC's ``MetaData`` stays a string, as anndata's read_loom gives it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._errors import LoomValueError

MARK = "loomfile-uns"
# The global attribute recording obs/var categoricals: {"obs": {column: {"categories": [...],
# "ordered": bool}}, "var": {...}}, written by from_anndata and read back by to_anndata
CATEGORIES = "loomfile-categories"
_PREFIX = '{"' + MARK + '":'


def needs_json(value: Any) -> bool:
    """Whether an uns entry is one a Loom attribute cannot hold as it is (a dict or a DataFrame)."""
    return isinstance(value, Mapping) or _is_frame(value)


def encode(value: Any, what: str) -> str:
    """``value`` as the JSON text described in the module docstring; LoomValueError naming the part
    of it that JSON cannot hold."""
    return json.dumps({MARK: 1, "value": _plain(value, what)}, ensure_ascii=False)


def decode(text: Any) -> Any:
    """The value :func:`encode` wrote, or ``text`` itself when it is not such a text."""
    if not isinstance(text, str) or not text.startswith(_PREFIX):
        return text
    try:
        wrapped = json.loads(text)
    except ValueError:
        return text
    if not isinstance(wrapped, dict) or wrapped.get(MARK) != 1 or "value" not in wrapped:
        return text
    return _restored(wrapped["value"])


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns") and hasattr(value, "index")


def _plain(value: Any, what: str) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                msg = f"{what} has the key {key!r}; JSON object keys are text"
                raise LoomValueError(msg)
            out[key] = _plain(item, f"{what}[{key!r}]")
        return {"dict": out}
    if _is_frame(value):
        columns = [str(c) for c in value.columns]
        return {
            "dataframe": {c: _plain(value[c].to_numpy(), f"{what}[{c!r}]") for c in columns},
            "columns": columns,
            "index": _plain(np.asarray(value.index), f"{what}.index"),
        }
    if isinstance(value, np.ndarray):
        return _array(value, what)
    if isinstance(value, np.generic):
        return _array(np.asarray(value), what)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return {type(value).__name__: [_plain(v, f"{what}[{i}]") for i, v in enumerate(value)]}
    msg = (
        f"{what} is a {type(value).__name__}, which loomfile cannot store in a Loom file; leave the "
        "entry out by naming the others (from_anndata(uns=[...]), or --uns on the command line)"
    )
    raise LoomValueError(msg)


def _array(value: np.ndarray, what: str) -> dict[str, Any]:
    if value.dtype.names is not None:
        return {
            "records": {name: _array(value[name], f"{what}[{name!r}]") for name in value.dtype.names},
            "names": list(value.dtype.names),
            "shape": list(value.shape),
        }
    kind = value.dtype.kind
    if kind in "biuf":
        return {"ndarray": value.tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if kind in "OUS":
        texts = [v.decode("utf-8") if isinstance(v, bytes) else v for v in value.ravel().tolist()]
        if not all(isinstance(t, str) for t in texts):
            kinds = sorted({type(t).__name__ for t in texts})
            msg = f"{what} is an array of {', '.join(kinds)}; loomfile stores arrays of numbers or of text"
            raise LoomValueError(msg)
        return {"ndarray": texts, "dtype": "str", "shape": list(value.shape)}
    msg = f"{what} is an array of {value.dtype}; loomfile stores arrays of numbers or of text"
    raise LoomValueError(msg)


def _field_dtype(values: np.ndarray) -> np.dtype[Any]:
    """A record field's dtype: text as fixed-width unicode wide enough for every value."""
    if values.dtype != object:
        return values.dtype
    return np.dtype(f"U{max((len(s) for s in values.ravel()), default=1)}")


def _restored(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "dict" in value:
        return {k: _restored(v) for k, v in value["dict"].items()}
    if "list" in value:
        return [_restored(v) for v in value["list"]]
    if "tuple" in value:
        return tuple(_restored(v) for v in value["tuple"])
    if "ndarray" in value:
        dtype = object if value["dtype"] == "str" else np.dtype(value["dtype"])
        flat = np.array(value["ndarray"], dtype=dtype).reshape(value["shape"])
        return flat[()] if flat.ndim == 0 else flat
    if "records" in value:
        fields = [(name, np.asarray(_restored(value["records"][name]))) for name in value["names"]]
        out = np.zeros(value["shape"], dtype=[(name, _field_dtype(a)) for name, a in fields])
        for name, a in fields:
            out[name] = a
        return out
    if "dataframe" in value:
        import pandas as pd

        columns = {c: _restored(value["dataframe"][c]) for c in value["columns"]}
        return pd.DataFrame(columns, index=_restored(value["index"]), columns=value["columns"])
    return value
