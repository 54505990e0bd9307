"""The connection object model, and the functions that open or create Loom files.

``Connection`` holds a store and the managers over it; the public ``LoomConnection``
(``_api.connection``) adds the operations as methods. ``connect``/``new`` here return a
``Connection`` (what operations and importers use), or the class they are given."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
import scipy.sparse as sparse

from .. import _progress
from .._errors import LoomFormatError, LoomLockedError, LoomNotFoundError, LoomReadOnlyError, LoomValueError
from .._format import spec as fmt
from .._format.names import transposed
from .._selection import check_ordering
from .._store import opening as _opening
from .._store import remote as _remote
from .._store.journal import Durability, durability_of, locking_disabled, recover, replace
from .._store.store import LoomStore, Writable, open_h5, open_journaled
from .._warn import warn_caller
from .attributes import AttributeManager, GlobalAttributeManager
from .graphs import GraphManager
from .html import to_html
from .layers import LayerManager, check_layer_value
from .validate import LoomValidator
from .view import View, ViewManager

Mode = Literal["r", "r+"]
LOCK_POLL_SECONDS = 0.05  # connect(timeout=...): how often a locked file is tried again
C = TypeVar("C", bound="Connection")


class Connection:
    """A connection to a Loom file: layers, attributes, graphs and views (the object model, without
    the operations of :class:`loomfile.LoomConnection`).

    Use it as a context manager::

        with loomfile.connect("data.loom") as ds:
            print(ds.shape, ds.ca.keys())
    """

    _view_class: type[View] = View  # what ds.view[...] and scans make (LoomConnection: LoomView)

    def __init__(
        self,
        filename: str,
        mode: Mode | None = None,
        *,
        validate: bool | Literal["full"] = True,
        storage_options: Mapping[str, Any] | None = None,
        durability: Durability | None = None,
    ) -> None:
        if mode not in ("r", "r+", None):
            msg = f"Mode must be either 'r' or 'r+', not {mode!r}"
            raise LoomValueError(msg)
        level = durability_of(durability)
        filename = os.fspath(filename)
        if _remote.is_url(filename):
            self._attach(filename, _opening.open_store(filename, mode or "r", bool(validate), storage_options))
            return
        if os.path.isfile(filename) and (mode != "r" or not locking_disabled()):
            # A write a dead process left half done is undone first (see _store.journal). Without file
            # locks a live writer's journal looks the same: then only a writer (mode "r+") undoes it.
            recover(filename)
        if validate:
            LoomValidator().check(filename, deep=validate == "full")
        if mode == "r+":
            h5, journal = open_journaled(filename, level)
            self._attach(filename, LoomStore(h5, filename, journal))
        else:  # read-only; without a mode, for writing too, from the first write on (see connect)
            store = LoomStore(open_h5(filename, "r"), filename)
            if mode is None:
                store.allow_writes(lambda: _reopen_for_writing(filename, level))
            self._attach(filename, store)
        if transposed(self.ra.keys(), self.ca.keys()):
            warn_caller(
                f"'{filename}' looks transposed: its rows carry cell names and its columns gene names "
                "(Loom keeps genes in rows, cells in columns). Tools reading it as Loom will swap them"
            )

    @classmethod
    def _to_new_file(cls: type[C], filename: str) -> C:
        """A connection to a file this process has just created under a temporary name (new()):
        written without a journal, since a failure discards the whole file."""
        ds = cls.__new__(cls)
        ds._attach(filename, LoomStore(open_h5(filename, "r+"), filename))
        return ds

    def _attach(self, filename: str, store: LoomStore) -> None:
        self.filename = filename
        self._store = store
        self._commit: Callable[[], None] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.layers = LayerManager(self._store)
        self.ra = AttributeManager(self._store, 0)
        self.ca = AttributeManager(self._store, 1)
        self.attrs = GlobalAttributeManager(self._store)
        self.row_graphs = GraphManager(self._store, 0)
        self.col_graphs = GraphManager(self._store, 1)
        # loompy's aliases
        self.layer = self.layers
        self.row_attrs = self.ra
        self.col_attrs = self.ca

    # --- state ------------------------------------------------------------------------------------

    @property
    def view(self) -> ViewManager:
        """``ds.view[rows, cols]``: an in-memory :class:`LoomView`. (Made on demand: a stored one
        would be a reference cycle, keeping a dropped connection's file open until the garbage
        collector ran.)"""
        return ViewManager(self)

    @property
    def shape(self) -> tuple[int, int]:
        """(number of rows, number of columns) of the main matrix."""
        return self._store.shape

    @property
    def mode(self) -> str:
        """'r' (read-only) or 'r+' (writable: connected without a mode, the file is reopened for
        writing at the first write)."""
        return "r+" if self._store.writable else "r"

    @property
    def closed(self) -> bool:
        return self._store.closed

    def close(self, suppress_warning: bool = False) -> None:
        """Close the connection (a second call does nothing)."""
        if self._store.closed:
            return
        self._store.close()
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._commit is not None:
            commit, self._commit = self._commit, None
            commit()

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._store.closed:
            return
        if exc_type is None and self._commit is not None and 0 in self.shape:
            self._abandon()
            msg = f"The new file '{self.filename}' was left empty; nothing was written"
            raise LoomValueError(msg)
        if exc_type is not None and self._commit is not None:
            self._abandon()
            return
        self.close()

    def _abandon(self) -> None:
        """Drop a file created by ``new`` without putting it in place."""
        self._store.close()
        if self._finalizer is not None:
            self._finalizer()
        self._commit = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.shape[0]} x {self.shape[1]}, mode={self.mode!r}"
        return f"<LoomConnection '{self.filename}' {state}>"

    def _repr_html_(self) -> str:
        if self.closed:
            return "This LoomConnection has been closed"
        return to_html(self)

    # --- matrix access ------------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        """``ds[rows, cols]`` reads the main matrix; ``ds["name"]`` returns a layer."""
        if isinstance(key, str):
            return self.layers[key]
        return self.layers[""][key]

    def __setitem__(self, key: Any, value: Any) -> None:
        """``ds[rows, cols] = values`` writes the main matrix; ``ds["name"] = m`` sets a layer."""
        if isinstance(key, str):
            self.layers[key] = value
        else:
            self.layers[""][key] = value

    def __delitem__(self, name: str) -> None:
        del self.layers[name]

    def sparse(self, rows: Any = None, cols: Any = None, layer: str | None = None) -> sparse.coo_matrix:
        """The main matrix (or ``layer``) as a ``scipy.sparse.coo_matrix``, optionally sliced."""
        return self.layers["" if layer is None else layer].sparse(rows=rows, cols=cols)

    def to_dask(self, layer: str = "", *, axis: int = 1, block: int | None = None) -> Any:
        """The main matrix (or ``layer``) as a lazy ``dask.array`` (see :meth:`LoomLayer.to_dask`)."""
        return self.layers[layer].to_dask(axis=axis, block=block)

    # --- timestamps ---------------------------------------------------------------------------------

    def last_modified(self) -> str:
        """When the file was last modified (compact ISO 8601, UTC). Reading never writes a stamp."""
        stamp = self._store.timestamp_of("/")
        if stamp is None and "last_modified" in self.attrs:
            stamp = str(self.attrs["last_modified"])
        return stamp or fmt.timestamp()

    def get_changes_since(self, timestamp: str) -> dict[str, list[str]]:
        """Names of the layers, attributes and graphs modified after ``timestamp``."""
        timestamp = fmt.check_timestamp(timestamp)
        managers: dict[str, Any] = {
            "row_graphs": self.row_graphs,
            "col_graphs": self.col_graphs,
            "row_attrs": self.ra,
            "col_attrs": self.ca,
            "layers": self.layers,
        }
        changes: dict[str, list[str]] = {key: [] for key in managers}
        if self.last_modified() <= timestamp:
            return changes
        for key, manager in managers.items():
            changes[key] = [name for name in manager.keys() if manager.last_modified(name) > timestamp]
        return changes

    # --- operations on the object model (the others are LoomConnection's) -----------------------

    def map(
        self,
        f_list: Sequence[Callable[[np.ndarray], Any]],
        *,
        axis: int = 0,
        chunksize: int = 1000,
        selection: Any = None,
        progress: bool | None = None,
    ) -> list[np.ndarray]:
        """Apply each function to every row (axis 0) or column (axis 1) of the main matrix.

        Returns one array per function: ``(means,) = ds.map([np.mean], axis=1)``.
        """
        return self.layers[""].map(f_list, axis, chunksize, selection, progress=progress)

    def permute(self, ordering: Any, axis: int, *, progress: bool | None = None) -> None:
        """Reorder rows (axis 0) or columns (axis 1) of every layer, attribute and graph.

        ``progress``: show a bar (default: when standard error is a terminal; see ``_progress``).
        """
        if axis not in (0, 1):
            msg = f"axis must be 0 (rows) or 1 (columns), not {axis!r}"
            raise LoomValueError(msg)
        self._store.require_writable("permute")
        order = check_ordering(ordering, self.shape[axis], axis)
        work = len(self.layers.keys()) * self.shape[1 - axis]
        with self._store.transaction(), _progress.bar(work, "permute", progress, "vectors") as tick:
            self.layers._permute(order, axis=axis, tick=tick)
            (self.ra if axis == 0 else self.ca)._permute(order)
            (self.row_graphs if axis == 0 else self.col_graphs)._permute(order)


# --- opening and creating ------------------------------------------------------------------------------


def _reopen_for_writing(filename: str, level: Durability) -> Writable:
    """The file reopened through a rollback journal, with the write lock (a connection opened
    without a mode, at its first write)."""
    recover(filename)
    try:
        return open_journaled(filename, level)
    except PermissionError as e:
        msg = f"Cannot write to '{filename}': this process may not write to it ({e.strerror}); reading works"
        raise LoomReadOnlyError(msg) from None


def connect(
    filename: str | os.PathLike[str],
    mode: Mode | None = None,
    *,
    validate: bool | Literal["full"] = True,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float = 0,
    durability: Durability | None = None,
    cls: type[Connection] = Connection,
) -> Connection:
    """Open a Loom file as a ``cls`` (every parameter: :func:`loomfile.connect`)."""
    level = durability_of(durability)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return cls(
                os.fspath(filename), mode, validate=validate, storage_options=storage_options, durability=level
            )
        except LoomLockedError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(LOCK_POLL_SECONDS, left))


def _temp_path(target: str) -> str:
    """A new empty file beside ``target``, to be renamed over it when complete. Created with the
    usual permissions (0666 less the umask, as h5py would create the target), not mkstemp's 0600."""
    directory = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        msg = f"'{target}' is a directory; give the path of a file to write"
        raise LoomFormatError(msg)  # (an OSError, as the IsADirectoryError loompy let through)
    if not os.path.isdir(directory):
        msg = f"Cannot write '{target}': the folder '{directory}' does not exist"
        raise LoomNotFoundError(msg)
    while True:
        path = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.contextmanager
