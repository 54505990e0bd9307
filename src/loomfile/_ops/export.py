"""export(): a layer and its attributes as a tab-separated text file, in loompy's layout
(``format="tab"``), or as a 10x-style Matrix Market folder (``format="mtx"``, see ``_mtx``).

Column attributes come first, one line each, shifted right past the row-attribute columns; then a
line of row-attribute names; then one line per row: its attributes, an empty field, its values.
Every field is followed by a tab, as loompy writes it. Values are formatted as ``str()`` formats
them (numpy's shortest round-trip form), a band of rows at a time, and the file appears at
``out_file`` only when complete.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import LoomValueError
from .._progress import Tick, nothing
from .._selection import AxisSelection
from .._store.journal import durability_of, sync_file, sync_folder

if TYPE_CHECKING:
    from .._core.connection import Connection


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


def export(ds: Connection, out_file: str, layer: str | None, format: str, tick: Tick = nothing) -> None:
    if format not in FORMATS:
        msg = f"format must be one of {sorted(FORMATS)}, not {format!r}"
        raise LoomValueError(msg)
    name = "" if layer is None else layer
    ds.layers[name]  # a clear error for a missing layer, before anything is written
    FORMATS[format](ds, os.path.expanduser(os.fspath(out_file)), name, tick)


def _tab(ds: Connection, target: str, name: str, tick: Tick) -> None:
    """loompy's layout: column attributes, the row-attribute names, then one line per row."""
    from .._core.connection import written_aside

    source = ds.layers[name]
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


def _mtx(ds: Connection, target: str, name: str, tick: Tick) -> None:
    """A folder as cellranger lays out ``filtered_feature_bc_matrix/``: ``matrix.mtx.gz`` (1-based
    coordinates in column order), ``features.tsv.gz`` (id, name, feature type) and
    ``barcodes.tsv.gz``, all gzipped. The entries are streamed a band of columns at a time into
    a gzip member of their own; the header (which needs the count of entries, and says "integer"
    when every value is a whole number) is a first member written at the end: a file with two gzip
    members, which gzip, zcat, scipy and 10x's readers read as one."""
    source = ds.layers[name]
    n_rows, n_cols = ds.shape
    with written_aside_folder(target) as folder:
        body = os.path.join(folder, ".entries.gz")
        count, integral = 0, True
        with gzip.open(body, "wt", encoding="ascii", compresslevel=GZIP_LEVEL) as f:
            for band, columns in source._bands(1, AxisSelection.full(n_rows)):
                col, row = np.nonzero(columns)  # column by column, rows in order within each
                values = columns[col, row]
                if values.dtype.kind == "f":
                    whole = bool(np.all(values == np.round(values)))
                    integral &= whole
                    texts = values.astype(np.int64).astype(str) if whole else values.astype(str)
                else:
                    texts = values.astype(str)
                for r, c, v in zip((row + 1).tolist(), (col + band.start + 1).tolist(), texts.tolist(), strict=True):
                    f.write(f"{r} {c} {v}\n")
                count += values.size
                tick(band.stop - band.start)
        field = "integer" if integral else "real"
        with open(os.path.join(folder, "matrix.mtx.gz"), "wb") as out:
            with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL) as header:
                header.write(
                    f"%%MatrixMarket matrix coordinate {field} general\n"
                    f"%metadata_json: {{\"software_version\": \"loomfile\", \"format_version\": 2}}\n"
                    f"{n_rows} {n_cols} {count}\n".encode("ascii")
                )
            with open(body, "rb") as entries:
                shutil.copyfileobj(entries, out, 1 << 20)
        os.remove(body)
        _write_gzipped_lines(os.path.join(folder, "features.tsv.gz"), _feature_lines(ds))
        _write_gzipped_lines(os.path.join(folder, "barcodes.tsv.gz"), _barcodes(ds))


def _feature_lines(ds: Connection) -> list[str]:
    """id, name and feature type of each row, from Accession/Gene/FeatureType where present."""
    n = ds.shape[0]
    names = _texts(ds.ra["Gene"]) if "Gene" in ds.ra else [str(i) for i in range(n)]
    ids = _texts(ds.ra["Accession"]) if "Accession" in ds.ra else names
    kinds = _texts(ds.ra["FeatureType"]) if "FeatureType" in ds.ra else ["Gene Expression"] * n
    return [f"{i}\t{g}\t{k}" for i, g, k in zip(ids, names, kinds, strict=True)]


def _barcodes(ds: Connection) -> list[str]:
    """CellIDs, without the ``sample:`` prefix the cellranger importers add when every one has it."""
    ids = _texts(ds.ca["CellID"]) if "CellID" in ds.ca else [str(j) for j in range(ds.shape[1])]
    prefix = ids[0].split(":", 1)[0] + ":" if ids and ":" in ids[0] else None
    if prefix is not None and all(i.startswith(prefix) for i in ids):
        return [i[len(prefix) :] for i in ids]
    return ids


def _write_gzipped_lines(path: str, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=GZIP_LEVEL) as f:
        f.writelines(line + "\n" for line in lines)


@contextlib.contextmanager
def written_aside_folder(target: str) -> Iterator[str]:
    """A new folder beside ``target`` to fill; put at ``target`` when the block ends normally (an
    existing folder there is moved away first and removed only once the new one is in place),
    removed if the block raises."""
    parent = os.path.dirname(os.path.abspath(target))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    full = durability_of(None) == "full"
    if full:  # the files and their names durable before the folder takes the target's name
        for name in os.listdir(tmp):
            sync_file(os.path.join(tmp, name))
        sync_folder(os.path.join(tmp, "."))
    old = None
    if os.path.lexists(target):
        if not os.path.isdir(target):
            shutil.rmtree(tmp, ignore_errors=True)
            msg = f"'{target}' exists and is not a folder; a Matrix Market export is a folder"
            raise LoomValueError(msg)
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".old", dir=parent)
        os.replace(target, os.path.join(old, "previous"))
    os.replace(tmp, target)
    if full:
        sync_folder(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


GZIP_LEVEL = 4  # gzip's speed/size balance for text (6 costs twice the time for 3% less)
FORMATS: dict[str, Callable[[Connection, str, str, Tick], None]] = {"tab": _tab, "mtx": _mtx}
