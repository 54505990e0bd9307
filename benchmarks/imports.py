"""loompy vs loomfile importing a 10x cellranger v3 folder: create_from_cellranger, time and memory.

    python benchmarks/imports.py --scale tiny --runs 1      # 2000 x 5000, to try the harness
    python benchmarks/imports.py --scale medium             # 30000 x 10000, 3 runs
    python benchmarks/imports.py --scale full --runs 1      # 30000 x 100000 (loompy cannot: 24 GB dense)
    python benchmarks/imports.py --json imports.json        # also save the rows as JSON

The input is generated once per scale into ``benchmarks/data/10x_<genes>x<cells>/sample/outs/``
(ignored by git), as cellranger 3+ writes it: ``filtered_feature_bc_matrix/`` (matrix.mtx.gz in
column order, features.tsv.gz, barcodes.tsv.gz) and ``filtered_feature_bc_matrix.h5`` (int32
counts, int64 indices, gzip). Counts: ~5% nonzeros (genes detected at gamma-distributed rates,
cells at log-normal depths), values 1 + Poisson.

Each (library, source, run) runs in a fresh process, loompy and loomfile alternating. The clock
covers the whole call (reading, parsing, writing, until the file is closed). Peak memory is the
child's ``ru_maxrss`` (the whole process, interpreter and imports included) and, in brackets,
that peak less the process's size just before the call. "sparse input" is the CSC matrix the
counts make in memory (int64 values and int32 row indices, what loomfile holds). loompy makes the
matrix dense (8 bytes x genes x cells) and is not run when that would not fit in half the RAM.
Checksums of the first run of each (library, source) show the files hold the same matrix, in the
same row and column order as the same gene and cell ids.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _status_mb, child_in_scratch

DATA_DIR = Path(__file__).resolve().parent / "data"
SCALES = {"tiny": (2000, 5000), "medium": (30000, 10000), "full": (30000, 100000)}
DENSITY = 0.05
BATCH = 1000  # cells generated at a time
RUNS = (("loompy", "mtx"), ("loomfile", "mtx"), ("loomfile", "h5"))
TARGET = 3.0  # loomfile at least 3x faster than loompy


def _loompy() -> Any:
    if not hasattr(np, "in1d"):
        np.in1d = np.isin  # type: ignore[attr-defined]  # loompy 3.0.8 on numpy >= 2.4
    import loompy

    return loompy


# --- the input, generated once per scale -------------------------------------------------------------


def sample_dir(n_genes: int, n_cells: int) -> Path:
    return DATA_DIR / f"10x_{n_genes}x{n_cells}" / "sample"


def _digits(values: np.ndarray, end: int) -> np.ndarray:
    """Non-negative ints as ASCII digits, right-aligned in a (n, width + 1) table of bytes whose
    leading zeros are 0 (to be dropped) and whose last column is ``end`` (a space or line break)."""
    width = len(str(int(values.max()))) if values.size else 1
    table = np.zeros((values.size, width + 1), dtype=np.uint8)
    rest = values.astype(np.int64)
    for j in range(width - 1, -1, -1):
        table[:, j] = rest % 10 + 48
        rest //= 10
    ones = values.astype(np.int64)
    length = np.ones(values.size, dtype=np.int64)
    while (ones := ones // 10).any():
        length += ones > 0
    table[:, :width][np.arange(width)[None, :] < (width - length)[:, None]] = 0
    table[:, width] = end
    return table


def mtx_lines(rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> bytes:
    """``row col value`` lines (1-based), formatted by numpy rather than one by one."""
    table = np.hstack([_digits(rows + 1, 32), _digits(cols + 1, 32), _digits(values, 10)])
    return table[table != 0].tobytes()


def _batch(rng: np.random.Generator, rate: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gene, cell, count) of the nonzeros of ``n`` cells, cell by cell, genes ascending."""
    depth = rng.lognormal(0.0, 0.5, n)
    depth /= np.exp(0.125)  # mean 1
    chance = np.minimum(rate[None, :] * depth[:, None], 1.0)
    cells, genes = np.nonzero(rng.random(chance.shape) < chance)
    counts = 1 + rng.poisson(20 * rate[genes] * depth[cells])
    return genes.astype(np.int64), cells.astype(np.int64), counts


