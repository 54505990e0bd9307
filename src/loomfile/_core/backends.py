"""Where a manager's named values live: in the file (through the LoomStore) or in a dict in memory.

A manager (``attributes.py``, ``graphs.py``) checks and normalises what users write and gives
values their public shape; a backend only keeps named values. So one manager class per kind
serves a connection (file) and a view (memory) alike, without asking which it holds.

What differs between row/column attributes, graphs and global attributes is described once, by
an :class:`ElementKind` (the store calls that read and write them, their paths in the file, how
memory keeps them, whether file reads are cached), and both backends take one: the file backend is
written once, not once per kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import scipy.sparse as sparse

from .._errors import LoomFormatError
from .._format import spec as fmt
from .._store.changes import META
from .._store.store import LoomStore
from .mapping import NamedMapping

V = TypeVar("V")


class Backend(Protocol[V]):
    """Named values along one axis (or, for global attributes, of the whole file).

    Values are handed over as the manager made them and come back as the caller's own: mutating
    what ``get`` returns never changes what is kept.
    """

    @property
    def n(self) -> int:
        """The length of the axis (rows or columns): an attribute's number of values."""
        ...

    @property
    def fixed_length(self) -> bool:
        """False while a file has no main matrix: its attributes may then have any length."""
        ...

    def names(self) -> list[str]:
        """The names, in the order they are kept (the file's order)."""
        ...

    def get(self, name: str) -> V:
        """The named value, a copy the caller may change."""
        ...

    def held(self, name: str) -> V | None:
        """The value as kept in memory (shared: never to be changed), or None when it would have to
        be read. Lets a manager index a value once and reuse the index until the value is replaced."""
        ...

    def set(self, name: str, value: V) -> None:
        """Create or replace ``name`` with a value the manager has already checked."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name`` (the manager has checked that it exists)."""
        ...

    def require_writable(self, action: str) -> None:
        """Raise if values cannot be written (a file open read-only), before any work is done;
        ``action`` is what the error says could not be done."""
        ...

    def last_modified(self, name: str | None = None) -> str:
        """When ``name`` (or, without a name, any value of this kind) last changed."""
        ...


# --- the element kinds ------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    """A copy of an array or sparse matrix; scalars (an int-indexed view's values) are immutable."""
    return value.copy() if isinstance(value, np.ndarray) or sparse.issparse(value) else value


def _as_kept(value: Any) -> Any:
    return value


def _as_read_back(value: np.ndarray) -> Any:
    """A global attribute kept in memory as reading it from a file gives it: 0-d as a scalar."""
    return value.item() if value.ndim == 0 else value


@dataclass(frozen=True)
class ElementKind(Generic[V]):
    """What a backend needs to know about the values it keeps: how the store reads, writes and
    deletes them and where they are in the file (``axis`` is ignored for global attributes), how
    memory keeps a written value so that it reads back as from a file, and whether file reads are
    cached (attributes are read whole and often, graphs rarely)."""

    label: str  # "attr", "graph" or "global"
    names: Callable[[LoomStore, int], list[str]]
    read: Callable[[LoomStore, int, str], V]
    write: Callable[[LoomStore, int, str, V], None]
    delete: Callable[[LoomStore, int, str], None]
    path: Callable[[int, str | None], str]  # the value's path, or without a name its group's
    cached: bool = False
    keep: Callable[[V], V] = _as_kept


def _attr_path(axis: int, name: str | None) -> str:
    return fmt.ATTR_GROUPS[axis] if name is None else fmt.attr_path(axis, name)


ATTRIBUTES: ElementKind[np.ndarray] = ElementKind(
    label="attr",
    names=LoomStore.attr_names,
    read=LoomStore.read_attr,
    write=LoomStore.write_attr,
    delete=LoomStore.delete_attr,
    path=_attr_path,
    cached=True,
)


def _read_graph(store: LoomStore, axis: int, name: str) -> sparse.coo_matrix:
    """A graph's a, b, w vectors as a matrix, after checking that they fit the axis."""
    a, b, w = store.read_graph(axis, name)
    n = store.shape[axis]
    kind = f"{fmt.AXIS_NAMES[axis]} graph"
    if not (a.shape == b.shape == w.shape):
        msg = f"{kind} {name!r} has vectors a, b, w of different lengths"
        raise LoomFormatError(msg)
    for vec in (a, b):
        if vec.size and (vec.min() < 0 or vec.max() >= n):
            msg = f"{kind} {name!r} has vertex ids outside 0..{n - 1}"
            raise LoomFormatError(msg)
    return sparse.coo_matrix((w, (a, b)), shape=(n, n))


def _write_graph(store: LoomStore, axis: int, name: str, g: sparse.coo_matrix) -> None:
    store.write_graph(axis, name, g.row, g.col, g.data)


def _graph_path(axis: int, name: str | None) -> str:
    return fmt.GRAPH_GROUPS[axis] if name is None else fmt.graph_path(axis, name)


GRAPHS: ElementKind[sparse.coo_matrix] = ElementKind(
    label="graph",
    names=LoomStore.graph_names,
    read=_read_graph,
    write=_write_graph,
    delete=LoomStore.delete_graph,
    path=_graph_path,
)


def _global_names(store: LoomStore, axis: int) -> list[str]:
    return store.global_names()


