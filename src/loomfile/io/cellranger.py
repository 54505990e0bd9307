"""Import 10x Genomics cellranger output folders (v2 and v3+ matrix-market layouts)."""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
import scipy.io
import scipy.sparse as sparse

from .._errors import LoomNotFoundError
from ..connection import create


def _open_text(path: str) -> IO[str]:
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")


def _read_lines(path: str) -> list[str]:
    with _open_text(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _matrix_folder(indir: str, genome: str | None) -> tuple[str, str, str | None]:
    """(folder, features file name, genome) for a v2 or v3+ layout."""
    v2 = os.path.join(indir, "outs", "filtered_gene_bc_matrices")
    if os.path.isdir(v2):
        if genome is None:
            genomes = sorted(f for f in os.listdir(v2) if not f.startswith("."))
            if not genomes:
                msg = f"No genome folder in {v2}"
                raise LoomNotFoundError(msg)
            genome = genomes[0]
        return os.path.join(v2, genome), "genes.tsv", genome
    v3 = os.path.join(indir, "outs", "filtered_feature_bc_matrix")
    if os.path.isdir(v3):
        return v3, "features.tsv.gz", genome
    msg = f"'{indir}' has neither outs/filtered_gene_bc_matrices nor outs/filtered_feature_bc_matrix"
    raise LoomNotFoundError(msg)


def _find(folder: str, name: str) -> str:
    for candidate in (name, name + ".gz", name.removesuffix(".gz")):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    msg = f"'{os.path.join(folder, name)}' not found"
    raise LoomNotFoundError(msg)


def _analysis_attrs(indir: str) -> dict[str, np.ndarray]:
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
    attrs = dict(file_attrs or {})
    if "Genome" not in attrs:
        invocation = os.path.join(indir, "_invocation")
        if genome is None and os.path.exists(invocation):
            with open(invocation, encoding="utf-8") as f:
                for line in f:
                    m = re.search(r'reference_path.+"([^"]+)"', line)
                    if m:
                        genome = m.group(1)
                        break
        if genome:
            attrs["Genome"] = genome
    for name, filename in (("Cmdline", "_cmdline"), ("Versions", "_versions")):
        path = os.path.join(indir, filename)
        if name not in attrs and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                attrs[name] = f.read().strip().replace("\n", " ")
    return attrs


def create_from_cellranger(
    indir: str,
    outdir: str | None = None,
    genome: str | None = None,
    file_attrs: Mapping[str, Any] | None = None,
    selected_cellids: list[str] | None = None,
) -> str:
    """Create ``{outdir}/{sample}.loom`` from a cellranger output folder; return its path.

    As loompy: CellID is ``sample:barcode``, rows get ``Accession`` and ``Gene``, and tSNE ``X``/``Y``
    and ``ClusterID`` are added when the analysis folder exists. The matrix stays sparse throughout.
    """
    outdir = indir if outdir is None else outdir
    sample = os.path.basename(os.path.abspath(indir))
    folder, features_name, genome = _matrix_folder(indir, genome)
    matrix = sparse.csc_matrix(
        scipy.io.mmread(_find(folder, "matrix.mtx.gz" if features_name.endswith(".gz") else "matrix.mtx"))
    )
    features = [line.split("\t") for line in _read_lines(_find(folder, features_name))]
    barcodes = _read_lines(
        _find(folder, "barcodes.tsv.gz" if features_name.endswith(".gz") else "barcodes.tsv")
    )
    row_attrs = {
        "Accession": np.array([f[0] for f in features], dtype=object),
        "Gene": np.array([f[1].strip() if len(f) > 1 else f[0] for f in features], dtype=object),
    }
    col_attrs: dict[str, np.ndarray] = {
        "CellID": np.array([f"{sample}:{b.strip()}" for b in barcodes], dtype=object)
    }
    col_attrs.update(_analysis_attrs(indir))
    if selected_cellids is not None:
        keep = np.isin(col_attrs["CellID"], np.asarray(selected_cellids, dtype=object))
        matrix = matrix[:, keep]
        col_attrs = {k: v[keep] for k, v in col_attrs.items()}
    path = os.path.join(outdir, f"{sample}.loom")
    create(path, matrix, row_attrs, col_attrs, file_attrs=_file_attrs(indir, genome, file_attrs))
    return path
