"""Opening a Loom file for reading by path or URL: the store over it, checked first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py

from .._errors import LoomFormatError, LoomReadOnlyError
from .journal import locking_disabled, recover
from .remote import RemoteFile, is_url
from .store import LoomStore, open_h5
from .validate import StructureValidator


def open_store(
    url: str, mode: str, validate: bool, storage_options: Mapping[str, Any] | None = None
) -> LoomStore:
    """A read-only store over the Loom file at ``url`` (checked first with ``validate``)."""
    if mode != "r":
        msg = (
            f"Cannot open '{url}' in mode {mode!r}: files opened by URL are read-only; connect with mode='r'"
        )
        raise LoomReadOnlyError(msg)
    remote = RemoteFile(url, storage_options)
    try:
        h5 = h5py.File(remote.cursor(), "r")
    except OSError as e:
        remote.close()
        msg = f"'{url}' is not a readable HDF5/Loom file ({e})"
        raise LoomFormatError(msg) from e
    store = LoomStore(h5, url, remote=remote)
    if validate:
        try:
            _check(h5, url)
        except BaseException:
            store.close()
            raise
    return store


def _check(h5: h5py.File, url: str) -> None:
    """Raise :class:`LoomFormatError` listing the problems if the open file is not a usable Loom file."""
    validator = StructureValidator()
    try:
        validator.validate_spec(h5)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        validator.errors.append(f"the file's HDF5 metadata cannot be read ({e})")
    if validator.errors:
        msg = f"'{url}' is not a valid Loom file: {'; '.join(validator.errors)}"
        raise LoomFormatError(msg)


def open_for_reading(path: str, storage_options: Mapping[str, Any] | None, validate: bool) -> LoomStore:
    """A read-only store over the Loom file at ``path`` or URL, as a task of a dask array opens it:
    an interrupted write a dead process left is undone first (local files), and with ``validate``
    the structure is checked (see ``StructureValidator``)."""
    if is_url(path):
        return open_store(path, "r", validate, storage_options)
    if not locking_disabled():
        recover(path)
    if validate:
        StructureValidator().check(path)
    return LoomStore(open_h5(path, "r"), path)
