"""Row/column attributes (``ds.ra``, ``ds.ca``) and global attributes (``ds.attrs``).

The managers check and normalise what is written and give values their public form; the values
themselves live in a backend (``backends.py``): the file, or a dict in memory for a view. One class
per kind thus serves both, without asking which it holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import LoomKeyError, LoomValueError
from .._format import spec as fmt
from .._format.loompy_api import materialize_attr_values
from .._selection import AxisSelection, normalize_axis_key
from .._store.store import store_of
from .backends import ATTRIBUTES, GLOBALS, BackedMapping, Backend, backend_over

_AXIS_WORD = ("Row", "Column")
_NO_DEFAULT: Any = object()


def _loompy_style_values(ds: Any, axis: int) -> tuple[dict[str, np.ndarray], int]:
    """The attributes of a loompy-style ``ds`` (``shape`` and a ``_file`` mapping group paths to
    arrays), read into memory as loompy's ``materialize_attr_values`` reads them."""
    if not hasattr(ds, "_file") or not hasattr(ds, "shape"):
        msg = f"AttributeManager needs a connection or an object with '_file' and 'shape', not {type(ds).__name__}"
        raise LoomValueError(msg)
    group = ds._file[("/row_attrs/", "/col_attrs/")[axis]]
    values = {name: materialize_attr_values(np.asarray(group[name][:])) for name in group}
    return values, int(ds.shape[axis])


class AttributeManager(BackedMapping[np.ndarray]):
    """Row (axis 0) or column (axis 1) attributes: a dict of arrays, one value per row/column.

    Values always come back as ``np.ndarray`` (strings as object arrays of ``str``) and are read
    and written whole: mutating a returned array never changes the file.

    Examples
    --------
    >>> ds.ca.ClusterID = labels          # create or replace
    >>> ds.ra["Gene", "Accession"]        # stack two attributes into an (N, 2) array
    >>> del ds.ca.Outliers
    """

    _fields = frozenset({"_backend", "_axis"})

    def __init__(
        self,
        ds: Any,
        axis: int,
        *,
        values: dict[str, np.ndarray] | None = None,
        length: int = 0,
    ) -> None:
        """``ds``: a connection (loomfile's or loompy's), a LoomStore, or, as in loompy's unit tests,
        any object with a ``shape`` and a ``_file`` mapping "/row_attrs/" and "/col_attrs/" to
        arrays (read into memory); None with ``values`` for attributes in memory."""
        store = store_of(ds)
        if ds is not None and store is None:
            values, length = _loompy_style_values(ds, axis)
        self._axis = axis
        self._backend: Backend[np.ndarray] = backend_over(store, ATTRIBUTES, axis, values, length)

    @classmethod
    def in_memory(cls, axis: int, values: dict[str, np.ndarray], length: int) -> AttributeManager:
        """Attributes that live in memory only (the attributes of a view)."""
        return cls(None, axis, values=values, length=length)

    @property
    def _kind(self) -> str:  # type: ignore[override]
        return f"{_AXIS_WORD[self._axis].lower()} attribute"

    @property
    def axis(self) -> int:
        return self._axis

    def _set(self, name: str, value: Any) -> None:
        fmt.check_name(f"{_AXIS_WORD[self._axis]} attribute", name)
        self._backend.require_writable(f"write {self._kind} {name!r}")
        values = fmt.normalize_values(value, f"{_AXIS_WORD[self._axis]} attribute {name!r}")
        n = self._n()
        if values.shape[0] != n and self._backend.fixed_length:
            msg = (
                f"{_AXIS_WORD[self._axis]} attribute {name!r} has {values.shape[0]} values; "
                f"the file has {n} {fmt.AXIS_NAMES[self._axis]}s"
            )
            raise LoomValueError(msg)
        self._backend.set(name, values)

    def __getitem__(self, key: Any) -> Any:
        """An attribute by name; several names stacked; or, for an index, a sliced copy of all."""
        if isinstance(key, str):
            return super().__getitem__(key)
        if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
            return self._stack(key)
        return self._select(normalize_axis_key(key, self._n(), self._axis))

    def _stack(self, names: tuple[str, ...]) -> np.ndarray:
        found = [self[name] for name in names if name in self]
        if not found:
            msg = f"None of the {self._kind}s {list(names)} exist"
            raise LoomKeyError(msg)
        if len(found) == 1:
            return found[0]
        dtypes = {a.dtype for a in found}
        if len(dtypes) > 1:
            msg = f"Cannot stack {self._kind}s of different types ({', '.join(map(str, dtypes))})"
            raise LoomKeyError(msg)
        return np.column_stack(found)

    def _select(self, selection: AxisSelection) -> AttributeManager:
        """In-memory attributes restricted to ``selection`` (used by views)."""
        if selection.drop:  # an int index: each attribute's value at that position, as loompy
            one = {name: self._get(name)[selection.indices[0]] for name in self._names()}
            return AttributeManager.in_memory(self._axis, one, 1)
        values = {name: self._get(name)[selection.indices] for name in self._names()}
        return AttributeManager.in_memory(self._axis, values, selection.size)

    def get(self, name: str, default: Any = _NO_DEFAULT) -> Any:
        """The named attribute, or ``default`` (checked, as loompy does, to be an array with one
        value per row/column); without a default, None."""
        if name in self:
            return self[name]
        if default is _NO_DEFAULT:
            return None
        if default is None:
            msg = f"Default for {self._kind} {name!r} must be an array of {self._n()} values, not None"
            raise LoomValueError(msg)
        values = np.asarray(default)
        if values.ndim == 0 or values.shape[0] != self._n():
            msg = f"Default for {self._kind} {name!r} must have {self._n()} values, got shape {values.shape}"
            raise LoomValueError(msg)
        return values

    def last_modified(self, name: str | None = None) -> str:
        """When the attribute (or, without a name, any attribute of this axis) was last changed."""
        return self._backend.last_modified(name)

    def _permute(self, ordering: np.ndarray) -> None:
        for name in self._names():
            self[name] = self._get(name)[ordering]


class GlobalAttributeManager(BackedMapping[Any]):
    """File-level attributes (``ds.attrs``): scalars or arrays of numbers or strings.

    Spec-3 files keep them as datasets under ``/attrs``; older files as HDF5 attributes on the root
    group. Writes go to the place the file already uses.
    """

    _fields = frozenset({"_backend"})
    _kind = "global attribute"

    def __init__(self, f: Any, *, values: dict[str, Any] | None = None) -> None:
        """``f``: a LoomStore, a connection, or (as loompy builds it) an open h5py file; None with
        ``values`` for global attributes in memory."""
        store = store_of(f)
        if f is not None and store is None:
            msg = f"GlobalAttributeManager needs an h5py file or a connection, not {type(f).__name__}"
            raise LoomValueError(msg)
        self._backend: Backend[Any] = backend_over(store, GLOBALS, 0, values, 0)

    @classmethod
    def in_memory(cls, values: dict[str, Any]) -> GlobalAttributeManager:
        return cls(None, values=values)

    def _set(self, name: str, value: Any) -> None:
        fmt.check_name("Global attribute", name)
        self._backend.require_writable(f"write global attribute {name!r}")
        normalized = fmt.normalize_values(value, f"Global attribute {name!r}", allow_scalar=True)
        self._backend.set(name, normalized)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def snapshot(self) -> GlobalAttributeManager:
        """An in-memory copy (views keep the file's global attributes this way)."""
        return GlobalAttributeManager.in_memory({name: self._get(name) for name in self._names()})
