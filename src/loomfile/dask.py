"""Scaling out on Dask: ``map`` and ``scan`` in parallel tasks, and layers as ``dask.array`` s.

loomfile schedules nothing here: the work is cut into tasks and handed to a Dask scheduler (threads,
processes, or a ``dask.distributed`` cluster). Every task opens the file by its path or URL, reads
read-only through the chunk engine and returns a small result; so tasks run in worker processes, or
on other machines that see the same file (a shared file system, or object storage: see
``_store.remote``). Each task covers a whole number of chunk rows or columns (no chunk is decoded twice
over the cluster), about dask's ``array.chunk-size`` of the layer's values unless told otherwise.

Needs ``pip install 'loomfile[dask]'``; dask is imported only when these functions run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ._api.connection import LoomConnection, connect
from ._core.layers import check_map_args
from ._core.lazy import Options, blocks_of, chunk_parts, import_dask, layer_array
from ._errors import LoomValueError
from ._ops import scan as _scan
from ._ops.scan import SCAN_WHAT
from ._selection import AxisSelection

__all__ = ["layer_array", "map", "scan"]



def _open(path: str, storage_options: Options, validate: bool = False) -> LoomConnection:
    """A read-only connection, as a task opens it (the caller validated the file once)."""
    return connect(path, "r", validate=validate, storage_options=storage_options)


def _compute(tasks: Sequence[Any], client: Any) -> list[Any]:
    """Compute delayed tasks on ``client`` (a distributed Client or a scheduler name) or dask's default."""
    return list(import_dask().compute(*tasks, scheduler=client))


# --- map ------------------------------------------------------------------------------------------


def _map_part(
    path: str,
    layer: str,
    f_list: Sequence[Callable[[np.ndarray], Any]],
    axis: int,
    selection: Any,
    part: slice,
    storage_options: Options,
) -> list[np.ndarray]:
    """One task of ``map``: the functions on the rows (columns) in ``part``."""
    with _open(path, storage_options) as ds:
        lay = ds.layers[layer]
        n_other = lay.shape[1 - axis]
        other = AxisSelection.from_key(slice(None) if selection is None else selection, n_other, 1 - axis)
        return lay._map_part(f_list, axis, other, part)


def map(
    path: str | os.PathLike[str],
    f_list: Sequence[Callable[[np.ndarray], Any]],
    axis: int = 0,
    *,
    layer: str = "",
    client: Any = None,
    selection: Any = None,
    block: int | None = None,
    storage_options: Options = None,
) -> list[np.ndarray]:
    """``ds.layers[layer].map(f_list, axis, selection=selection)``, computed in parallel Dask tasks.

    Returns exactly what ``map`` returns: one float64 array per function. ``client``: a
    ``distributed.Client``, a scheduler name (``"threads"``, ``"processes"``, ``"synchronous"``),
    or None for dask's default (the current Client if there is one, else threads). ``block``: rows
    (axis 0) or columns (axis 1) per task. The functions are pickled to the workers.

    Examples
    --------
    >>> from dask.distributed import Client
    >>> client = Client(n_workers=2)
    >>> means, sds = loomfile.dask.map("data.loom", [np.mean, np.std], axis=0, client=client)
    """
    check_map_args(f_list, axis)
    path = os.fspath(path)
    shape, _, parts = blocks_of(path, layer, axis, block, storage_options)
    delayed = import_dask().delayed(_map_part, pure=True)
    tasks = [delayed(path, layer, list(f_list), axis, selection, p, storage_options) for p in parts]
    results = [np.zeros(shape[axis]) for _ in f_list]
    for part, values in zip(parts, _compute(tasks, client), strict=True):
        for out, v in zip(results, values, strict=True):
            out[part] = v
    return results


# --- scan -----------------------------------------------------------------------------------------


def _scan_part(
    path: str,
    f: Callable[[int, np.ndarray, Any], Any],
    positions: np.ndarray,
    options: dict[str, Any],
    storage_options: Options,
) -> list[Any]:
    """One task of ``scan``: ``f`` on each band of the scan restricted to ``positions``."""
    with _open(path, storage_options) as ds:
        return [f(ix, selection, view) for ix, selection, view in ds.scan(items=positions, **options)]


def scan(
    path: str | os.PathLike[str],
    f: Callable[[int, np.ndarray, Any], Any],
    *,
    axis: int,
    items: Any = None,
    layers: Iterable[str] | str | None = None,
    key: str | None = None,
    batch_size: int = 8 * 64,
    what: Sequence[str] = SCAN_WHAT,
    client: Any = None,
    block: int | None = None,
    storage_options: Options = None,
) -> list[Any]:
    """``[f(ix, selection, view) for ix, selection, view in ds.scan(...)]``, computed in parallel Dask tasks.

    The bands, and the views ``f`` gets, are those ``ds.scan`` yields with the same arguments;
    the results come back in band order. Each task scans ``block`` rows (axis 0) or columns
    (axis 1), a whole number of bands. ``f`` is pickled to the workers and should return
    something small (a reduction of the view, not the view). ``client``: as for :func:`map`.
    """
    ax = _scan.check_scan_args(axis, what)
    if batch_size < 1:
        msg = f"batch_size must be at least 1, not {batch_size}"
        raise LoomValueError(msg)
    path = os.fspath(path)
    with _open(path, storage_options, validate=True) as ds:
        n = ds.shape[ax]
        positions = _scan.scan_items(items, n, ax)
        layer_names = list(ds.layers.keys()) if layers is None else ([""] if layers == "" else list(layers))
        lay = ds.layers[layer_names[0] if layer_names else ""]
        itemsize, n_other = lay.dtype.itemsize, lay.shape[1 - ax]
    options = {"axis": ax, "layers": layer_names, "key": key, "batch_size": batch_size, "what": list(what)}
    delayed = import_dask().delayed(_scan_part, pure=True)
    tasks = []
    for part in chunk_parts(n, batch_size, n_other, itemsize, block):
        inside = positions[(positions >= part.start) & (positions < part.stop)]
        if inside.size:
            tasks.append(delayed(path, f, inside, options, storage_options))
    return [result for part in _compute(tasks, client) for result in part]
