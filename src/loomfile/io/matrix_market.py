"""Matrix Market files (``.mtx``, ``.mtx.gz``): a block parser, and ``create_from_matrix_market``.

``coordinate`` files of integer, real or pattern entries (every 10x matrix, everything
``scipy.io.mmwrite`` writes for a general sparse matrix) are parsed a block of text at a time:
numpy parses one block while a second thread reads (and, for ``.gz``, decompresses with igzip) the
next. Two ways to use the entries:

- ``read_matrix_market``: the whole matrix, as CSC. Entries go into arrays allocated once from the
  size line and, when they come column by column (as cellranger and ``mmwrite`` write them), those
  arrays become the CSC matrix as they are: 16 bytes per entry (an int64 or float64 value, int32
  row and column) plus a block; ``scipy.io.mmread`` builds a COO matrix, then a CSC copy of it.
- ``matrix_market_columns``: the columns in pieces, as soon as they are complete, for importers
  that write while they read (memory: a block).

Values get scipy's dtypes: int64 for integer, float64 for real and pattern (ones). Other files
(``array`` layout, symmetric, skew-symmetric or hermitian matrices, complex values) are rare for
count matrices and read by ``scipy.io.mmread``.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sparse

from .. import _progress
from .._core.connection import new
from .._errors import LoomFormatError, LoomValueError
from ._text import lines_in_blocks, open_binary, read_lines, require

FAST_FIELDS = ("integer", "real", "pattern")


@dataclass
class Header:
    """What the banner and size line of a Matrix Market file say."""

    layout: str  # "coordinate" or "array"
    field: str  # "integer", "real", "pattern", "complex"
    symmetry: str  # "general", "symmetric", ...
    shape: tuple[int, int]
    nnz: int
    lines: int  # lines before the first entry

    @property
    def fast(self) -> bool:
        """Whether the block parser reads this file (else scipy does)."""
        return self.layout == "coordinate" and self.field in FAST_FIELDS and self.symmetry == "general"


def read_header(path: str) -> Header:
    """The banner (``%%MatrixMarket matrix coordinate integer general``) and size line of a file."""
    with open_binary(path) as f:
        banner = f.readline().decode("utf-8", "replace").split()
        if len(banner) != 5 or banner[0].lower() != "%%matrixmarket" or banner[1].lower() != "matrix":
            msg = f"'{path}' is not a Matrix Market matrix: its first line is {' '.join(banner)!r}"
            raise LoomFormatError(msg)
        layout, field, symmetry = (word.lower() for word in banner[2:])
        lines = 1
        for raw in f:
            lines += 1
            line = raw.decode("utf-8", "replace").strip()
            if line and not line.startswith("%"):
                return _sized(path, layout, field, symmetry, line, lines)
    msg = f"'{path}' ends before the Matrix Market size line"
    raise LoomFormatError(msg)


def _sized(path: str, layout: str, field: str, symmetry: str, line: str, lines: int) -> Header:
    words = line.split()
    expected = 3 if layout == "coordinate" else 2
    if len(words) != expected or not all(w.isdigit() for w in words):
        msg = f"'{path}' line {lines}: the size line {line!r} should hold {expected} counts"
        raise LoomFormatError(msg)
    n_rows, n_cols = int(words[0]), int(words[1])
    nnz = int(words[2]) if layout == "coordinate" else n_rows * n_cols
    return Header(layout, field, symmetry, (n_rows, n_cols), nnz, lines)


class _Parser:
    """Blocks of whole lines of a coordinate file to validated 0-based entries, counted against the
    size line."""

    def __init__(self, path: str, header: Header) -> None:
        self.path, self.header = path, header
        self.width = 2 if header.field == "pattern" else 3
        self.number = np.int64 if header.field in ("integer", "pattern") else np.float64
        # scipy wants int64 indices (and would copy int32 ones) once there are 2**31 entries
        self.index_dtype = np.int64 if header.nnz >= 2**31 else np.int32
        self.count = 0  # entries so far
        self.line = header.lines  # lines so far

    @property
    def dtype(self) -> np.dtype[Any]:
        """The values' dtype, as scipy.io.mmread gives it (pattern entries are float ones)."""
        return np.dtype(np.int64 if self.header.field == "integer" else np.float64)

    def parse(self, text: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, values) of the entries in a block of whole lines."""
        lines = text.count(b"\n") + (not text.endswith(b"\n"))
        table = self._numbers(text, lines).reshape(-1, self.width)
        n = table.shape[0]
        if self.count + n > self.header.nnz:
            msg = f"'{self.path}' has more entries than the {self.header.nnz} its size line announces"
            raise LoomFormatError(msg)
        rows, cols = self._indices(table[:, 0], 0), self._indices(table[:, 1], 1)
        values = table[:, 2].astype(self.dtype) if self.width == 3 else np.ones(n, dtype=self.dtype)
        self.count += n
        self.line += lines
        return rows, cols, values

    def finish(self) -> None:
        """Raise unless the file held as many entries as its size line announced."""
        if self.count != self.header.nnz:
            msg = f"'{self.path}' has {self.count} entries; its size line announces {self.header.nnz}"
            raise LoomFormatError(msg)

    def _numbers(self, text: bytes, lines: int) -> np.ndarray:
        try:
            numbers = np.fromstring(text, dtype=self.number, sep=" ")
        except ValueError:
            numbers = None
        if numbers is None or numbers.size != self.width * lines:
            # a bad line somewhere, or blank lines: line by line, to name the bad one
            return self._numbers_by_line(text)
        return numbers

    def _numbers_by_line(self, text: bytes) -> np.ndarray:
        parsed = []
        for k, line in enumerate(text.split(b"\n")):
            if not line.strip():
                continue
            try:
                numbers = np.fromstring(line, dtype=self.number, sep=" ")
            except ValueError:
                numbers = None
            if numbers is None or numbers.size != self.width:
                what = "integers" if self.number is np.int64 else "numbers"
                msg = (
                    f"'{self.path}' line {self.line + k + 1}: {line.decode('utf-8', 'replace')!r} "
                    f"should be {self.width} {what} (row, column{', value' if self.width == 3 else ''})"
                )
                raise LoomFormatError(msg)
            parsed.append(numbers)
        return np.concatenate(parsed) if parsed else np.empty(0, dtype=self.number)

    def _indices(self, one_based: np.ndarray, axis: int) -> np.ndarray:
        """0-based row (axis 0) or column (axis 1) indices; raise unless integers within the shape."""
        size = self.header.shape[axis]
        fractional = one_based.dtype.kind == "f" and bool((one_based % 1 != 0).any())
        if one_based.size and (fractional or one_based.min() < 1 or one_based.max() > size):
            bad = (one_based < 1) | (one_based > size) | (one_based % 1 != 0)
            first = int(np.argmax(bad))
            msg = (
                f"'{self.path}': entry {self.count + first + 1} has {('row', 'column')[axis]} "
                f"{one_based[first]}; {('rows', 'columns')[axis]} are integers in 1..{size}"
            )
            raise LoomFormatError(msg)
        indices = np.empty(one_based.size, dtype=self.index_dtype)
        np.subtract(one_based, 1, out=indices, casting="unsafe")
        return indices


def _entry_blocks(
    parser: _Parser, progress: bool | None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The entries of the file, a block at a time; the count is checked once all are read."""
    what = f"reading {os.path.basename(parser.path)}"
    with (
        open_binary(parser.path) as stream,
        _progress.bar(parser.header.nnz, what, progress, "entries") as tick,
    ):
        for _ in range(parser.header.lines):
            stream.readline()
        for text in lines_in_blocks(stream):
            entries = parser.parse(text)
            tick(entries[0].size)
            yield entries
    parser.finish()


