"""The elements whose layout depends on the spec version, read and written as each version says.

One reader/writer per layout named in ``_format.versions.SpecVersion`` (where global attributes
live, how strings are encoded); ``LoomStore`` looks them up through the version of its file and
never branches on the version itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import h5py
import numpy as np

from .._format import spec as fmt
from .._format.versions import SpecVersion
from . import strings


class ElementStore(Protocol):
    """What an element writer needs of ``LoomStore`` (a protocol: the store imports this module)."""

    @property
    def h5(self) -> h5py.File: ...
    def _replace_dataset(self, path: str, **options: Any) -> None: ...
    def touch(self, path: str) -> None: ...


class Globals(Protocol):
    """Where one layout keeps the global attributes."""

    def names(self, h5: h5py.File) -> list[str]: ...
    def where(self, name: str) -> str: ...
    def has(self, h5: h5py.File, name: str) -> bool: ...
    def read(self, h5: h5py.File, name: str) -> tuple[Any, np.dtype[Any]]: ...
    def write(self, store: ElementStore, name: str, data: Any, dtype: Any) -> None: ...
    def delete(self, store: ElementStore, name: str) -> None: ...
    def create(self, h5: h5py.File, name: str, text: str) -> None: ...


class _GlobalDatasets:
    """Spec 3: one dataset per global attribute under ``/attrs``, stamped like other elements."""

    def names(self, h5: h5py.File) -> list[str]:
        return list(h5[fmt.GLOBALS_GROUP].keys())

    def where(self, name: str) -> str:
        return f"{fmt.GLOBALS_GROUP}/{name}"

    def has(self, h5: h5py.File, name: str) -> bool:
        return name in h5[fmt.GLOBALS_GROUP]

    def read(self, h5: h5py.File, name: str) -> tuple[Any, np.dtype[Any]]:
        dset = h5[fmt.GLOBALS_GROUP][name]
        return dset[()], dset.dtype

    def write(self, store: ElementStore, name: str, data: Any, dtype: Any) -> None:
        if data.ndim == 0 and dtype is strings.UTF8:
            data = data.item()
        store._replace_dataset(f"{fmt.GLOBALS_GROUP}/{name}", data=data, dtype=dtype)
        store.touch(fmt.GLOBALS_GROUP)

    def delete(self, store: ElementStore, name: str) -> None:
        del store.h5[fmt.GLOBALS_GROUP][name]
        store.touch(fmt.GLOBALS_GROUP)

    def create(self, h5: h5py.File, name: str, text: str) -> None:
        h5[fmt.GLOBALS_GROUP].create_dataset(name, data=text, dtype=strings.UTF8)


class _RootAttributes:
    """Spec 2: HDF5 attributes of the root group (beside its own ``last_modified`` stamp)."""

    def names(self, h5: h5py.File) -> list[str]:
        return [k for k in h5.attrs if k != fmt.TIMESTAMP_ATTR]

    def where(self, name: str) -> str:
        return f"the root group's attribute {name!r}"

    def has(self, h5: h5py.File, name: str) -> bool:
        return name in h5.attrs

    def read(self, h5: h5py.File, name: str) -> tuple[Any, np.dtype[Any]]:
        return h5.attrs[name], h5.attrs.get_id(name).dtype

    def write(self, store: ElementStore, name: str, data: Any, dtype: Any) -> None:
        h5 = store.h5
        h5.attrs.create(name, data, dtype=dtype)
        h5.attrs[fmt.TIMESTAMP_ATTR] = fmt.timestamp()

    def delete(self, store: ElementStore, name: str) -> None:
        del store.h5.attrs[name]

    def create(self, h5: h5py.File, name: str, text: str) -> None:
        h5.attrs[name] = np.bytes_(fmt.escape_legacy(text))


GLOBALS: dict[str, Globals] = {"datasets": _GlobalDatasets(), "root attributes": _RootAttributes()}

ENCODERS: dict[str, Callable[[np.ndarray[Any, Any]], tuple[Any, Any]]] = {
    "utf-8": strings.encode_utf8,
    "ascii": strings.encode_escaped_ascii,
}


def globals_of(spec: SpecVersion) -> Globals:
    return GLOBALS[spec.globals]


def encode(values: np.ndarray[Any, Any], spec: SpecVersion) -> tuple[Any, Any]:
    """(data, h5py dtype) to store normalized values in a file of version ``spec``."""
    return ENCODERS[spec.strings](values)


def initialize(h5: h5py.File, spec: SpecVersion) -> None:
    """Lay out an empty Loom file of version ``spec``: its groups, version and creation date."""
    for group in spec.groups:
        h5.require_group(group)
    where = globals_of(spec)
    where.create(h5, fmt.SPEC_VERSION_NAME, spec.version)
    where.create(h5, "CreationDate", fmt.timestamp())
    h5.attrs[fmt.TIMESTAMP_ATTR] = fmt.timestamp()
