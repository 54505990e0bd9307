"""Import 10x Genomics cellranger output: v2 and v3+ matrix-market folders and 10x HDF5 matrices.

Where the matrix comes from (``source="auto"``, the default), in this order:

1. ``outs/filtered_gene_bc_matrices/<genome>/`` (v2: matrix.mtx, genes.tsv, barcodes.tsv),
2. ``outs/filtered_feature_bc_matrix/`` (v3+: matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz),
3. ``outs/filtered_feature_bc_matrix.h5`` (v3+ HDF5: ``matrix/{data,indices,indptr,shape,barcodes,
   features/{id,name,...}}``),
4. ``outs/filtered_gene_bc_matrices_h5.h5`` (v2 HDF5: ``<genome>/{data,indices,indptr,shape,
   barcodes,genes,gene_names}``).

The same places are searched in a run's ``outs/`` folder given directly; a matrix folder
(``filtered_feature_bc_matrix/``, a v2 genome folder) or a 10x HDF5 file may also be given itself.
(The HDF5 files are read by ``_store.tenx``, as numpy arrays: h5py stays in the storage layer.)

The folders come first because they are what loompy reads, so a folder holding both gives loompy's
file; the HDF5 matrices (which loompy cannot read) are used when no folder is there, or when asked
with ``source="h5"`` (``source="mtx"`` insists on a folder). Both give the same file for the same data:
integer counts are stored as int64 (what loompy's matrix-market reader gives), genes and barcodes
as the same strings.

The matrix is never whole in memory: its columns are read in pieces (a block of matrix-market
text, or a range of the HDF5 datasets) and written in bands of whole chunk columns on a second
thread while the next piece is read, so reading, parsing, compressing and writing overlap and memory
is a few bands. loompy makes the whole matrix dense first (8 bytes per matrix element).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sparse

from .. import _progress
from .._core.connection import new
from .._errors import LoomFormatError, LoomNotFoundError, LoomValueError
from .._format import spec as fmt
from .._store import tenx
from .._store.writer import LayerWriter
from ._text import read_lines, require
from .matrix_market import matrix_market_columns, read_header, read_matrix_market

Source = Literal["auto", "mtx", "h5"]
Pieces = Iterator[tuple[int, sparse.csc_matrix]]  # (first column, CSC matrix of the next columns)
V2_FOLDER = os.path.join("outs", "filtered_gene_bc_matrices")
V3_FOLDER = os.path.join("outs", "filtered_feature_bc_matrix")
V3_H5 = os.path.join("outs", "filtered_feature_bc_matrix.h5")
V2_H5 = os.path.join("outs", "filtered_gene_bc_matrices_h5.h5")
# Nonzeros read from a 10x HDF5 file at a time (h5py holds the GIL while HDF5 inflates them, so
# the writing threads wait that long), and the size a written band aims at when dense.
PIECE_ENTRIES = 1 << 18
BAND_BYTES = 32 << 20


@dataclass
class Counts:
    """A genes x cells count matrix: its shape, dtype and ids, and its columns in pieces, read when asked."""

    where: str  # the file the matrix comes from, for messages
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    pieces: Callable[[], Pieces]
    accession: np.ndarray
    gene: np.ndarray
    barcodes: np.ndarray
    genome: str | None
    features: dict[str, np.ndarray]  # the other per-feature fields (FeatureType, Genome, ...)


def _strings(lines: list[str], field: int) -> np.ndarray:
    """One tab-separated field of each line, stripped (the first field when a line has no such field)."""
    fields = (line.split("\t") for line in lines)
    return np.array(
        [(parts[field] if len(parts) > field else parts[0]).strip() for parts in fields], dtype=object
    )


def _find(folder: str, name: str, gz: bool, what: str) -> str:
    """``name`` in ``folder``, gzipped or not (the expected form first), else LoomNotFoundError."""
    expected = os.path.join(folder, name + (".gz" if gz else ""))
    other = os.path.join(folder, name + ("" if gz else ".gz"))
    if not os.path.isfile(expected) and os.path.isfile(other):
        return other
    return require(expected, what)


def read_mtx_folder(folder: str, gz: bool, genome: str | None, progress: bool | None = None) -> Counts:
    """A cellranger matrix-market folder: v2 (plain files, genes.tsv) or v3+ (gzipped, features.tsv.gz)."""
    features = read_lines(_find(folder, "features.tsv" if gz else "genes.tsv", gz, "Genes file"))
    barcodes = read_lines(_find(folder, "barcodes.tsv", gz, "Barcodes file"))
    path = _find(folder, "matrix.mtx", gz, "Matrix file")
    header = read_header(path)
    ids = (
        _strings(features, 0),
        _strings(features, 1),
        np.array([b.strip() for b in barcodes], dtype=object),
    )
    extra = {}
    if gz and features and all(line.count("\t") >= 2 for line in features):  # v3+: id, name, feature type
        extra["FeatureType"] = _strings(features, 2)
    if header.fast:
        dtype = np.dtype(np.int64 if header.field == "integer" else np.float64)
        return Counts(
            path,
            header.shape,
            dtype,
            lambda: matrix_market_columns(path, header, progress=progress),
            *ids,
            genome,
            extra,
        )
    matrix = sparse.csc_matrix(read_matrix_market(path, progress=progress))  # the rare layouts scipy reads
    return Counts(path, matrix.shape, matrix.dtype, lambda: iter([(0, matrix)]), *ids, genome, extra)


def read_10x_h5(path: str, genome: str | None = None, progress: bool | None = None) -> Counts:
    """A 10x HDF5 matrix: v3+ (``matrix/`` with ``features/``) or v2 (one group per genome, the
    first one unless ``genome`` names another). Counts are read as int64 (floats as float64), as
    the matrix-market reader gives them."""
    matrix = tenx.read_matrix(require(path, "10x HDF5 file"), genome)
    dtype = np.dtype(np.float64 if matrix.data_dtype.kind == "f" else np.int64)
    features = {
        FEATURE_FIELDS.get(key, "".join(part.capitalize() for part in key.split("_"))): values
        for key, values in matrix.fields.items()
    }
    return Counts(
        path,
        matrix.shape,
        dtype,
        lambda: _h5_pieces(path, matrix, dtype, progress),
        matrix.ids,
        matrix.names,
        matrix.barcodes,
        matrix.genome,
        features,
    )


# 10x's per-feature fields (features/ in a v3+ .h5) as row attributes, named as Loom names them
# (loompy keeps none of them)
FEATURE_FIELDS = {"feature_type": "FeatureType", "genome": "Genome", "pattern": "Pattern", "read": "Read",
                  "sequence": "Sequence", "target_gene_id": "TargetGeneID", "target_gene_name": "TargetGeneName"}


def _h5_pieces(path: str, matrix: tenx.TenxMatrix, dtype: np.dtype[Any], progress: bool | None) -> Pieces:
    """The columns of a 10x matrix, about PIECE_ENTRIES nonzeros at a time, in the dtypes the
    matrix-market reader gives (int32 indices below 2**31 nonzeros)."""
    n_rows, n_cols = matrix.shape
    with _progress.bar(n_cols, "importing", progress, "columns") as tick:
        for first, data, rows, column_starts in tenx.column_pieces(path, matrix, dtype, PIECE_ENTRIES):
            width = column_starts.size - 1
            yield first, sparse.csc_matrix((data, rows, column_starts), shape=(n_rows, width))
            tick(width)


MATRIX_FOLDERS = ("filtered_feature_bc_matrix", "filtered_gene_bc_matrices")
H5_NAMES = ("filtered_feature_bc_matrix.h5", "filtered_gene_bc_matrices_h5.h5")
# Folders a path into a cellranger run passes through below the run folder itself
_INSIDE_RUN = {"outs", *MATRIX_FOLDERS, "raw_feature_bc_matrix", "raw_gene_bc_matrices"}


@dataclass
class Location:
    """Where a path given by the user points: the run folder (whose name is the sample, with
    ``outs/analysis``, ``_cmdline`` and ``_versions``; None for a downloaded .h5 that sits alone)
    and the sample's name."""

    run: str | None
    sample: str


