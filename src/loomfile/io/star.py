"""``create_from_star``: a Loom file from STARsolo output (loompy's importer, without its crashes).

STARsolo writes one folder per feature type under ``Solo.out`` (``Gene``, ``GeneFull``, ...), each
with ``filtered`` and ``raw`` Matrix Market matrices (genes x barcodes), and ``Velocyto`` with the
spliced, unspliced and ambiguous counts (three ``.mtx`` files since STAR 2.7.9, one five-column
``matrix.mtx`` before). Matrices are read by the fast Matrix Market reader as sparse matrices and
written band by band: nothing is ever dense in memory (loompy densifies every layer).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sparse

from .._core.connection import create
from .._errors import LoomFormatError, LoomValueError
from .._warn import warn_caller
from ._cell_calling import call_cells
from ._text import read_lines, require
from .matrix_market import read_matrix_market
from .metadata import load_sample_metadata, make_row_attrs_from_gene_metadata

GENE_TYPES = ("Gene", "GeneFull", "GeneFull_ExonOverIntron", "GeneFull_Ex50pAS")
VELOCYTO = ("spliced", "unspliced", "ambiguous")
CELL_FILTERS = ("star", "none", "emptydrops", "combine", *GENE_TYPES)


def _solo_out(indir: str) -> str:
    return (
        indir if os.path.basename(os.path.normpath(indir)) == "Solo.out" else os.path.join(indir, "Solo.out")
    )


def _barcodes(folder: str) -> list[str]:
    return [
        line.rstrip()
        for line in read_lines(require(os.path.join(folder, "barcodes.tsv"), "STARsolo barcodes"))
    ]


def _counts(path: str, shape: tuple[int, int]) -> sparse.csc_matrix:
    matrix = read_matrix_market(require(path, "STARsolo matrix"))
    if matrix.shape != shape:
        msg = f"{path} is {matrix.shape[0]} x {matrix.shape[1]}; features.tsv and barcodes.tsv give {shape}"
        raise LoomFormatError(msg)
    return sparse.csc_matrix(matrix, dtype=np.float64)


def _legacy_velocyto(path: str, shape: tuple[int, int]) -> dict[str, sparse.csc_matrix]:
    """STAR < 2.7.9's five-column ``matrix.mtx``: gene, barcode, spliced, unspliced, ambiguous."""
    with open(path, encoding="utf-8") as f:
        line = f.readline()
        while line.startswith("%"):
            line = f.readline()
        entries = np.loadtxt(f, ndmin=2)
    if entries.size and entries.shape[1] != 5:
        msg = f"{path}: a STARsolo Velocyto matrix has 5 columns per entry, not {entries.shape[1]}"
        raise LoomFormatError(msg)
    rows, cols = entries[:, 0].astype(np.int64) - 1, entries[:, 1].astype(np.int64) - 1
    return {
        name: sparse.csc_matrix((entries[:, 2 + i], (rows, cols)), shape=shape)
        for i, name in enumerate(VELOCYTO)
    }


def _aligned(
    matrix: sparse.csc_matrix, barcodes: list[str], valid: Mapping[str, int]
) -> tuple[Any, np.ndarray]:
    """``matrix`` with its columns moved to the positions of ``valid`` (zero where a valid barcode is
    missing), and 1 where each valid barcode was present."""
    src = [i for i, bc in enumerate(barcodes) if bc in valid]
    dst = [valid[barcodes[i]] for i in src]
    move = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(len(barcodes), len(valid)))
    present = np.zeros(len(valid), dtype=np.int64)
    present[dst] = 1
    return sparse.csc_matrix(matrix @ move), present