def written_aside(target: str, durability: Durability | None = None) -> Iterator[str]:
    """A temporary path beside ``target`` to write; renamed over ``target`` when the block ends
    normally, removed if it raises (so ``target`` is never half-written, even by a power cut with
    durability "full": see ``_store.journal.replace``). The file at the path must be closed by then."""
    level = durability_of(durability)
    tmp = _temp_path(target)
    try:
        yield tmp
        replace(tmp, target, level)
    except BaseException:
        _discard(tmp)
        raise


def new(
    filename: str | os.PathLike[str],
    *,
    file_attrs: Mapping[str, Any] | None = None,
    durability: Durability | None = None,
    cls: type[Connection] = Connection,
) -> Connection:
    """A new empty Loom file, as a ``cls`` open for writing (every parameter: :func:`loomfile.new`)."""
    level = durability_of(durability)
    target = os.path.expanduser(os.fspath(filename))
    attrs = dict(file_attrs or {})
    for name, value in attrs.items():
        fmt.check_name("Global attribute", name)
        fmt.normalize_values(value, f"Global attribute {name!r}", allow_scalar=True)
    tmp = _temp_path(target)
    try:
        LoomStore.create_empty(tmp)
        ds = cls._to_new_file(tmp)
        for name, value in attrs.items():
            ds.attrs[name] = value
    except BaseException:
        _discard(tmp)
        raise
    ds.filename = target

    def commit() -> None:
        replace(tmp, target, level)

    ds._commit = commit
    ds._finalizer = weakref.finalize(ds, _discard, tmp)
    return ds