def _read_global(store: LoomStore, axis: int, name: str) -> Any:
    return store.read_global(name)


def _write_global(store: LoomStore, axis: int, name: str, value: Any) -> None:
    store.write_global(name, value)


def _delete_global(store: LoomStore, axis: int, name: str) -> None:
    store.delete_global(name)


def _global_path(axis: int, name: str | None) -> str:
    return fmt.GLOBALS_GROUP if name is None else f"{fmt.GLOBALS_GROUP}/{name}"


GLOBALS: ElementKind[Any] = ElementKind(
    label="global",
    names=_global_names,
    read=_read_global,
    write=_write_global,
    delete=_delete_global,
    path=_global_path,
    keep=_as_read_back,
)


# --- the backends -----------------------------------------------------------------------------------


class StoreBackend(Generic[V]):
    """Values of one kind along one axis of a file. The store checks names and writability again
    and stamps timestamps.

    Cached kinds keep each value as first read. The cache is only as good as the file it was read
    from, so it notes the store's change-log generation and is emptied when attributes, graphs or
    global attributes changed since by any other way than this backend's own writes: a write
    through another manager over the same store, or a transaction rolled back (which puts the old
    values back in the file).
    """

    def __init__(self, store: LoomStore, kind: ElementKind[V], axis: int = 0) -> None:
        self.store = store
        self.kind = kind
        self.axis = axis
        self._cache: dict[str, V] = {}
        self._generation = store.changes.generation

    def _fresh_cache(self) -> dict[str, V]:
        changes = self.store.changes
        now = changes.generation  # (read first: a change recorded meanwhile is found again next time)
        if changes.changed_since(self._generation, (META,)):
            self._cache.clear()
        self._generation = now
        return self._cache

    @property
    def n(self) -> int:
        return self.store.shape[self.axis]

    @property
    def fixed_length(self) -> bool:
        return self.store.shape != (0, 0)

    def names(self) -> list[str]:
        return self.kind.names(self.store, self.axis)

    def get(self, name: str) -> V:
        if not self.kind.cached:
            return self.kind.read(self.store, self.axis, name)  # (a fresh read is the caller's own)
        cache = self._fresh_cache()
        if name not in cache:
            cache[name] = self.kind.read(self.store, self.axis, name)
        return _copy(cache[name])

    def held(self, name: str) -> V | None:
        return self._fresh_cache().get(name)

    def set(self, name: str, value: V) -> None:
        self._changing(name, lambda: self.kind.write(self.store, self.axis, name, value))

    def delete(self, name: str) -> None:
        self._changing(name, lambda: self.kind.delete(self.store, self.axis, name))

    def _changing(self, name: str, change: Callable[[], None]) -> None:
        """Make a change to ``name``: its cached value goes, and the others stay valid when the
        change succeeds (it was the only one). When it fails, the store has rolled it back, and
        the next read finds the generation moved on and starts afresh."""
        self._fresh_cache().pop(name, None)
        change()
        self._generation = self.store.changes.generation

    def require_writable(self, action: str) -> None:
        self.store.require_writable(action)

    def last_modified(self, name: str | None = None) -> str:
        return self.store.timestamp_of(self.kind.path(self.axis, name)) or fmt.timestamp()

    def __repr__(self) -> str:
        return f"<StoreBackend {self.kind.label} axis={self.axis} of {self.store.path!r}>"


class MemoryBackend(Generic[V]):
    """Values of one kind in a dict (a view's, or what loompy's unit tests hand a manager), along an
    axis of ``length``. The dict is the caller's: writes go into it. Nothing is ever read-only and
    nothing carries a timestamp, so ``last_modified`` is now."""

    def __init__(self, kind: ElementKind[V], values: dict[str, V], length: int = 0) -> None:
        self.kind = kind
        self.values = values
        self.length = length

    @property
    def n(self) -> int:
        return self.length

    @property
    def fixed_length(self) -> bool:
        return True

    def names(self) -> list[str]:
        return list(self.values)

    def get(self, name: str) -> V:
        return _copy(self.values[name])

    def held(self, name: str) -> V | None:
        return self.values[name]

    def set(self, name: str, value: V) -> None:
        self.values[name] = self.kind.keep(value)

    def delete(self, name: str) -> None:
        del self.values[name]

    def require_writable(self, action: str) -> None:
        return None

    def last_modified(self, name: str | None = None) -> str:
        return fmt.timestamp()

    def __repr__(self) -> str:
        return f"<MemoryBackend {self.kind.label} {list(self.values)} length={self.length}>"


def backend_over(
    store: LoomStore | None, kind: ElementKind[V], axis: int, values: dict[str, V] | None, length: int
) -> Backend[V]:
    """The file's values when there is a store, else ``values`` (empty if None) in memory."""
    if store is not None:
        return StoreBackend(store, kind, axis)
    return MemoryBackend(kind, {} if values is None else values, length)


class BackedMapping(NamedMapping[V]):
    """A manager whose values live in a backend: names, values, deletion and the length along the
    axis come from it; subclasses check and normalise what is written (``_set``)."""

    _backend: Backend[V]

    def _n(self) -> int:
        return self._backend.n

    def _names(self) -> list[str]:
        return self._backend.names()

    def _get(self, name: str) -> V:
        return self._backend.get(name)

    def _delete(self, name: str) -> None:
        self._backend.delete(name)