def create_from_star(
    indir: str,
    outfile: str,
    sample_id: str,
    cell_filter: str = "star",
    expected_n_cells: int = 0,
    min_total_umis: int = 0,
    ambient_pthreshold: float = 1.0,
    sample_metadata_file: str | None = None,
    gtf_file: str | None = None,
    main_layer: str = "velosum",
    extra_layers: Iterable[str] | None = None,
    file_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Create a Loom file from the STARsolo output in ``indir`` (the folder holding ``Solo.out``, or
    ``Solo.out`` itself), with loompy's arguments and layout.

    Layers: ``spliced``, ``unspliced``, ``ambiguous`` (from ``Solo.out/Velocyto``) and each of
    ``extra_layers`` (``Gene``, ``GeneFull``, ...); the main matrix is their velocyto sum
    (``main_layer="velosum"``) or the layer named by ``main_layer``. Columns are the cells chosen by
    ``cell_filter``: ``"star"`` (Velocyto's filtered barcodes), ``"none"`` (every raw barcode), a
    feature type (its filtered barcodes), ``"combine"`` (every filtered barcode of any layer), or
    ``"emptydrops"`` (:func:`call_cells` on the spliced counts: barcodes with an adjusted p-value
    <= ``ambient_pthreshold`` or at least ``min_total_umis`` UMIs). Column attributes: ``CellID``
    (``{sample_id}:{barcode}``), ``Valid_<layer>`` (1 where that layer has the barcode),
    ``BarcodeTotalUMIs``, the sample's metadata and, for emptydrops, ``AmbientPValue`` and
    ``AmbientUMIs``. Row attributes: ``Gene`` and ``Accession``, or those of ``gtf_file``.

    Counts are stored as float64, as loompy stores them. Unlike loompy, ``"none"`` and
    ``"emptydrops"`` work, an unknown ``cell_filter`` or a missing requested layer is an error, and
    the order of ``"combine"``'s cells is that of first appearance (loompy's is a set's).

    Examples
    --------
    >>> loomfile.create_from_star("star_out/", "sample.loom", "10X01_1", extra_layers=["GeneFull"])
    """
    if cell_filter not in CELL_FILTERS:
        msg = f"Unknown cell_filter {cell_filter!r}; use one of {list(CELL_FILTERS)}"
        raise LoomValueError(msg)
    if main_layer != "velosum" and main_layer not in GENE_TYPES:
        msg = f"Unknown main_layer {main_layer!r}; use 'velosum' or one of {list(GENE_TYPES)}"
        raise LoomValueError(msg)
    solo = _solo_out(indir)
    subdir = "raw" if cell_filter == "none" else "filtered"
    velodir = os.path.join(solo, "Velocyto", subdir)
    features = [
        line.rstrip("\n").split("\t")
        for line in read_lines(require(os.path.join(velodir, "features.tsv"), "STARsolo features"))
    ]
    accessions, genes = [f[0] for f in features], [f[1] if len(f) > 1 else f[0] for f in features]
    gene_types = list(extra_layers or [])
    gene_types += [t for t in (cell_filter, main_layer) if t in GENE_TYPES and t not in gene_types]

    layers: dict[str, sparse.csc_matrix] = {}
    barcodes: dict[str, list[str]] = {}
    for gene_type in gene_types:
        folder = os.path.join(solo, gene_type, subdir)
        barcodes[gene_type] = _barcodes(folder)
        layers[gene_type] = _counts(
            os.path.join(folder, "matrix.mtx"), (len(features), len(barcodes[gene_type]))
        )
    velo_barcodes = _barcodes(velodir)
    shape = (len(features), len(velo_barcodes))
    legacy = os.path.join(velodir, "matrix.mtx")
    if os.path.exists(legacy):
        layers.update(_legacy_velocyto(legacy, shape))
    else:
        for name in VELOCYTO:
            layers[name] = _counts(os.path.join(velodir, f"{name}.mtx"), shape)
    for name in VELOCYTO:
        barcodes[name] = velo_barcodes

    extra_ca: dict[str, np.ndarray] = {}
    if cell_filter == "emptydrops":
        total = np.asarray(layers["spliced"].sum(axis=0)).ravel()
        ambient_umis, pvalues = call_cells(layers["spliced"], expected_n_cells)
        keep = (pvalues <= ambient_pthreshold) | (total >= min_total_umis)
        cells = [bc for bc, k in zip(velo_barcodes, keep, strict=True) if k]
        extra_ca = {"AmbientPValue": pvalues[keep], "AmbientUMIs": np.full(len(cells), ambient_umis)}
    elif cell_filter == "combine":
        cells = list(dict.fromkeys(bc for name in layers for bc in barcodes[name]))
    elif cell_filter in GENE_TYPES:
        cells = barcodes[cell_filter]
    else:  # "star" (Velocyto's filtered barcodes) or "none" (its raw ones)
        cells = velo_barcodes

    position = {bc: i for i, bc in reversed(list(enumerate(cells)))}  # (the first of repeated barcodes)
    col_attrs: dict[str, np.ndarray] = {"CellID": np.array([f"{sample_id}:{bc}" for bc in cells])}
    for name in list(layers):
        layers[name], col_attrs[f"Valid_{name}"] = _aligned(layers[name], barcodes[name], position)
    main = (
        layers["spliced"] + layers["unspliced"] + layers["ambiguous"]
        if main_layer == "velosum"
        else layers.pop(main_layer)
    )
    col_attrs["BarcodeTotalUMIs"] = np.asarray(main.sum(axis=0)).ravel()
    col_attrs.update(extra_ca)
    if sample_metadata_file:
        try:
            metadata = load_sample_metadata(sample_metadata_file, sample_id)
        except (LoomValueError, OSError) as e:
            warn_caller(
                f"No sample metadata for {sample_id!r} in {sample_metadata_file!r} ({e}); columns not annotated"
            )
            metadata = {}
        col_attrs.update({key: np.full(len(cells), value) for key, value in metadata.items()})
    if gtf_file:
        row_attrs = make_row_attrs_from_gene_metadata(gtf_file, accessions)
    else:
        row_attrs = {"Gene": np.array(genes), "Accession": np.array(accessions)}
    create(outfile, {"": main, **layers}, row_attrs, col_attrs, file_attrs=file_attrs)
