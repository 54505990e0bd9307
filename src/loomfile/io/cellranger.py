"""Import 10x Genomics cellranger output: v2 and v3+ matrix-market folders and 10x HDF5 matrices.

Where the matrix comes from (``source="auto"``, the default), in this order:

1. ``outs/filtered_gene_bc_matrices/<genome>/`` (v2: matrix.mtx, genes.tsv, barcodes.tsv),
2. ``outs/filtered_feature_bc_matrix/`` (v3+: matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz),
3. ``outs/filtered_feature_bc_matrix.h5`` (v3+ HDF5: ``matrix/{data,indices,indptr,shape,barcodes,
   features/{id,name,...}}``),
4. ``outs/filtered_gene_bc_matrices_h5.h5`` (v2 HDF5: ``<genome>/{data,indices,indptr,shape,
   barcodes,genes,gene_names}``).

The folders come first because they are what loompy reads, so a folder holding both gives loompy's
file; the HDF5 matrices (which loompy cannot read) are used when no folder is there, or when asked
with ``source="h5"`` (``source="mtx"`` insists on a folder). Both give the same file for the same data:
integer counts are stored as int64 (what loompy's matrix-market reader gives), genes and barcodes
as the same strings.

The matrix stays sparse throughout (CSC, 12 bytes per nonzero with its int32 row index), and the
Loom file is written from it band by band; loompy makes it dense first (8 bytes per matrix element).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import h5py
import numpy as np
import scipy.sparse as sparse

from .._errors import LoomFormatError, LoomNotFoundError, LoomValueError
from ..connection import create
from ._text import read_lines, require
from .matrix_market import read_matrix_market

Source = Literal["auto", "mtx", "h5"]
V2_FOLDER = os.path.join("outs", "filtered_gene_bc_matrices")
V3_FOLDER = os.path.join("outs", "filtered_feature_bc_matrix")
V3_H5 = os.path.join("outs", "filtered_feature_bc_matrix.h5")
V2_H5 = os.path.join("outs", "filtered_gene_bc_matrices_h5.h5")


@dataclass
class CountMatrix:
    """A genes x cells matrix with its gene ids and names, cell barcodes and (v2) genome."""

    matrix: sparse.csc_matrix
    accession: np.ndarray
    gene: np.ndarray
    barcodes: np.ndarray
    genome: str | None


def _first_genome(names: list[str], where: str) -> str:
    genomes = sorted(name for name in names if not name.startswith("."))
    if not genomes:
        msg = f"No genome in '{where}'"
        raise LoomNotFoundError(msg)
    return genomes[0]


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


def read_mtx_folder(folder: str, gz: bool, genome: str | None, progress: bool | None = None) -> CountMatrix:
    """A cellranger matrix-market folder: v2 (plain files, genes.tsv) or v3+ (gzipped, features.tsv.gz)."""
    features = read_lines(_find(folder, "features.tsv" if gz else "genes.tsv", gz, "Genes file"))
    barcodes = read_lines(_find(folder, "barcodes.tsv", gz, "Barcodes file"))
    matrix = read_matrix_market(_find(folder, "matrix.mtx", gz, "Matrix file"), progress=progress)
    return CountMatrix(
        matrix if sparse.issparse(matrix) else sparse.csc_matrix(matrix),
        _strings(features, 0),
        _strings(features, 1),
        np.array([b.strip() for b in barcodes], dtype=object),
        genome,
    )


def _dataset(group: h5py.Group, name: str) -> h5py.Dataset:
    if name not in group:
        msg = f"'{group.file.filename}' is not a 10x HDF5 matrix: it has no '{group.name.rstrip('/')}/{name}'"
        raise LoomFormatError(msg)
    return group[name]


def _h5_strings(group: h5py.Group, name: str) -> np.ndarray:
    return np.array([value.strip() for value in _dataset(group, name).asstr()[()]], dtype=object)


def read_10x_h5(path: str, genome: str | None = None) -> CountMatrix:
    """A 10x HDF5 matrix: v3+ (``matrix/`` with ``features/``) or v2 (one group per genome, the
    first one unless ``genome`` names another)."""
    with h5py.File(require(path, "10x HDF5 file"), "r") as f:
        if "matrix" in f:
            group = f["matrix"]
            features = _dataset(group, "features")
            ids, names = "id", "name"
        else:
            genome = genome or _first_genome([k for k in f if isinstance(f[k], h5py.Group)], path)
            if genome not in f:
                msg = f"'{path}' has no genome '{genome}'; it has {sorted(f)}"
                raise LoomNotFoundError(msg)
            group = features = f[genome]
            ids, names = "genes", "gene_names"
        return CountMatrix(
            _h5_matrix(path, group),
            _h5_strings(features, ids),
            _h5_strings(features, names),
            _h5_strings(group, "barcodes"),
            genome,
        )


def _h5_matrix(path: str, group: h5py.Group) -> sparse.csc_matrix:
    """The CSC matrix of a 10x group, in the dtypes the matrix-market reader gives (int64 or float64
    values, int32 indices below 2**31 nonzeros), converted by HDF5 while reading."""
    shape = tuple(int(n) for n in _dataset(group, "shape")[()])
    data = _dataset(group, "data")
    nnz = data.shape[0]
    value_dtype = np.float64 if data.dtype.kind == "f" else np.int64
    index_dtype = np.int64 if nnz >= 2**31 else np.int32
    indptr = _dataset(group, "indptr").astype(index_dtype)[()]
    indices = _dataset(group, "indices")
    if len(shape) != 2 or indptr.shape != (shape[1] + 1,) or indices.shape != (nnz,) or indptr[-1] != nnz:
        msg = (
            f"'{path}': the matrix in '{group.name}' is inconsistent (shape {shape}, {nnz} values, "
            f"{indices.shape[0]} indices, {indptr.shape[0]} column pointers ending at {indptr[-1]})"
        )
        raise LoomFormatError(msg)
    values = data.astype(value_dtype)[()]
    return sparse.csc_matrix((values, indices.astype(index_dtype)[()], indptr), shape=shape)


def _read(indir: str, genome: str | None, source: Source, progress: bool | None) -> CountMatrix:
    """The count matrix of a cellranger folder, from the source the module docstring describes."""
    if source not in ("auto", "mtx", "h5"):
        msg = f"source must be 'auto', 'mtx' or 'h5', not {source!r}"
        raise LoomValueError(msg)
    v2 = os.path.join(indir, V2_FOLDER)
    if source != "h5" and os.path.isdir(v2):
        genome = genome or _first_genome(os.listdir(v2), v2)
        return read_mtx_folder(os.path.join(v2, genome), False, genome, progress)
    if source != "h5" and os.path.isdir(os.path.join(indir, V3_FOLDER)):
        return read_mtx_folder(os.path.join(indir, V3_FOLDER), True, genome, progress)
    if source != "mtx":
        for name in (V3_H5, V2_H5):
            if os.path.isfile(os.path.join(indir, name)):
                return read_10x_h5(os.path.join(indir, name), genome)
    wanted = {
        "auto": (V2_FOLDER, V3_FOLDER, V3_H5, V2_H5),
        "mtx": (V2_FOLDER, V3_FOLDER),
        "h5": (V3_H5, V2_H5),
    }
    msg = f"No cellranger matrix in '{indir}': looked for " + ", ".join(wanted[source])
    raise LoomNotFoundError(msg)


def _analysis_attrs(indir: str) -> dict[str, np.ndarray]:
    """tSNE ``X``/``Y`` and graph-based ``ClusterID`` (from 0) when the analysis folder has them."""
    attrs: dict[str, np.ndarray] = {}
    analysis = os.path.join(indir, "outs", "analysis")
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


def _file_attrs(indir: str, genome: str | None, file_attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's globals, plus ``Genome``, ``Cmdline`` and ``Versions`` where loompy adds them."""
    attrs = dict(file_attrs or {})
    if "Genome" not in attrs and genome:
        attrs["Genome"] = genome
    for name, filename, one_line in (("Cmdline", "_cmdline", False), ("Versions", "_versions", True)):
        path = os.path.join(indir, filename)
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
    progress: bool | None = None,
) -> str:
    """Create ``{outdir}/{sample}.loom`` from a cellranger output folder; return its path.

    As loompy: ``sample`` is the folder's name, CellID is ``sample:barcode``, rows get ``Accession``
    and ``Gene``, tSNE ``X``/``Y`` and ``ClusterID`` are added when the analysis folder has them,
    and the globals get ``Genome`` (the ``genome`` argument, or the v2 genome read), ``Cmdline``
    and ``Versions`` (from ``_cmdline`` and ``_versions``). ``selected_cellids`` keeps only those
    cells (in the folder's order; loompy 3.0.8 accepts the argument but ignores it).

    ``source`` chooses the matrix: ``"auto"`` (a matrix-market folder, else a 10x HDF5 file; see
    the module docstring), ``"mtx"`` or ``"h5"``. The matrix stays sparse throughout.

    Examples
    --------
    >>> path = loomfile.create_from_cellranger("runs/sample1", "looms/")
    """
    outdir = indir if outdir is None else outdir
    sample = os.path.basename(os.path.abspath(indir))
    counts = _read(indir, genome, source, progress)
    row_attrs = {"Accession": counts.accession, "Gene": counts.gene}
    col_attrs: dict[str, np.ndarray] = {
        "CellID": np.array([f"{sample}:{b}" for b in counts.barcodes], dtype=object)
    }
    col_attrs.update(_analysis_attrs(indir))
    matrix = counts.matrix
    if selected_cellids is not None:
        keep = np.isin(col_attrs["CellID"], np.asarray(selected_cellids, dtype=object))
        matrix = matrix[:, keep]
        col_attrs = {k: v[keep] for k, v in col_attrs.items()}
    path = os.path.join(outdir, f"{sample}.loom")
    create(path, matrix, row_attrs, col_attrs, file_attrs=_file_attrs(indir, counts.genome, file_attrs))
    return path