def _csc(
    parser: _Parser, first: int, stop: int, rows: np.ndarray, cols: np.ndarray, values: np.ndarray
) -> sparse.csc_matrix:
    """Columns [first, stop) of entries sorted by column (their own arrays, not copied)."""
    indptr = np.searchsorted(cols, np.arange(first, stop + 1, dtype=cols.dtype)).astype(parser.index_dtype)
    return sparse.csc_matrix((values, rows, indptr), shape=(parser.header.shape[0], stop - first))


def read_matrix_market(path: str, *, progress: bool | None = None) -> sparse.csc_matrix | np.ndarray:
    """A Matrix Market file as a CSC matrix (a dense array for the ``array`` layout).

    The same values and dtype as ``scipy.io.mmread(path)`` (see the module docstring): entries
    are parsed into arrays sized once by the size line and, when they come column by column,
    become the CSC matrix as they are (duplicates kept: they add up when read, as in scipy).
    """
    header = read_header(path)
    if not header.fast:
        matrix = scipy.io.mmread(path)
        return sparse.csc_matrix(matrix) if sparse.issparse(matrix) else np.asarray(matrix)
    parser = _Parser(path, header)
    rows = np.empty(header.nnz, dtype=parser.index_dtype)
    cols = np.empty(header.nnz, dtype=parser.index_dtype)
    values = np.empty(header.nnz, dtype=parser.dtype)
    by_column, count = True, 0
    for block_rows, block_cols, block_values in _entry_blocks(parser, progress):
        span = slice(count, count + block_rows.size)
        rows[span], cols[span], values[span] = block_rows, block_cols, block_values
        if by_column and block_rows.size:
            by_column = not _decreases(block_cols, cols[count - 1] if count else 0)
        count = span.stop
    if not by_column:
        return sparse.coo_matrix((values, (rows, cols)), shape=header.shape).tocsc()
    return _csc(parser, 0, header.shape[1], rows, cols, values)


