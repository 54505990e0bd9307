"""subset(): a new Loom file from a selection of rows and columns, streamed band by band.

Every layer is read a band of selected columns at a time (bands that fill whole chunk columns of
the output) and written into the new file, so memory stays at a few bands whatever the file's
size; column attributes, row attributes and graphs are cut to the selection (graph vertices are
renumbered in the selection's order, edges to unselected vertices dropped). Where every row is
kept and a run of selected columns covers whole chunk columns on the chunk grid of both files,
the stored chunks are copied as they are, without decoding. The file appears at ``out`` only once
complete (``new``), so an interrupted subset leaves nothing half-written.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _progress
from .._engine.stored import StoredColumns
from .._errors import LoomValueError
from .._progress import Tick
from .._selection import AxisSelection
from .columns import BAND_BYTES, _copyable, aligned_bands

if TYPE_CHECKING:
    from .._core.connection import Connection


def subset(
    ds: Connection,
    out: str,
    rows: Any = slice(None),
    cols: Any = slice(None),
    *,
    progress: bool | None = None,
) -> None:
    """Write rows x cols of ``ds`` (every layer, attribute and graph) into a new Loom file ``out``.

    ``rows``/``cols`` take every selection ``ds[rows, cols]`` takes (slices, indices, masks).
    """
    from .._core.connection import new

    if os.path.exists(out) and ds.filename is not None and os.path.samefile(out, ds.filename):
        msg = f"subset would replace '{out}', the file it reads; write to another file"
        raise LoomValueError(msg)
    n_rows, n_cols = ds.shape
    row_sel = AxisSelection.from_key(rows, n_rows, 0)
    col_sel = AxisSelection.from_key(cols, n_cols, 1)
    if row_sel.size == 0 or col_sel.size == 0:
        msg = f"The selection is empty ({row_sel.size} rows x {col_sel.size} columns); a Loom file needs both"
        raise LoomValueError(msg)
    shape = (row_sel.size, col_sel.size)
    ra, ca = ds.ra._select(row_sel), ds.ca._select(col_sel)
    row_graphs, col_graphs = ds.row_graphs._select(row_sel), ds.col_graphs._select(col_sel)
    names = sorted(ds.layers.keys(), key=lambda k: k != "")  # the main matrix first
    with _progress.bar(col_sel.size, "subset", progress, "columns") as tick:
        target = new(out, file_attrs=dict(ds.attrs.items()))
        try:
            for name in names:
                target._store.create_layer(name, shape, np.dtype(ds.layers[name].dtype))
            _copy_selection(ds, target, names, row_sel, col_sel, tick)
            pairs: list[tuple[Any, Any]] = [
                (target.ra, ra), (target.ca, ca), (target.row_graphs, row_graphs), (target.col_graphs, col_graphs)
            ]
            for manager, cut in pairs:
                for key in cut.keys():
                    manager[key] = cut[key]
        except BaseException:
            target._abandon()
            raise
        target.close()


def _copy_selection(
    ds: Connection,
    target: Connection,
    names: list[str],
    rows: AxisSelection,
    cols: AxisSelection,
    tick: Tick,
) -> None:
    """Each layer's rows x cols into ``target`` (of that shape), band by band; runs of whole chunk
    columns copied as stored where every row is kept."""
    store, n_cols = target._store, cols.size
    chunk = (store.layer_info("").chunks or (1, 1))[1]
    per_column = rows.size * sum(np.dtype(ds.layers[k].dtype).itemsize for k in names)
    width = max(chunk, BAND_BYTES // max(1, per_column) // chunk * chunk)
    every_row = AxisSelection.full(rows.size)
    copyable = _copyable(target, ds, names) if rows.contiguous == slice(0, ds.shape[0]) else {}
    for band in aligned_bands(n_cols, 0, width, chunk):
        source_cols = cols.indices[band]
        dst = AxisSelection.from_key(band, n_cols, 1)
        run = _chunk_run(source_cols, chunk, ds.shape[1])
        for name in names:
            if run is not None and name in copyable:
                store.copy_columns(name, StoredColumns(copyable[name], *run), band.start)
            else:
                values = ds._store.read_layer(name, rows, AxisSelection(ds.shape[1], source_cols))
                store.write_layer(name, every_row, dst, values)
        tick(band.stop - band.start)


def _chunk_run(source_cols: np.ndarray, chunk: int, n_source: int) -> tuple[int, int] | None:
    """(start, stop) when the band's source columns are one run of whole chunk columns on the chunk
    grid (its stored chunks can be copied), else None."""
    start, stop = int(source_cols[0]), int(source_cols[-1]) + 1
    whole = start % chunk == 0 and stop % chunk == 0 and stop <= n_source
    if not whole or stop - start != source_cols.size:
        return None
    return (start, stop) if bool(np.all(np.diff(source_cols) == 1)) else None

