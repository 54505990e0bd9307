"""``loomfile demo``: build a realistic dataset, write it, and walk through the main calls."""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sparse

from .._api.connection import connect, new
from .._core.connection import create


def _barcodes(rng: np.random.Generator, n: int, sample: str) -> np.ndarray:
    """``n`` distinct 14-base barcodes, prefixed with the sample as cellranger's importer names cells
    (drawn without replacement: random ones collide by the birthday bound beyond ~10000 cells)."""
    codes = rng.choice(4**14, size=n, replace=False)
    bases = np.array(list("ACGT"))[(codes[:, None] >> (2 * np.arange(13, -1, -1))) & 3]
    return np.array([f"{sample}:{''.join(b)}-1" for b in bases], dtype=object)


def generate(n_genes: int, n_cells: int, seed: int = 0) -> dict[str, Any]:
    """Negative-binomial-like counts (~90% zeros), gene/cell annotations, a PCA and a KNN graph."""
    rng = np.random.default_rng(seed)
    n_clusters = 8
    clusters = rng.integers(0, n_clusters, n_cells)
    gene_scale = rng.gamma(0.3, 2.0, n_genes)
    gene_scale[:2] = 5.0  # Actb and Gapdh are highly expressed
    cluster_profile = rng.gamma(2.0, 0.5, (n_genes, n_clusters))
    mean = gene_scale[:, None] * cluster_profile[:, clusters] * rng.gamma(5.0, 0.2, n_cells)[None, :]
    counts = rng.poisson(rng.gamma(2.0, mean / 2.0)).astype(np.float32)
    spliced = np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)
    unspliced = rng.binomial(spliced.astype(np.int64), 0.3).astype(np.uint16)
    genes = np.array([f"Gene{i:05d}" for i in range(n_genes)], dtype=object)
    genes[:4] = ["Actb", "Gapdh", "S6Kβ", "Malat1"]
    embedding = rng.normal(size=(n_cells, 20)) + clusters[:, None]
    k = 10
    neighbours = rng.integers(0, n_cells, (n_cells, k))
    knn = sparse.coo_matrix(
        (np.ones(n_cells * k), (np.repeat(np.arange(n_cells), k), neighbours.ravel())),
        shape=(n_cells, n_cells),
    )
    return {
        "matrix": sparse.csr_matrix(counts),
        "layers": {"spliced": spliced, "unspliced": unspliced},
        "row_attrs": {
            "Gene": genes,
            "Accession": np.array([f"ENSMUSG{i:011d}" for i in range(n_genes)], dtype=object),
            "Chromosome": rng.choice(np.array(["chr1", "chr2", "chrX", "chrM"], dtype=object), n_genes),
        },
        "col_attrs": {
            "CellID": _barcodes(rng, n_cells, f"sample{seed + 1}"),
            "ClusterID": clusters,
            "TotalUMI": counts.sum(axis=0),
            "PCA": embedding,
        },
        "knn": knn,
    }


def _step(title: str, action: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = action()
    print(f"  {title:<52} {1000 * (time.perf_counter() - start):8.1f} ms")
    return result


def run_demo(directory: str | None = None, *, n_cells: int = 3000, n_genes: int = 2000) -> None:
    """Write a generated dataset and exercise create, indexing, layers, attributes, graphs, views,
    scan, map, permute, add_columns and combine, printing what each returns and how long it took."""
    folder = directory or tempfile.mkdtemp(prefix="loomfile-demo-")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "demo.loom")
    data = generate(n_genes, n_cells)
    print(f"loomfile demo: {n_genes} genes x {n_cells} cells in {folder}")
    _step(
        "create() from a sparse matrix",
        lambda: create(
            path,
            {"": data["matrix"], **data["layers"]},
            data["row_attrs"],
            data["col_attrs"],
            file_attrs={"title": "Démo"},
        ),
    )
    with connect(path) as ds:
        print(f"  shape {ds.shape}, layers {ds.layers.keys()}, title {ds.attrs.title!r}")
        ds.col_graphs.KNN = data["knn"]
        actb = _step("ds[ds.ra.Gene == 'Actb', :]", lambda: ds[ds.ra.Gene == "Actb", :])
        print(f"    Actb: {int(actb.sum())} UMIs over {np.count_nonzero(actb)} cells")
        cells = np.random.default_rng(1).choice(n_cells, 100, replace=False)
        block = _step("ds[:, 100 random cells]", lambda: ds[:, cells])
        print(f"    block {block.shape}, {np.count_nonzero(block) / block.size:.0%} nonzero")
        _step("ds.layers['spliced'].sparse()", lambda: ds.layers["spliced"].sparse())
        means, sds = _step("ds.map([np.mean, np.std], axis=0)", lambda: ds.map([np.mean, np.std], axis=0))
        top = int(np.argmax(sds / np.maximum(means, 1e-9)))
        print(f"    gene with the highest coefficient of variation: {ds.ra.Gene[top]}")
        view = _step("ds.view[:, ds.ca.ClusterID == 3]", lambda: ds.view[:, ds.ca.ClusterID == 3])
        print(f"    view {view.shape}, KNN edges inside cluster 3: {view.col_graphs.KNN.nnz}")
        totals = np.zeros(n_cells)

        def scan_columns() -> None:
            for _, selection, band in ds.scan(axis=1, layers=[""]):
                totals[selection] = band[:, :].sum(axis=0)

        _step("ds.scan(axis=1): total UMIs per cell", scan_columns)
        print(f"    totals agree with the TotalUMI attribute: {np.allclose(totals, ds.ca.TotalUMI)}")
        ordering = np.argsort(ds.ca.ClusterID, kind="stable")
        _step("ds.permute(order by ClusterID, axis=1)", lambda: ds.permute(ordering, axis=1))
        print(f"    first clusters now: {ds.ca.ClusterID[:8]}")
    second = os.path.join(folder, "more.loom")
    with new(second) as ds:
        extra = generate(n_genes, n_cells // 4, seed=2)

        def append_twice() -> None:
            for part in (slice(0, n_cells // 8), slice(n_cells // 8, None)):
                ds.add_columns(
                    {"": extra["matrix"][:, part], **{k: v[:, part] for k, v in extra["layers"].items()}},
                    {k: v[part] for k, v in extra["col_attrs"].items()},
                    row_attrs=data["row_attrs"],
                )

        _step("new() + add_columns() x 2", append_twice)
    combined = os.path.join(folder, "combined.loom")
    _step("combine([demo, more], key='Accession')", lambda: combined_files(path, second, combined))
    with connect(combined, "r") as ds:
        print(f"  combined file: {ds.shape}, CellIDs unique: {len(set(ds.ca.CellID)) == ds.shape[1]}")
        if importlib.util.find_spec("anndata") is not None:
            adata = _step("ds.to_anndata()", ds.to_anndata)
            print(f"    AnnData {adata.n_obs} cells x {adata.n_vars} genes, obsp {list(adata.obsp.keys())}")
    print(f"done. Try: loomfile info {combined}")


def combined_files(first: str, second: str, out: str) -> None:
    from .._ops.combine import combine

    combine([first, second], out, key="Accession")
