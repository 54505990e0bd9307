"""Realistic benchmark datasets, written by loompy itself so both libraries read the same bytes.

Genes x cells, negative-binomial-like counts (~80-90% zeros) as the float32 main matrix, a uint16
layer, string and numeric attributes on both axes, an (n_cells, 20) embedding and a KNN graph.
Files are generated once into ``benchmarks/data/`` (ignored by git) and reused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sparse

DATA_DIR = Path(__file__).resolve().parent / "data"
N_CLUSTERS = 8
BATCH = 2500


class Model:
    """A fixed per-gene expression model; cells are drawn in batches from it."""

    def __init__(self, n_genes: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.n_genes = n_genes
        self.gene_scale = rng.gamma(0.3, 2.0, n_genes)
        self.profile = rng.gamma(2.0, 0.5, (n_genes, N_CLUSTERS))
        self.seed = seed

    def cells(self, start: int, n: int) -> dict[str, Any]:
        rng = np.random.default_rng((self.seed, start))
        clusters = rng.integers(0, N_CLUSTERS, n)
        depth = rng.gamma(5.0, 0.2, n)
        mean = self.gene_scale[:, None] * self.profile[:, clusters] * depth[None, :]
        counts = rng.poisson(rng.gamma(2.0, mean / 2.0)).astype(np.float32)
        unspliced = rng.binomial(counts.astype(np.int64), 0.3).astype(np.uint16)
        barcodes = rng.integers(0, 4, (n, 14))
        letters = np.array(list("ACGT"))
        cell_ids = np.array(
            [f"s1:{''.join(letters[b])}-{start + i}" for i, b in enumerate(barcodes)], dtype=object
        )
        return {
            "layers": {"": counts, "unspliced": unspliced},
            "col_attrs": {
                "CellID": cell_ids,
                "ClusterID": clusters.astype(np.int64),
                "Tissue": np.array(["brain", "liver", "lung", "gut"], dtype=object)[clusters % 4],
                "TotalUMI": counts.sum(axis=0).astype(np.float64),
                "PCA": (rng.normal(size=(n, 20)) + clusters[:, None]).astype(np.float32),
            },
        }

    def row_attrs(self) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed + 1)
        return {
            "Gene": np.array([f"Gene{i:05d}" for i in range(self.n_genes)], dtype=object),
            "Accession": np.array([f"ENSMUSG{i:011d}" for i in range(self.n_genes)], dtype=object),
            "Chromosome": rng.choice(np.array(["chr1", "chr2", "chrX", "chrM"], dtype=object), self.n_genes),
            "GeneScale": self.gene_scale.astype(np.float64),
        }


def knn_graph(n_cells: int, k: int = 10, seed: int = 0) -> sparse.coo_matrix:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_cells), k)
    cols = rng.integers(0, n_cells, n_cells * k)
    return sparse.coo_matrix(
        (rng.random(n_cells * k).astype(np.float32), (rows, cols)), shape=(n_cells, n_cells)
    )


def path_for(n_genes: int, n_cells: int) -> Path:
    return DATA_DIR / f"bench_{n_genes}x{n_cells}.loom"


def ensure(n_genes: int, n_cells: int, seed: int = 0) -> Path:
    """The benchmark file of this size, generated with loompy if it does not exist yet."""
    import loompy

    path = path_for(n_genes, n_cells)
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    if tmp.exists():
        tmp.unlink()
    model = Model(n_genes, seed)
    print(f"generating {path.name} with loompy {loompy.__version__} ...", flush=True)
    with loompy.new(str(tmp)) as ds:
        for start in range(0, n_cells, BATCH):
            batch = model.cells(start, min(BATCH, n_cells - start))
            ds.add_columns(batch["layers"], col_attrs=batch["col_attrs"], row_attrs=model.row_attrs())
        ds.col_graphs["KNN"] = knn_graph(n_cells, seed=seed)
        ds.attrs["Title"] = f"benchmark {n_genes}x{n_cells}"
    os.replace(tmp, path)
    return path