def generate(n_genes: int, n_cells: int, seed: int = 0) -> None:
    """Write the cellranger v3 folder and .h5 of this scale (see the module docstring)."""
    import h5py
    from isal import igzip

    outs = sample_dir(n_genes, n_cells) / "outs"
    folder = outs / "filtered_feature_bc_matrix"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.5, 2 * DENSITY, n_genes)  # mean DENSITY
    rate = np.minimum(rate, 0.95)
    ids = [f"ENSG{i:011d}" for i in range(n_genes)]
    letters = np.array(list("ACGT"))
    barcodes = ["".join(letters[b]) + "-1" for b in rng.integers(0, 4, (n_cells, 16))]
    with igzip.open(folder / "features.tsv.gz", "wb") as f:
        f.write("".join(f"{a}\tGENE{i}\tGene Expression\n" for i, a in enumerate(ids)).encode())
    with igzip.open(folder / "barcodes.tsv.gz", "wb") as f:
        f.write("".join(b + "\n" for b in barcodes).encode())
    body = folder / "matrix.body.gz"
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    with (
        igzip.open(body, "wb", compresslevel=1) as mtx,
        h5py.File(outs / "filtered_feature_bc_matrix.h5.partial", "w") as h5,
    ):
        group = h5.create_group("matrix")
        options = {"compression": "gzip", "shuffle": True, "chunks": (1 << 16,), "maxshape": (None,)}
        data = group.create_dataset("data", shape=(0,), dtype=np.int32, **options)
        indices = group.create_dataset("indices", shape=(0,), dtype=np.int64, **options)
        for start in range(0, n_cells, BATCH):
            n = min(BATCH, n_cells - start)
            genes, cells, counts = _batch(rng, rate, n)
            mtx.write(mtx_lines(genes, cells + start, counts))
            done = indptr[start]
            for dset, values in ((data, counts), (indices, genes)):
                dset.resize((done + values.size,))
                dset[done:] = values
            indptr[start + 1 : start + n + 1] = done + np.cumsum(np.bincount(cells, minlength=n))
            print(f"  {start + n}/{n_cells} cells", end="\r", flush=True)
        group.create_dataset("indptr", data=indptr)
        group.create_dataset("shape", data=np.array([n_genes, n_cells], dtype=np.int32))
        group.create_dataset("barcodes", data=np.array([b.encode() for b in barcodes]))
        features = group.create_group("features")
        features.create_dataset("_all_tag_keys", data=np.array([b"genome"]))
        features.create_dataset("id", data=np.array([a.encode() for a in ids]))
        features.create_dataset("name", data=np.array([f"GENE{i}".encode() for i in range(n_genes)]))
        features.create_dataset("feature_type", data=np.array([b"Gene Expression"] * n_genes))
        features.create_dataset("genome", data=np.array([b"GRCh38"] * n_genes))
        h5.attrs["filetype"], h5.attrs["version"] = "matrix", 2
    nnz = int(indptr[-1])
    header = (
        f"%%MatrixMarket matrix coordinate integer general\n%metadata_json: {{}}\n{n_genes} {n_cells} {nnz}\n"
    )
    with open(folder / "matrix.mtx.gz", "wb") as out:  # a gzip member for the header, then the body's
        out.write(igzip.compress(header.encode()))
        with open(body, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 24)
    body.unlink()
    os.replace(outs / "filtered_feature_bc_matrix.h5.partial", outs / "filtered_feature_bc_matrix.h5")
    (outs.parent / "done.json").write_text(json.dumps({"shape": [n_genes, n_cells], "nnz": nnz}))


def ensure_input(n_genes: int, n_cells: int) -> dict[str, Any]:
    """The input's description (shape, nnz, generation seconds), generated in a child process
    (so this process stays small) when not there yet."""
    done = sample_dir(n_genes, n_cells) / "done.json"
    if not done.exists():
        print(f"generating {done.parent.parent.name}/ ...", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(n_genes), str(n_cells)], check=True)
        info = json.loads(done.read_text()) | {"generation_s": time.perf_counter() - start}
        done.write_text(json.dumps(info))
        print(f"generated in {info['generation_s']:.0f} s{' ' * 20}")
    return json.loads(done.read_text())


# --- one measurement, in a child process -------------------------------------------------------------


def checksum(path: str) -> dict[str, float]:
    """Sums of the matrix weighted by row and column position, and CRCs of the gene and cell ids."""
    import loomfile

    with loomfile.connect(path, "r") as ds:
        n_rows, n_cols = ds.shape
        row_w = np.arange(1, n_rows + 1, dtype=np.float64)
        total = weighted = 0.0
        for lo in range(0, n_cols, 2048):
            band = ds[:, lo : lo + 2048]
            col_w = np.arange(lo, lo + band.shape[1]) % 101 + 1.0
            total += float(band.sum(dtype=np.float64))
            weighted += float(row_w @ band @ col_w)
        return {
            "sum": total,
            "weighted": weighted,
            "dtype": str(ds.layers[""].dtype),
            "genes": zlib.crc32("\n".join(ds.ra.Accession).encode()),
            "cells": zlib.crc32("\n".join(ds.ca.CellID).encode()),
        }


