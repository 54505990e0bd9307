"""Folders laid out like cellranger v2 and v3 output (matrix-market folders, 10x HDF5 matrices,
analysis folders), shared by the importer, command-line, progress and documentation tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import scipy.sparse as sparse


def write_text(path: Path, text: str, gz: bool) -> None:
    """``text`` into ``path``, gzipped with ``gz``."""
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


def _strings(values: list[str]) -> np.ndarray:
    return np.array([v.encode() for v in values])  # fixed-length bytes, as 10x writes them


def write_10x_h5(
    path: Path,
    version: int,
    counts: sparse.csc_matrix,
    genes: list[str],
    barcodes: list[str],
    genomes: tuple[str, ...] = ("mm10",),
) -> None:
    """A 10x HDF5 matrix in cellranger's exact layout: v3+ (matrix/ with features/) or v2 (one group per genome)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gzip_opts = {"compression": "gzip", "shuffle": True}
    with h5py.File(path, "w") as f:
        groups = [f.create_group("matrix")] if version >= 3 else [f.create_group(g) for g in genomes]
        for k, group in enumerate(groups):
            m = counts if k == 0 else counts[::-1]  # another genome: other counts
            group.create_dataset("data", data=m.data.astype(np.int32), **gzip_opts)
            group.create_dataset("indices", data=m.indices.astype(np.int64), **gzip_opts)
            group.create_dataset("indptr", data=m.indptr.astype(np.int64), **gzip_opts)
            group.create_dataset("shape", data=np.array(m.shape, dtype=np.int32))
            group.create_dataset("barcodes", data=_strings(barcodes), **gzip_opts)
            ids, names = [g.split("\t")[0] for g in genes], [g.split("\t")[1] for g in genes]
            if version >= 3:
                f.attrs["filetype"], f.attrs["version"] = "matrix", 2
                features = group.create_group("features")
                features.create_dataset("_all_tag_keys", data=_strings(["genome"]))
                features.create_dataset(
                    "feature_type", data=_strings(["Gene Expression"] * len(ids)), **gzip_opts
                )
                features.create_dataset("genome", data=_strings([genomes[0]] * len(ids)), **gzip_opts)
                features.create_dataset("id", data=_strings(ids), **gzip_opts)
                features.create_dataset("name", data=_strings(names), **gzip_opts)
            else:
                group.create_dataset("genes", data=_strings(ids), **gzip_opts)
                group.create_dataset("gene_names", data=_strings(names), **gzip_opts)


def make_cellranger(
    root: Path, version: int, n_genes: int = 40, n_cells: int = 30, mtx: bool = True, h5: bool = False
) -> tuple[Path, np.ndarray]:
    """A cellranger output folder (v2 or v3 layout) with a matrix-market folder, a 10x HDF5 matrix or
    both, an analysis folder, _cmdline and _versions; returns it and the dense counts."""
    rng = np.random.default_rng(version)
    counts = sparse.random(n_genes, n_cells, density=0.15, random_state=version, format="csc")
    counts.data = rng.integers(1, 20, counts.nnz).astype(float)
    sample = root / f"sample{version}"
    gz = version >= 3
    genes = [f"ENSMUSG{i:05d}\tGene{i}\tGene Expression" for i in range(n_genes)]
    barcodes = [f"AAAC{j:06d}-1" for j in range(n_cells)]
    if mtx:
        folder = sample / "outs" / ("filtered_feature_bc_matrix" if gz else "filtered_gene_bc_matrices/mm10")
        folder.mkdir(parents=True)
        matrix = folder / "matrix.mtx"
        scipy.io.mmwrite(str(matrix), counts.tocoo(), field="integer", symmetry="general")
        if gz:
            write_text(folder / "matrix.mtx.gz", matrix.read_text(), True)
            matrix.unlink()
        write_text(folder / ("features.tsv.gz" if gz else "genes.tsv"), "".join(g + "\n" for g in genes), gz)
        write_text(
            folder / ("barcodes.tsv.gz" if gz else "barcodes.tsv"), "".join(b + "\n" for b in barcodes), gz
        )
    if h5:
        name = "filtered_feature_bc_matrix.h5" if gz else "filtered_gene_bc_matrices_h5.h5"
        write_10x_h5(sample / "outs" / name, version, counts, genes, barcodes)
    tsne = sample / "outs" / "analysis" / "tsne" / "2_components"
    tsne.mkdir(parents=True)
    xy = rng.normal(size=(n_cells, 2))
    (tsne / "projection.csv").write_text(
        "Barcode,TSNE-1,TSNE-2\n" + "".join(f"b{j},{x},{y}\n" for j, (x, y) in enumerate(xy))
    )
    clusters = sample / "outs" / "analysis" / "clustering" / "graphclust"
    clusters.mkdir(parents=True)
    (clusters / "clusters.csv").write_text(
        "Barcode,Cluster\n" + "".join(f"b{j},{1 + j % 3}\n" for j in range(n_cells))
    )
    (sample / "_cmdline").write_text("cellranger count --id=sample\n  --transcriptome=/ref/mm10\n")
    (sample / "_versions").write_text('{\n "pipelines": "3.1.0"\n}\n')
    return sample, counts.toarray()
