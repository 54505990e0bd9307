"""``create_from_tsv``: a Loom file from a delimited text matrix (genes on rows, cells on columns).

Two passes over the text, as loompy makes: the first reads the header and the first field of every
line (the gene ids, which fix each line's row), the second parses the values a few MB of lines at
a time and writes them as soon as a band of whole chunk rows is complete. When the lines come in
row order (always, without ``row_metadata_loomfile``) one band is in memory at a time; rows placed
by a metadata file in another order keep their bands until complete. loompy builds the whole dense
matrix first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _progress
from .._core.connection import connect, new
from .._errors import LoomFormatError, LoomValueError
from .._format import spec as fmt
from .._store.writer import LayerWriter
from ._text import lines_in_blocks, open_binary, read_lines, require

log = logging.getLogger(__name__)
# Values parsed per numpy call, and the size a band of rows aims at.
BATCH_BYTES = 8 << 20
BAND_BYTES = 32 << 20
ROW_METADATA = ("Accession", "Gene", "Chromosome", "Start", "End")
_QUOTED = re.compile(r'^"(.+)"$')


def _unquote(text: str) -> str:
    return _QUOTED.sub(r"\1", text)


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line without trailing whitespace) for each non-blank line."""
    number = 0
    with open_binary(path) as stream:
        for block in lines_in_blocks(stream):
            for line in block.split(b"\n"):
                number += 1
                stripped = line.rstrip()
                if stripped:
                    yield number, stripped
            number -= block.endswith(b"\n")  # the split's empty piece after the last break


@dataclass
class Layout:
    """What the first pass learns: the header's cell names and each data line's gene id."""

    cells: list[str]
    genes: list[str]


def scan(path: str, delim: str) -> Layout:
    """The header's cell names (without a first field naming the gene column, when the header has
    as many fields as the first data line, as loompy decides) and the gene id of each line."""
    lines = _lines(require(path, "Matrix file"))
    first = next(lines, None)
    if first is None:
        msg = f"'{path}' is empty: its first line should name the cells"
        raise LoomFormatError(msg)
    header = [_unquote(field) for field in first[1].decode("utf-8").split(delim)]
    sep = delim.encode("utf-8")
    genes: list[str] = []
    for _, line in lines:
        if not genes and line.count(sep) + 1 == len(header):
            header = header[1:]
        genes.append(_unquote(line.split(sep, 1)[0].decode("utf-8")))
    return Layout(header, genes)


def _row_metadata(path: str, key: str) -> tuple[dict[str, np.ndarray], dict[Any, int], int]:
    """The row attributes loompy copies from a Loom file, each ``key`` value's row, the row count."""
    with connect(path, "r") as ds:
        attrs = {name: ds.ra[name] for name in ROW_METADATA if name in ds.ra}
        keys = ds.ra[key]
        n_rows = ds.shape[0]
    return attrs, {value: row for row, value in enumerate(keys)}, n_rows


def _col_metadata(path: str, delim: str, cell_ids: list[str]) -> dict[str, np.ndarray]:
    """Column attributes (strings) from a delimited file whose lines follow the matrix's columns."""
    lines = read_lines(require(path, "Column metadata file"))
    names = [_unquote(name) for name in lines[0].rstrip().split(delim)] if lines else []
    columns: list[list[str]] = [[] for _ in names]
    for k, line in enumerate(lines[1:]):
        values = [_unquote(v) for v in line.rstrip().split(delim)]
        expected = cell_ids[k] if k < len(cell_ids) else None
        if values[0] != expected:
            msg = f"'{path}' line {k + 2}: CellID {values[0]!r} does not match column {k} of the matrix ({expected!r})"
            raise LoomValueError(msg)
        skip = 0 if len(values) == len(names) else 1
        if len(values) < len(names) + skip:
            msg = f"'{path}' line {k + 2} has {len(values)} fields; the header names {len(names)}"
            raise LoomFormatError(msg)
        for column, value in zip(columns, values[skip:], strict=False):
            column.append(value)
    if len(lines) - 1 != len(cell_ids):
        msg = f"'{path}' describes {max(0, len(lines) - 1)} cells; the matrix has {len(cell_ids)}"
        raise LoomValueError(msg)
    return {name: np.array(column, dtype=object) for name, column in zip(names, columns, strict=True)}