def child(lib_name: str, source: str, sample: str, outdir: str, check: str) -> None:
    lib = _loompy() if lib_name == "loompy" else __import__("loomfile")
    kwargs = {"source": source} if lib_name == "loomfile" else {}
    base = _status_mb("VmRSS")
    start = time.perf_counter()
    path = lib.create_from_cellranger(sample, outdir, **kwargs)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"seconds": seconds, "peak_mb": peak, "added_mb": peak - base}
    if check == "yes":
        result["checksum"] = checksum(path)
    print(json.dumps(result))


def measure(lib_name: str, source: str, sample: Path, check: bool) -> dict[str, Any]:
    return child_in_scratch(
        __file__,
        lambda scratch: [lib_name, source, str(sample), scratch, "yes" if check else "no"],
        sample.parent,
        f"{lib_name} ({source})",
    )


# --- driver ----------------------------------------------------------------------------------------------


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def bench(sample: Path, shape: tuple[int, int], runs: int) -> list[dict[str, Any]]:
    dense = 8 * shape[0] * shape[1]
    todo = [r for r in RUNS if r[0] != "loompy" or dense < _ram_bytes() / 2]
    if len(todo) < len(RUNS):
        print(f"loompy: needs {dense / 1e9:.0f} GB (the dense int64 matrix), not run\n")
    results: dict[tuple[str, str], list[dict[str, Any]]] = {r: [] for r in todo}
    for k in range(runs):
        for lib_name, source in todo:
            results[(lib_name, source)].append(measure(lib_name, source, sample, check=k == 0))
    rows = []
    for (lib_name, source), rs in results.items():
        good = [r for r in rs if "error" not in r]
        row: dict[str, Any] = {
            "library": lib_name,
            "source": source,
            "errors": [r["error"] for r in rs if "error" in r],
        }
        if good:
            row["seconds"] = statistics.median(r["seconds"] for r in good)
            row["peak_mb"] = max(r["peak_mb"] for r in good)
            row["added_mb"] = max(r["added_mb"] for r in good)
            row["checksum"] = next((r["checksum"] for r in good if "checksum" in r), None)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]], sparse_mb: float) -> str:
    loompy_s = next((r.get("seconds") for r in rows if r["library"] == "loompy"), None)
    reference = next((r.get("checksum") for r in rows if r["library"] == "loompy"), None)
    reference = reference or next((r.get("checksum") for r in rows if r.get("checksum")), None)
    lines = [
        "| library | matrix read | seconds | speedup | peak MB (added) | added / sparse input | same |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "seconds" not in r:
            lines.append(f"| {r['library']} | {r['source']} | FAILED | | | | |")
            continue
        speedup = f"{loompy_s / r['seconds']:.1f}x" if loompy_s else "-"
        same = "yes" if r.get("checksum") == reference else "NO"
        lines.append(
            f"| {r['library']} | {r['source']} | {r['seconds']:.2f} | {speedup} "
            f"| {r['peak_mb']:.0f} ({r['added_mb']:.0f}) | {r['added_mb'] / sparse_mb:.1f}x | {same} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=list(SCALES), default="medium", help="medium: 30000 x 10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows, with their checksums, to this file")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.generate:
        generate(*args.generate)
        return
    shape = SCALES[args.scale]
    info = ensure_input(*shape)
    sample = sample_dir(*shape)
    folder = sample / "outs" / "filtered_feature_bc_matrix"
    sparse_mb = (info["nnz"] * 12 + (shape[1] + 1) * 4) / 2**20
    print(
        f"{shape[0]} x {shape[1]}, {info['nnz']} nonzeros ({info['nnz'] / shape[0] / shape[1]:.1%}), "
        f"matrix.mtx.gz {(folder / 'matrix.mtx.gz').stat().st_size / 2**20:.0f} MiB, "
        f"filtered_feature_bc_matrix.h5 {(sample / 'outs' / 'filtered_feature_bc_matrix.h5').stat().st_size / 2**20:.0f} MiB; "
        f"sparse input in memory {sparse_mb:.0f} MiB; dense int64 {8 * shape[0] * shape[1] / 2**20:.0f} MiB; "
        f"{os.cpu_count()} cores, median of {args.runs} runs, each in a fresh process\n",
        flush=True,
    )
    rows = bench(sample, shape, args.runs)
    print(table(rows, sparse_mb) + "\n")
    loompy_row = next((r for r in rows if r["library"] == "loompy" and "seconds" in r), None)
    for r in rows:
        if loompy_row and r["library"] == "loomfile" and "seconds" in r:
            ratio = loompy_row["seconds"] / r["seconds"]
            verdict = "met" if ratio >= TARGET else "NOT met"
            print(
                f"loomfile ({r['source']}) vs loompy (mtx): {ratio:.1f}x, target >= {TARGET:.0f}x {verdict}"
            )
    if args.json:
        args.json.write_text(
            json.dumps({"scale": args.scale, "shape": shape, "info": info, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