def create(
    filename: str | os.PathLike[str],
    layers: Any,
    row_attrs: Mapping[str, Any],
    col_attrs: Mapping[str, Any],
    *,
    file_attrs: Mapping[str, Any] | None = None,
    durability: Durability | None = None,
) -> None:
    """Create a Loom file from a matrix (dense or scipy.sparse) or a dict of layers ("" required).

    Every input is checked before anything is written; the file appears at ``filename`` only once
    it is complete (an existing file there stays untouched if anything fails). ``durability``: as in
    :func:`connect` (``"full"``: synced before and after it is renamed into place).

    Examples
    --------
    >>> loomfile.create("test.loom", np.arange(10000).reshape(100, 100),
    ...                 {"Gene": genes}, {"CellID": cells})
    """
    layer_dict = dict(layers) if isinstance(layers, Mapping | LayerManager) else {"": layers}
    if isinstance(layers, LayerManager):
        layer_dict = {k: layers[k] for k in layers.keys()}
    if "" not in layer_dict:
        msg = "Data for the main matrix (layer '') must be provided"
        raise LoomValueError(msg)
    shape, _ = check_layer_value(layer_dict[""], "", None)
    for name, value in layer_dict.items():
        fmt.check_name("Layer", name, allow_empty=True)
        if isinstance(value, str):
            continue
        check_layer_value(value, name, shape)
    checked: list[tuple[int, str, np.ndarray]] = []
    for axis, attrs in ((0, row_attrs), (1, col_attrs)):
        word = ("Row", "Column")[axis]
        for name, values in dict(attrs).items():
            fmt.check_name(f"{word} attribute", name)
            arr = fmt.normalize_values(values, f"{word} attribute {name!r}")
            if arr.shape[0] != shape[axis]:
                msg = (
                    f"{word} attribute {name!r} has {arr.shape[0]} values; "
                    f"the matrix has {shape[axis]} {fmt.AXIS_NAMES[axis]}s"
                )
                raise LoomValueError(msg)
            checked.append((axis, name, arr))
    ds = new(filename, file_attrs=file_attrs, durability=durability)
    try:
        ds.layers[""] = layer_dict[""]
        for name, value in layer_dict.items():
            if name != "":
                ds.layers[name] = value
        for axis, name, arr in checked:
            (ds.ra if axis == 0 else ds.ca)[name] = arr
    except BaseException:
        ds._abandon()
        raise
    ds.close()