def _decreases(cols: np.ndarray, previous: int) -> bool:
    """Whether column indices go down anywhere (after ``previous``, the last one before them)."""
    return bool(cols[0] < previous or (cols[1:] < cols[:-1]).any())


def matrix_market_columns(
    path: str, header: Header, *, progress: bool | None = None
) -> Iterator[tuple[int, sparse.csc_matrix]]:
    """The columns of a coordinate file (``header.fast``) in pieces, in order, each piece
    ``(first column, CSC matrix of complete columns)``, yielded as soon as it is parsed; memory is a
    block, not the matrix.

    Entries must come column by column (as cellranger and ``mmwrite`` write them). Should they not,
    the file is read again whole and yielded as one last piece from column 0, which replaces the
    pieces before it.
    """
    parser = _Parser(path, header)
    first = 0  # the first column not yielded yet; the carried entries are all in it
    carry = (np.empty(0, parser.index_dtype), np.empty(0, parser.index_dtype), np.empty(0, parser.dtype))
    for block in _entry_blocks(parser, progress):
        if block[0].size == 0:
            continue
        if _decreases(block[1], first):
            yield 0, sparse.csc_matrix(read_matrix_market(path, progress=progress))
            return
        rows, cols, values = (np.concatenate(pair) for pair in zip(carry, block, strict=True))
        last = int(cols[-1])
        split = int(np.searchsorted(cols, last))
        if last > first:
            yield first, _csc(parser, first, last, rows[:split], cols[:split], values[:split])
            first = last
        carry = (rows[split:], cols[split:], values[split:])
    yield first, _csc(parser, first, header.shape[1], *carry)


def _metadata_lines(path: str, skip_header: bool) -> list[str]:
    return read_lines(require(path, "Metadata file"))[1 if skip_header else 0 :]


def create_from_matrix_market(
    out_file: str,
    sample_id: str,
    layer_paths: Mapping[str, str],
    row_metadata_path: str,
    column_metadata_path: str,
    delim: str = "\t",
    skip_row_headers: bool = False,
    skip_colums_headers: bool = False,
    file_attrs: Mapping[str, Any] | None = None,
    matrix_transposed: bool = False,
    *,
    progress: bool | None = None,
) -> None:
    """Create a Loom file from Matrix Market layers and row/column metadata files, as loompy does.

    ``layer_paths`` maps layer names to ``.mtx`` (or ``.mtx.gz``) files, usually ``{"": path}``.
    Without a ``""`` entry, the main matrix is the sum of the given layers. Rows get ``Accession``
    (the first field of each row metadata line) and ``Gene`` (the second, when the first line has
    one); columns get ``CellID`` = ``{sample_id}:{line}``.

    Unlike loompy, ``delim``, ``skip_row_headers`` and ``skip_colums_headers`` (loompy's spelling)
    are honoured (loompy ignores them), metadata files may be gzipped, blank lines are skipped and a
    one-field line gives an Accession without its line break. Layers are read by the fast reader and
    written band by band, so none is ever dense in memory; when ``""`` is given, one layer at a
    time is in memory.

    Examples
    --------
    >>> loomfile.create_from_matrix_market("out.loom", "s1", {"": "matrix.mtx"}, "genes.tsv", "cells.tsv")
    """
    for path in layer_paths.values():
        require(path, "Matrix file")
    if not layer_paths:
        msg = "layer_paths is empty: give at least one Matrix Market file"
        raise LoomValueError(msg)
    rows = [line.split(delim) for line in _metadata_lines(row_metadata_path, skip_row_headers)]
    row_attrs = {"Accession": np.array([r[0].strip() for r in rows], dtype=object)}
    if rows and len(rows[0]) > 1:
        row_attrs["Gene"] = np.array([r[1].strip() for r in rows], dtype=object)
    cells = _metadata_lines(column_metadata_path, skip_colums_headers)
    col_attrs = {"CellID": np.array([f"{sample_id}:{line.strip()}" for line in cells], dtype=object)}

    def read(path: str) -> Any:
        matrix = read_matrix_market(path, progress=progress)
        return matrix.T if matrix_transposed else matrix

    others = {name: path for name, path in layer_paths.items() if name != ""}
    read_first = {} if "" in layer_paths else {name: read(path) for name, path in others.items()}
    main = read(layer_paths[""]) if "" in layer_paths else functools.reduce(operator.add, read_first.values())
    with new(out_file, file_attrs=file_attrs) as ds:
        ds.layers[""] = main
        del main
        for name, values in row_attrs.items():
            ds.ra[name] = values
        for name, values in col_attrs.items():
            ds.ca[name] = values
        for name, path in others.items():
            ds.layers[name] = read_first.pop(name) if name in read_first else read(path)
