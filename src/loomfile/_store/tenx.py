"""Reading 10x Genomics HDF5 files: the matrices cellranger writes (``filtered_feature_bc_matrix.h5``,
v3+: ``matrix/{data,indices,indptr,shape,barcodes,features/{id,name,...}}``; and
``filtered_gene_bc_matrices_h5.h5``, v2: ``<genome>/{data,indices,indptr,shape,barcodes,genes,
gene_names}``), as numpy arrays.

``read_matrix`` reads everything but the nonzeros (checking that the datasets agree);
``column_pieces`` reads the nonzeros a range of columns at a time. ``io.cellranger`` builds Loom
files from them; h5py stays here, in the storage layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from .._errors import LoomFormatError, LoomNotFoundError


@dataclass
class TenxMatrix:
    """What a 10x HDF5 file says about its matrix, besides the nonzeros (see ``column_pieces``)."""

    group: str  # the HDF5 path of the matrix's group (/matrix, or the genome's in a v2 file)
    genome: str | None  # the genome asked for, or (v2) the one read
    shape: tuple[int, int]
    indptr: np.ndarray  # the column pointers, int64
    data_dtype: np.dtype[Any]  # the dtype the counts are stored in
    ids: np.ndarray  # per feature (object arrays of str, stripped)
    names: np.ndarray
    barcodes: np.ndarray
    fields: dict[str, np.ndarray]  # the other per-feature fields of a v3+ matrix, by 10x's names


def first_genome(names: list[str], where: str) -> str:
    """The genome a 10x v2 matrix gives by default: the first name in order (hidden ones left out)."""
    genomes = sorted(name for name in names if not name.startswith("."))
    if not genomes:
        msg = f"No genome in '{where}'"
        raise LoomNotFoundError(msg)
    return genomes[0]


def _dataset(group: h5py.Group, name: str) -> h5py.Dataset:
    if name not in group:
        msg = f"'{group.file.filename}' is not a 10x HDF5 matrix: it has no '{group.name.rstrip('/')}/{name}'"
        raise LoomFormatError(msg)
    return group[name]


def _strings(group: h5py.Group, name: str) -> np.ndarray:
    return np.array([value.strip() for value in _dataset(group, name).asstr()[()]], dtype=object)


def read_matrix(path: str, genome: str | None = None) -> TenxMatrix:
    """The matrix of the 10x HDF5 file at ``path``: v3+ (``matrix/`` with ``features/``) or v2 (one
    group per genome, the first one unless ``genome`` names another)."""
    with h5py.File(path, "r") as f:
        if "matrix" in f:
            group = f["matrix"]
            features = _dataset(group, "features")
            ids, names = "id", "name"
        else:
            genome = genome or first_genome([k for k in f if isinstance(f[k], h5py.Group)], path)
            if genome not in f:
                msg = f"'{path}' has no genome '{genome}'; it has {sorted(f)}"
                raise LoomNotFoundError(msg)
            group = features = f[genome]
            ids, names = "genes", "gene_names"
        shape, indptr = _layout(path, group)
        return TenxMatrix(
            group.name,
            genome,
            shape,
            indptr,
            np.dtype(_dataset(group, "data").dtype),
            _strings(features, ids),
            _strings(features, names),
            _strings(group, "barcodes"),
            _feature_fields(features, (ids, names)) if features is not group else {},
        )


def _feature_fields(features: h5py.Group, taken: tuple[str, str]) -> dict[str, np.ndarray]:
    """Every per-feature field of a v3+ matrix besides the id and name: feature type, genome, and
    the pattern/read/sequence of antibody and CRISPR captures."""
    n = features[taken[0]].shape[0]
    fields = {}
    for key, dset in features.items():
        if key in taken or key.startswith("_") or not isinstance(dset, h5py.Dataset) or dset.shape != (n,):
            continue
        fields[key] = _strings(features, key) if dset.dtype.kind in "SOU" else dset[()]
    return fields


def _layout(path: str, group: h5py.Group) -> tuple[tuple[int, int], np.ndarray]:
    """The shape and column pointers of a 10x group, checked against its datasets."""
    shape = tuple(int(n) for n in _dataset(group, "shape")[()])
    nnz = _dataset(group, "data").shape[0]
    indptr = _dataset(group, "indptr")[()].astype(np.int64)
    n_indices = _dataset(group, "indices").shape[0]
    if (
        len(shape) != 2
        or indptr.shape != (shape[1] + 1,)
        or n_indices != nnz
        or indptr[0] != 0
        or indptr[-1] != nnz
        or (np.diff(indptr) < 0).any()
    ):
        msg = (
            f"'{path}': the matrix in '{group.name}' is inconsistent (shape {shape}, {nnz} values, "
            f"{n_indices} indices, {indptr.shape[0]} column pointers from {indptr[0]} to {indptr[-1]})"
        )
        raise LoomFormatError(msg)
    return (shape[0], shape[1]), indptr


def column_pieces(
    path: str, matrix: TenxMatrix, dtype: np.dtype[Any], entries: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The columns of ``matrix`` (read from ``path``), about ``entries`` nonzeros at a time, as
    (first column, values, row indices, column starts from 0): the CSC arrays of the columns from
    the first on. HDF5 converts while reading, the values to ``dtype`` and the row indices to int32
    (int64 from 2**31 nonzeros on)."""
    indptr, n_rows = matrix.indptr, matrix.shape[0]
    index_dtype = np.int64 if indptr[-1] >= 2**31 else np.int32
    n_cols = indptr.size - 1
    with h5py.File(path, "r") as f:
        group = f[matrix.group]
        data, indices = group["data"].astype(dtype), group["indices"].astype(index_dtype)
        first = 0
        while first < n_cols:
            stop = max(first + 1, int(np.searchsorted(indptr, indptr[first] + entries, "right")) - 1)
            stop = min(stop, n_cols)
            lo, hi = int(indptr[first]), int(indptr[stop])
            rows = indices[lo:hi]
            if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
                msg = f"'{path}': a row index of columns {first}..{stop - 1} is outside 0..{n_rows - 1}"
                raise LoomFormatError(msg)
            yield first, data[lo:hi], rows, (indptr[first : stop + 1] - lo).astype(index_dtype)
            first = stop