class _Bands:
    """Rows gathered into bands of whole chunk rows, each written once all its rows have arrived."""

    def __init__(self, layer: LayerWriter, targets: np.ndarray) -> None:
        self.layer = layer
        n_rows, n_cols = layer.shape
        chunk = layer.chunks[0]
        self.height = max(1, BAND_BYTES // max(1, n_cols * layer.dtype.itemsize) // chunk) * chunk
        placed = targets[targets >= 0]
        self.missing = np.bincount(placed // self.height, minlength=-(-n_rows // self.height))
        self.open: dict[int, np.ndarray] = {}

    def put(self, row: int, values: np.ndarray) -> None:
        band, offset = divmod(row, self.height)
        if band not in self.open:
            height = min(self.height, self.layer.shape[0] - band * self.height)
            self.open[band] = np.zeros((height, self.layer.shape[1]), dtype=self.layer.dtype)
        self.open[band][offset] = values
        self.missing[band] -= 1
        if self.missing[band] == 0:
            self.layer.write(band * self.height, 0, self.open.pop(band))


def _parse(path: str, lines: list[tuple[int, bytes]], sep: bytes, n_cols: int) -> np.ndarray:
    """The values of a batch of lines (after each line's gene id), one row per line, as float64."""
    delim = sep.decode("utf-8")
    rests = [line.split(sep, 1)[1] if sep in line else b"" for _, line in lines]
    try:
        values = np.fromstring(sep.join(rests), sep=delim)
    except ValueError:
        values = np.empty(0)
    if values.size == len(lines) * n_cols:
        return values.reshape(len(lines), n_cols)
    # a bad line, or one ending with a (non-blank) delimiter: line by line, to name the bad one
    return np.stack(
        [
            _parse_line(path, number, rest, delim, n_cols)
            for (number, _), rest in zip(lines, rests, strict=True)
        ]
    )


def _parse_line(path: str, number: int, rest: bytes, delim: str, n_cols: int) -> np.ndarray:
    try:
        row = np.fromstring(rest, sep=delim)
    except ValueError:
        msg = f"'{path}' line {number}: not all of its values are numbers"
        raise LoomFormatError(msg) from None
    if row.size != n_cols:
        msg = f"'{path}' line {number} has {row.size} values; the header names {n_cols} cells"
        raise LoomFormatError(msg)
    return row


def _fill(
    path: str, delim: str, targets: np.ndarray, tick: _progress.Tick
) -> Callable[[LayerWriter], None]:
    """The ``fill(layer)`` that writes the values of every placed line into the main matrix."""
    sep = delim.encode("utf-8")

    def fill(layer: LayerWriter) -> None:
        bands = _Bands(layer, targets)
        what = "The main matrix"
        batch: list[tuple[int, bytes]] = []
        size, index = 0, 0
        lines = _lines(path)
        next(lines)  # the header
        for item in lines:
            batch.append(item)
            size += len(item[1])
            if size >= BATCH_BYTES:
                index = _place(bands, _parse(path, batch, sep, layer.shape[1]), targets, index, what)
                tick(len(batch))
                batch, size = [], 0
        if batch:
            _place(bands, _parse(path, batch, sep, layer.shape[1]), targets, index, what)
            tick(len(batch))

    return fill


def _place(bands: _Bands, values: np.ndarray, targets: np.ndarray, index: int, what: str) -> int:
    """Put each parsed row where its gene goes; return the index of the next line."""
    rows = fmt.cast_for_layer(values, bands.layer.dtype, what)
    for k in range(rows.shape[0]):
        if targets[index + k] >= 0:
            bands.put(int(targets[index + k]), rows[k])
    return index + rows.shape[0]


def create_from_tsv(
    out_file: str,
    tsv_file: str,
    row_metadata_loomfile: str | None = None,
    row_metadata_attr: str = "Accession",
    delim: str = "\t",
    dtype: str = "float32",
    sample_id: str = "",
    file_attrs: Mapping[str, Any] | None = None,
    col_metadata_tsv: str | None = None,
    metadata_delim: str = "\t",
    *,
    progress: bool | None = None,
) -> None:
    """Create a Loom file from a delimited text matrix (gzipped or not), as loompy does.

    The header names the cells (CellID = ``sample_id + name``; a first field naming the gene column
    is dropped when the header has as many fields as the first data line); each line holds a gene
    id, then one value per cell. Without ``row_metadata_loomfile`` the rows are the lines, in
    order, with a ``Gene`` attribute; with it, the rows are that file's (with its Accession, Gene,
    Chromosome, Start and End attributes), each line going to the row whose ``row_metadata_attr``
    equals its gene id, other lines skipped and rows without a line left zero. ``col_metadata_tsv``
    adds string column attributes from a file whose header names them and whose lines start with
    the CellIDs, in the matrix's order. Surrounding double quotes are removed from names and ids.

    Unlike loompy: values that do not fit ``dtype`` (fractions for an integer dtype, NaN) raise
    instead of being truncated, blank lines are skipped, the count of unmatched genes is logged
    rather than printed, and the matrix is written band by band as it is parsed.

    Examples
    --------
    >>> loomfile.create_from_tsv("out.loom", "counts.tsv.gz", dtype="int32", sample_id="s1:")
    """
    matrix_dtype = fmt.check_matrix_dtype(dtype, "The main matrix")
    layout = scan(tsv_file, delim)
    cell_ids = [sample_id + name for name in layout.cells]
    if row_metadata_loomfile:
        row_attrs, rows_of, n_rows = _row_metadata(row_metadata_loomfile, row_metadata_attr)
        targets = np.array([rows_of.get(gene, -1) for gene in layout.genes], dtype=np.int64)
    else:
        row_attrs = {"Gene": np.array(layout.genes, dtype=object)}
        targets = np.arange(len(layout.genes), dtype=np.int64)
        n_rows = len(layout.genes)
    col_attrs = {"CellID": np.array(cell_ids, dtype=object)}
    if col_metadata_tsv:
        col_attrs.update(_col_metadata(col_metadata_tsv, metadata_delim, cell_ids))
    if n_rows == 0 or not cell_ids:
        msg = f"'{tsv_file}' gives a matrix of {n_rows} rows and {len(cell_ids)} columns; Loom needs both"
        raise LoomValueError(msg)
    with (
        new(out_file, file_attrs=file_attrs) as ds,
        _progress.bar(len(targets), "importing", progress, "rows") as tick,
    ):
        ds.layers.create("", (n_rows, len(cell_ids)), matrix_dtype, fill=_fill(tsv_file, delim, targets, tick))
        for name, values in row_attrs.items():
            ds.ra[name] = values
        for name, values in col_attrs.items():
            ds.ca[name] = values
    log.info(
        "No match for %d / %d genes in %s; output shape %s",
        int((targets < 0).sum()),
        len(targets),
        tsv_file,
        (n_rows, len(cell_ids)),
    )