def locate(path: str) -> Location:
    """The run folder and sample of any path 10x publishes: the run folder, its ``outs/``, a matrix
    folder (``filtered_feature_bc_matrix/``, a v2 genome folder), or a 10x .h5 file, including the
    downloads 10x names ``<sample>_filtered_feature_bc_matrix.h5``."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        name = os.path.basename(path)
        for suffix in H5_NAMES:
            if name.endswith(suffix) and name != suffix:
                return Location(None, name[: -len(suffix)].rstrip("_-.") or name)
        if name not in H5_NAMES:
            return Location(None, os.path.splitext(name)[0])
        path = os.path.dirname(path)
    parts = path.split(os.sep)
    while len(parts) > 1:
        if parts[-1] in _INSIDE_RUN:
            parts.pop()
        elif len(parts) > 2 and parts[-2] in ("filtered_gene_bc_matrices", "raw_gene_bc_matrices"):
            parts.pop()  # a v2 genome folder
        else:
            break
    run = os.sep.join(parts) or os.sep
    return Location(run, os.path.basename(run))


def _read(indir: str, genome: str | None, source: Source, progress: bool | None) -> Counts:
    """The count matrix at ``indir`` (any path :func:`locate` accepts), from the source the module
    docstring describes."""
    if source not in ("auto", "mtx", "h5"):
        msg = f"source must be 'auto', 'mtx' or 'h5', not {source!r}"
        raise LoomValueError(msg)
    if os.path.isfile(indir):
        if source == "mtx":
            msg = f"'{indir}' is a file; source='mtx' reads a matrix-market folder"
            raise LoomValueError(msg)
        return read_10x_h5(indir, genome, progress)
    if not os.path.isdir(indir):
        msg = (
            f"No such folder or file: '{indir}' (give a cellranger run folder, its outs/, a matrix folder "
            "such as filtered_feature_bc_matrix/, or a 10x .h5 file)"
        )
        raise LoomNotFoundError(msg)
    for root in (os.path.join(indir, "outs"), indir):  # the run folder, or its outs/
        v2 = os.path.join(root, MATRIX_FOLDERS[1])
        if source != "h5" and os.path.isdir(v2):
            genome = genome or tenx.first_genome(os.listdir(v2), v2)
            return read_mtx_folder(os.path.join(v2, genome), False, genome, progress)
        if source != "h5" and os.path.isdir(os.path.join(root, MATRIX_FOLDERS[0])):
            return read_mtx_folder(os.path.join(root, MATRIX_FOLDERS[0]), True, genome, progress)
        if source != "mtx":
            for name in H5_NAMES:
                if os.path.isfile(os.path.join(root, name)):
                    return read_10x_h5(os.path.join(root, name), genome, progress)
    if source != "h5":  # a matrix folder itself: v3+ (features.tsv.gz) or a v2 genome folder (genes.tsv)
        names = set(os.listdir(indir))
        if names & {"matrix.mtx", "matrix.mtx.gz"}:
            v3 = bool(names & {"features.tsv", "features.tsv.gz"})
            parent = os.path.basename(os.path.dirname(os.path.abspath(indir)))
            folder_genome = None if v3 or not parent.endswith("gene_bc_matrices") else os.path.basename(indir)
            return read_mtx_folder(indir, v3, genome or folder_genome, progress)
    wanted = {
        "auto": (V2_FOLDER, V3_FOLDER, V3_H5, V2_H5),
        "mtx": (V2_FOLDER, V3_FOLDER),
        "h5": (V3_H5, V2_H5),
    }
    msg = (
        f"No cellranger matrix in '{indir}': looked for " + ", ".join(wanted[source]) + " (in it or in "
        "its outs/)" + (", and matrix.mtx(.gz) in it" if source != "h5" else "")
    )
    raise LoomNotFoundError(msg)


class ColumnBands:
    """Pieces of columns, given in order, written into a layer in bands of whole chunk columns on a
    second thread while the caller reads the next piece; one band is dense at a time, being
    written. ``keep`` (a mask over the input columns) drops columns on the way. A piece that
    does not start where the previous one ended (a reader starting over) is written from its own
    column, after what was gathered.

    Use it as a context manager: leaving it writes what remains and waits for the writes."""

    def __init__(self, layer: LayerWriter, keep: np.ndarray | None) -> None:
        self.layer, self.keep = layer, keep
        n_rows, chunk_cols = layer.shape[0], layer.chunks[1]
        self.width = max(1, BAND_BYTES // (n_rows * layer.dtype.itemsize * chunk_cols)) * chunk_cols
        # the output column of each input column (and of the end)
        self.output = None if keep is None else np.concatenate([[0], np.cumsum(keep)])
        self.gathered: list[sparse.csc_matrix] = []
        self.start = 0  # output column of the first gathered column
        self.next = 0  # input column the next piece should start at
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="loomfile-import-write")
        self.writing: Future[None] | None = None

    def put(self, first: int, piece: sparse.csc_matrix) -> None:
        if first != self.next:
            self._write_gathered()
            self.start = first if self.output is None else int(self.output[first])
        self.next = first + piece.shape[1]
        if self.keep is not None:
            piece = piece[:, self.keep[first : self.next]]
        if piece.dtype.kind == "f":
            fmt.check_finite(piece.data, "The matrix")
        self.gathered.append(piece)
        width = sum(p.shape[1] for p in self.gathered)
        if width >= self.width:
            band = sparse.hstack(self.gathered, format="csc")
            cut = width // self.width * self.width
            self.gathered = [band[:, cut:]] if cut < width else []
            for lo in range(0, cut, self.width):  # one band at a time, even from a whole matrix
                self._write(self.start + lo, band[:, lo : lo + self.width])
            self.start += cut

    def _write_gathered(self) -> None:
        if self.gathered:
            band = sparse.hstack(self.gathered, format="csc")
            self.gathered = []
            self._write(self.start, band)
            self.start += band.shape[1]

    def _write(self, col: int, band: sparse.csc_matrix) -> None:
        self._wait()
        self.writing = self.writer.submit(lambda: self.layer.write(0, col, band.toarray()))

    def _wait(self) -> None:
        if self.writing is not None:
            writing, self.writing = self.writing, None
            writing.result()

    def __enter__(self) -> ColumnBands:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._write_gathered()
                self._wait()
            else:  # the caller's error is the one to see; the band being written is discarded with the file
                with contextlib.suppress(Exception):
                    self._wait()
        finally:
            self.writer.shutdown(wait=True)


def file_stem(sample: str, feature_types: Sequence[str] | None) -> str:
    """The name of the file made for ``sample`` (with only ``feature_types``, when given)."""
    if feature_types is None:
        return sample
    return f"{sample}-" + "+".join(t.replace(" ", "_") for t in feature_types)


def _rows_of_types(counts: Counts, wanted: list[str]) -> np.ndarray:
    """The rows whose feature type is one of ``wanted`` (all rows are "Gene Expression" in a v2
    matrix, which lists no types); an error naming the types present when one is not."""
    types = counts.features.get("FeatureType")
    if types is None:
        types = np.full(counts.shape[0], "Gene Expression", dtype=object)
    present = sorted(set(types.tolist()))
    unknown = [t for t in wanted if t not in present]
    if unknown or not wanted:
        msg = f"'{counts.where}' has no features of type {unknown or wanted}; its types: {present}"
        raise LoomValueError(msg)
    return np.flatnonzero(np.isin(types, wanted))


def _check_lengths(counts: Counts, col_attrs: Mapping[str, np.ndarray]) -> None:
    """Raise unless the genes, cells and analysis values match the matrix's shape."""
    checks = [("genes", counts.accession.size, 0)]
    checks += [(f"values of {name!r}", values.shape[0], 1) for name, values in col_attrs.items()]
    for what, n, axis in checks:
        if n != counts.shape[axis]:
            msg = f"'{counts.where}' has {counts.shape[axis]} {('rows', 'columns')[axis]}, but there are {n} {what}"
            raise LoomFormatError(msg)


