"""export(): a layer and its attributes as a tab-separated text file, in loompy's layout.

Column attributes come first, one line each, shifted right past the row-attribute columns; then a
line of row-attribute names; then one line per row: its attributes, an empty field, its values.
Every field is followed by a tab, as loompy writes it. Values are formatted as ``str()`` formats
them (numpy's shortest round-trip form), a band of rows at a time, and the file appears at
``out_file`` only when complete.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import LoomValueError
from ._progress import Tick, nothing
from ._selection import AxisSelection

if TYPE_CHECKING:
    from .connection import LoomConnection


def _texts(values: Any) -> list[str]:
    """Each value as ``str()`` writes it. An element of a 2-D or compound attribute (an embedding's
    row, a SCENIC regulon record) is one value, written as loompy writes it (``[1. 2.]``, ``(1, 2)``),
    but on one line: numpy wraps long rows, which would break the table's lines."""
    array = np.asarray(values)
    if array.ndim == 1 and array.dtype.names is None:
        return array.astype(str).tolist()
    return [str(v).replace("\n", " ") for v in array]


def _fields(values: Any) -> str:
    """Each value as ``str()`` writes it, followed by a tab."""
    return _tabbed(_texts(values))


def _tabbed(texts: list[str]) -> str:
    return "".join(t + "\t" for t in texts)


def export(ds: LoomConnection, out_file: str, layer: str | None, format: str, tick: Tick = nothing) -> None:
    from .connection import written_aside

    if format != "tab":
        msg = f"Only format='tab' is supported, not {format!r}"
        raise LoomValueError(msg)
    name = "" if layer is None else layer
    source = ds.layers[name]  # a clear error for a missing layer, before anything is written
    target = os.path.expanduser(os.fspath(out_file))
    with written_aside(target) as tmp, open(tmp, "w", encoding="utf-8") as f:
        ra_names = list(ds.ra.keys())
        ra = {k: _texts(ds.ra[k]) for k in ra_names}
        lead = "\t" * len(ra_names)
        for key in ds.ca.keys():
            f.write(f"{lead}{key}\t{_fields(ds.ca[key])}\n")
        f.write(_tabbed(ra_names) + "\t" + "\t" * ds.shape[1] + "\n")
        for band, values in source._bands(0, AxisSelection.full(ds.shape[1])):
            text = values.astype(str)
            for i, row in enumerate(range(band.start, band.stop)):
                attrs = _tabbed([ra[k][row] for k in ra_names])
                f.write(f"{attrs}\t{_tabbed(text[i].tolist())}\n")
            tick(band.stop - band.start)