def _analysis_attrs(run: str | None) -> dict[str, np.ndarray]:
    """tSNE ``X``/``Y`` and graph-based ``ClusterID`` (from 0) when the analysis folder has them."""
    attrs: dict[str, np.ndarray] = {}
    if run is None:
        return attrs
    analysis = os.path.join(run, "outs", "analysis")
    for tsne in (
        os.path.join(analysis, "tsne", "projection.csv"),
        os.path.join(analysis, "tsne", "2_components", "projection.csv"),
    ):
        if os.path.exists(tsne):
            xy = np.loadtxt(tsne, usecols=(1, 2), delimiter=",", skiprows=1, ndmin=2)
            attrs["X"] = xy[:, 0].astype("float32")
            attrs["Y"] = xy[:, 1].astype("float32")
            break
    clusters = os.path.join(analysis, "clustering", "graphclust", "clusters.csv")
    if os.path.exists(clusters):
        labels = np.loadtxt(clusters, usecols=(1,), delimiter=",", skiprows=1, ndmin=1)
        attrs["ClusterID"] = labels.astype("int64") - 1
    return attrs


def _file_attrs(run: str | None, genome: str | None, file_attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's globals, plus ``Genome``, ``Cmdline`` and ``Versions`` where loompy adds them."""
    attrs = dict(file_attrs or {})
    if "Genome" not in attrs and genome:
        attrs["Genome"] = genome
    for name, filename, one_line in (("Cmdline", "_cmdline", False), ("Versions", "_versions", True)):
        if run is None:
            break
        path = os.path.join(run, filename)
        if name not in attrs and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                text = f.read().strip()
            attrs[name] = text.replace("\n", " ") if one_line else text
    return attrs


def create_from_cellranger(
    indir: str,
    outdir: str | None = None,
    genome: str | None = None,
    file_attrs: Mapping[str, Any] | None = None,
    selected_cellids: list[str] | None = None,
    *,
    source: Source = "auto",
    feature_types: Sequence[str] | None = None,
    progress: bool | None = None,
) -> str:
    """Create ``{outdir}/{sample}.loom`` from cellranger output; return its path.

        ``indir`` is any of what 10x publishes: a run folder, its ``outs/``, a matrix folder
        (``filtered_feature_bc_matrix/``, or a v2 genome folder under ``filtered_gene_bc_matrices/``),
        or a 10x HDF5 file (``filtered_feature_bc_matrix.h5``, or a download named
        ``<sample>_filtered_feature_bc_matrix.h5``). The sample is the run folder's name (or the
        download's prefix); ``outdir`` defaults to ``indir`` (the file's folder for a .h5).

        As loompy: ``sample`` is the folder's name, CellID is ``sample:barcode``, rows get ``Accession``
        and ``Gene`` (and, unlike loompy, every other per-feature field of a v3+ matrix: ``FeatureType``,
        ``Genome``, and ``Pattern``/``Read``/``Sequence`` of antibody and CRISPR captures), tSNE ``X``/``Y`` and ``ClusterID`` are added when the analysis folder has them,
        and the globals get ``Genome`` (the ``genome`` argument, or the v2 genome read), ``Cmdline``
        and ``Versions`` (from ``_cmdline`` and ``_versions``). ``selected_cellids`` keeps only those
        cells (in the folder's order; loompy 3.0.8 accepts the argument but ignores it).

        ``source`` chooses the matrix: ``"auto"`` (a matrix-market folder, else a 10x HDF5 file; see
        the module docstring), ``"mtx"`` or ``"h5"``. The matrix is read and written a band of columns
        at a time, never whole.

        ``feature_types`` keeps only the rows of those types (``["Antibody Capture"]`` for the
        antibodies of a CITE-seq run), in ``{outdir}/{sample}-{types}.loom``: call once per type to
        split a multi-modal run into files (or keep one file and select on the ``FeatureType`` row
        attribute).

        Examples
        --------
        >>> path = loomfile.create_from_cellranger("runs/sample1", "looms/")
    """
    if outdir is None:
        outdir = os.path.dirname(os.path.abspath(indir)) if os.path.isfile(indir) else indir
    where = locate(indir)
    sample = where.sample
    counts = _read(indir, genome, source, progress)
    row_attrs = {"Accession": counts.accession, "Gene": counts.gene, **counts.features}
    col_attrs: dict[str, np.ndarray] = {
        "CellID": np.array([f"{sample}:{b}" for b in counts.barcodes], dtype=object)
    }
    col_attrs.update(_analysis_attrs(where.run))
    _check_lengths(counts, col_attrs)
    keep = None
    if selected_cellids is not None:
        keep = np.isin(col_attrs["CellID"], np.asarray(selected_cellids, dtype=object))
        col_attrs = {k: v[keep] for k, v in col_attrs.items()}
    rows = None
    name = file_stem(sample, None)
    if feature_types is not None:
        rows = _rows_of_types(counts, list(feature_types))
        row_attrs = {k: v[rows] for k, v in row_attrs.items()}
        name = file_stem(sample, feature_types)
    shape = (counts.shape[0] if rows is None else int(rows.size), col_attrs["CellID"].shape[0])
    if 0 in shape:
        msg = f"'{counts.where}' gives a matrix of shape {shape}; Loom needs at least one row and one column"
        raise LoomValueError(msg)

    def fill(layer: LayerWriter) -> None:
        with ColumnBands(layer, keep) as bands:
            for first, piece in counts.pieces():
                bands.put(first, piece if rows is None else piece[rows])

    path = os.path.join(outdir, f"{name}.loom")
    with new(path, file_attrs=_file_attrs(where.run, counts.genome, file_attrs)) as ds:
        ds.layers.create("", shape, counts.dtype, fill=fill)
        for name, values in row_attrs.items():
            ds.ra[name] = values
        for name, values in col_attrs.items():
            ds.ca[name] = values
    return path
