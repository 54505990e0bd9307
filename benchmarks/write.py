"""loompy vs loomfile on the write path: create, add_columns, combine, permute, aggregate.

    python benchmarks/write.py                                  # 20000 x 10000, 3 runs per operation
    python benchmarks/write.py --scale tiny --runs 1            # 2000 x 1000, to try the harness
    python benchmarks/write.py --ops "create from sparse" combine --runs 5
    python benchmarks/write.py --json write.json                # also save the rows as JSON

Inputs are generated once per scale into ``benchmarks/data/write_<genes>x<cells>/`` (ignored by git):
the counts of ``datasets.Model`` binomially thinned to ~90% zeros (float32 main matrix, a uint16
"spliced" layer) stored as scipy .npz, the attributes (Gene, Accession, ... on the rows; CellID,
Clusters, Tissue, TotalUMI, PCA on the columns) as .npz, a loompy-written ``full.loom`` with a KNN
column graph (permute, aggregate) and four loompy-written ``part<k>.loom`` of cells/4 columns each,
parts 1 and 3 with their rows shuffled (combine, aligned on Accession), and four
``aligned<k>.loom`` whose widths are multiples of the chunk width, rows unshuffled (combine without
a key: what can be copied chunk by chunk).

Each (library, operation, run) runs in a fresh process, loompy and loomfile alternating. Inputs are
loaded (and files copied) before the clock; the clock stops once the output file is closed. Peak
memory is the process's high-water mark during the timed call minus its size just before it (the
mark is reset after setup). Checksums, computed with h5py after the clock, cover the values of every
layer (also weighted by the Accession of each row and the CellID of each column, so rows and columns
must stay aligned with their attributes), the numeric attributes and the graphs. "floor" is the
codec work the operation cannot avoid (see FLOORS), done once on one thread with loomfile's codecs;
"2-core floor" is the same work shared by two threads (what both cores of the machine can give).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets
from run import _status_mb, child_in_scratch, stored_chunks

SCALES = {"small": (20000, 10000), "tiny": (2000, 1000)}
KEEP = 0.3  # binomial thinning of datasets.Model's counts (~78% zeros) to ~90% zeros
SPLICED = 0.7  # the "spliced" layer: a binomial share of the counts
N_BANDS = 10  # add_columns calls
N_PARTS = 4  # files to combine
SHUFFLED = (1, 3)  # parts written with their rows shuffled
TARGETS = {
    "create from sparse": ">=3x",
    "combine 4 aligned files": ">=10x",
    "new + add_columns x10": ">=3x",
    "combine 4 files": ">=10x",
    "combine 4 files, outer join": "as combine",
    "permute columns": ">=3x",
    "aggregate by cluster": "-",
}
# What each operation must do to the chunks, at the least: (files, decode, encode). The floor is that
# work done once, on one thread, with the codecs loomfile uses (libdeflate inflates; igzip deflates at
# Loom's gzip levels), from bytes in memory. The aligned combine copies chunks as stored: no floor.
FLOORS: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "create from sparse": (("full",), False, True),
    "new + add_columns x10": (("full",), False, True),
    "combine 4 files": (tuple(f"part{k}" for k in range(1, N_PARTS)), True, True),  # part0: copied
    "combine 4 files, outer join": (tuple(f"part{k}" for k in range(1, N_PARTS)), True, True),  # part0: copied
    "permute columns": (("full",), True, True),
    "aggregate by cluster": (("full",), True, False),
}
# loompy averages the float32 values in float32 (within ~1e-7 of the exact means); loomfile in float64
RTOL = {"aggregate by cluster": 1e-6}


def _loompy() -> Any:
    if not hasattr(np, "in1d"):
        np.in1d = np.isin  # type: ignore[attr-defined]  # loompy 3.0.8 on numpy >= 2.4
    import loompy

    return loompy


# --- inputs, generated once per scale ------------------------------------------------------------------


def input_dir(n_genes: int, n_cells: int) -> Path:
    return datasets.DATA_DIR / f"write_{n_genes}x{n_cells}"


def _save_attrs(path: Path, ra: dict[str, np.ndarray], ca: dict[str, np.ndarray]) -> None:
    """Strings are stored as fixed-width unicode (no pickle) and read back as object arrays."""
    arrays = {f"ra.{k}": v.astype(str) if v.dtype == object else v for k, v in ra.items()}
    arrays.update({f"ca.{k}": v.astype(str) if v.dtype == object else v for k, v in ca.items()})
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_attrs(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    ra: dict[str, np.ndarray] = {}
    ca: dict[str, np.ndarray] = {}
    with np.load(directory / "attrs.npz") as z:
        for key in z.files:
            v = z[key]
            v = v.astype(object) if v.dtype.kind == "U" else v
            (ra if key.startswith("ra.") else ca)[key[3:]] = v
    return ra, ca


def load_layers(directory: Path) -> dict[str, sparse.csr_matrix]:
    return {
        "": sparse.load_npz(directory / "main.npz"),
        "spliced": sparse.load_npz(directory / "spliced.npz"),
    }


def _generate(n_genes: int, n_cells: int, seed: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    model = datasets.Model(n_genes, seed)
    rng = np.random.default_rng((seed, 1234))
    mains, spliceds, cas = [], [], []
    for start in range(0, n_cells, datasets.BATCH):
        batch = model.cells(start, min(datasets.BATCH, n_cells - start))
        counts = rng.binomial(batch["layers"][""].astype(np.int64), KEEP)
        mains.append(sparse.csc_matrix(counts.astype(np.float32)))
        spliceds.append(sparse.csc_matrix(rng.binomial(counts, SPLICED).astype(np.uint16)))
        ca = batch["col_attrs"]
        cas.append(
            {
                "CellID": ca["CellID"],
                "Clusters": ca["ClusterID"],
                "Tissue": ca["Tissue"],
                "TotalUMI": counts.sum(axis=0).astype(np.float64),
                "PCA": ca["PCA"],
            }
        )
    layers = {
        "": sparse.hstack(mains, format="csr", dtype=np.float32),
        "spliced": sparse.hstack(spliceds, format="csr", dtype=np.uint16),
    }
    col_attrs = {k: np.concatenate([c[k] for c in cas]) for k in cas[0]}
    return layers, model.row_attrs(), col_attrs


def _write_loom(
    path: Path, layers: dict[str, Any], ra: dict[str, Any], ca: dict[str, Any], graph: bool
) -> None:
    loompy = _loompy()
    tmp = path.with_suffix(".partial")
    if tmp.exists():
        tmp.unlink()
    loompy.create(str(tmp), layers, ra, ca)
    if graph:
        with loompy.connect(str(tmp)) as ds:
            ds.col_graphs["KNN"] = datasets.knn_graph(ds.shape[1])
    os.replace(tmp, path)


def ensure_inputs(n_genes: int, n_cells: int, seed: int = 0) -> Path:
    """The input directory of this scale, generated (loom files with loompy) if not complete yet."""
    directory = input_dir(n_genes, n_cells)
    done = directory / "done.json"
    if done.exists():
        _ensure_aligned_parts(directory)
        return directory
    loompy = _loompy()
    print(f"generating {directory.name}/ with loompy {loompy.__version__} ...", flush=True)
    directory.mkdir(parents=True, exist_ok=True)
    layers, ra, ca = _generate(n_genes, n_cells, seed)
    for name, file in (("", "main.npz"), ("spliced", "spliced.npz")):
        with open(directory / file, "wb") as f:
            sparse.save_npz(f, layers[name])
    _save_attrs(directory / "attrs.npz", ra, ca)
    _write_loom(directory / "full.loom", layers, ra, ca, graph=True)
    csc = {name: m.tocsc() for name, m in layers.items()}
    bounds = np.linspace(0, n_cells, N_PARTS + 1).astype(int)
    for k in range(N_PARTS):
        lo, hi = bounds[k], bounds[k + 1]
        rows = np.arange(n_genes)
        if k in SHUFFLED:
            rows = np.random.default_rng((seed, k)).permutation(n_genes)
        part = {name: m[:, lo:hi].tocsr()[rows] for name, m in csc.items()}
        _write_loom(
            directory / f"part{k}.loom",
            part,
            {key: v[rows] for key, v in ra.items()},
            {key: v[lo:hi] for key, v in ca.items()},
            graph=False,
        )
    nnz = layers[""].nnz
    info = {"shape": [n_genes, n_cells], "nnz": nnz, "zeros": 1 - nnz / (n_genes * n_cells)}
    done.write_text(json.dumps(info))
    _ensure_aligned_parts(directory)
    return directory


def _ensure_aligned_parts(directory: Path) -> None:
    """``aligned<k>.loom``: the cells in N_PARTS files whose widths are multiples of 64 (the chunk
    width), rows in the same order: what combine can copy chunk by chunk, without decoding."""
    if all((directory / f"aligned{k}.loom").exists() for k in range(N_PARTS)):
        return
    layers = load_layers(directory)
    ra, ca = load_attrs(directory)
    n_cells = layers[""].shape[1]
    bounds = [k * (n_cells // N_PARTS // 64 * 64) for k in range(N_PARTS)] + [n_cells]
    csc = {name: m.tocsc() for name, m in layers.items()}
    for k in range(N_PARTS):
        lo, hi = bounds[k], bounds[k + 1]
        part = {name: m[:, lo:hi].tocsr() for name, m in csc.items()}
        _write_loom(
            directory / f"aligned{k}.loom", part, ra, {key: v[lo:hi] for key, v in ca.items()}, graph=False
        )


# --- the operations: setup (untimed) returns the timed call and the file to checksum -----------------


Setup = Callable[[Any, Path, Path], tuple[Callable[[], None], Path]]


def _create(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    layers = load_layers(inputs)
    ra, ca = load_attrs(inputs)
    out = scratch / "out.loom"
    return lambda: lib.create(str(out), layers, ra, ca), out


def _add_columns(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    ra, ca = load_attrs(inputs)
    spans = list(itertools.pairwise(np.linspace(0, len(ca["CellID"]), N_BANDS + 1).astype(int)))
    bands: list[dict[str, np.ndarray]] = [{} for _ in spans]
    for name, m in load_layers(inputs).items():
        csc = m.tocsc()
        for band, (lo, hi) in zip(bands, spans, strict=True):
            band[name] = csc[:, lo:hi].toarray()
        del csc
    band_attrs = [{k: v[lo:hi] for k, v in ca.items()} for lo, hi in spans]
    out = scratch / "out.loom"

    def run() -> None:
        with lib.new(str(out)) as ds:
            for band, attrs in zip(bands, band_attrs, strict=True):
                ds.add_columns(band, attrs, row_attrs=ra)

    return run, out


def _combine(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    files = [str(inputs / f"part{k}.loom") for k in range(N_PARTS)]
    out = scratch / "out.loom"
    return lambda: lib.combine(files, str(out), key="Accession"), out


def _combine_outer(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    """loomfile's outer join on Accession; loompy has no joins: its baseline is its (strict) combine
    of the same files, which share every gene, so both write the same file."""
    files = [str(inputs / f"part{k}.loom") for k in range(N_PARTS)]
    out = scratch / "out.loom"
    if lib.__name__ == "loompy":
        return lambda: lib.combine(files, str(out), key="Accession"), out
    return lambda: lib.combine(files, str(out), key="Accession", how="outer"), out


def _combine_aligned(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    files = [str(inputs / f"aligned{k}.loom") for k in range(N_PARTS)]
    out = scratch / "out.loom"
    return lambda: lib.combine(files, str(out)), out


def _permute(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    out = scratch / "permuted.loom"
    shutil.copyfile(inputs / "full.loom", out)
    _, ca = load_attrs(inputs)
    perm = np.random.default_rng(7).permutation(len(ca["CellID"]))

    def run() -> None:
        with lib.connect(str(out)) as ds:
            ds.permute(perm, axis=1)

    return run, out


class _Aggregate:
    """Opens the input read-only before the clock; closed after it (see child)."""

    ds: Any = None

    def __call__(self, lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
        self.ds = lib.connect(str(inputs / "full.loom"), "r")
        out = scratch / "out.loom"
        return lambda: self.ds.aggregate(str(out), group_by="Clusters", aggr_by="mean"), out


_aggregate = _Aggregate()

OPS: dict[str, Setup] = {
    "create from sparse": _create,
    "new + add_columns x10": _add_columns,
    "combine 4 files": _combine,
    "combine 4 aligned files": _combine_aligned,
    "combine 4 files, outer join": _combine_outer,
    "permute columns": _permute,
    "aggregate by cluster": _aggregate,
}


# --- the codec floor ------------------------------------------------------------------------------------------


def codec_floor(inputs: Path, op: str, runs: int = 3, threads: int = 1) -> float | None:
    """Median seconds to inflate and/or deflate, once, every stored chunk of both layers of the files
    FLOORS names for ``op`` (groups of 256 chunks per deflate call), on one thread or, with
    ``threads=2``, with the groups dealt alternately to two threads (the codecs release the GIL)."""
    import h5py

    from loomfile._engine.codec import IGZIP, LIBDEFLATE

    if op not in FLOORS or LIBDEFLATE is None or IGZIP is None:
        return None
    names, decode, encode = FLOORS[op]
    groups: list[tuple[list[bytes], int]] = []  # (stored chunks, bytes per decoded chunk)
    for name in names:
        path = inputs / f"{name}.loom"
        with h5py.File(path, "r") as f, open(path, "rb") as raw:
            for dset in (f["matrix"], *f["layers"].values()):
                blobs = stored_chunks(dset, raw)
                nbytes = int(np.prod(dset.chunks)) * dset.dtype.itemsize
                groups += [(blobs[i : i + 256], nbytes) for i in range(0, len(blobs), 256)]
    inflate = LIBDEFLATE.zlib_decompress
    decoded = [np.empty(len(blobs) * nbytes, dtype=np.uint8) for blobs, nbytes in groups]

    def work(share: int, do_decode: bool, do_encode: bool) -> None:
        d = LIBDEFLATE.decompressor()  # one per thread
        for (blobs, nbytes), out in list(zip(groups, decoded, strict=True))[share::threads]:
            if do_decode:
                for i, blob in enumerate(blobs):
                    inflate(d, blob, len(blob), out.ctypes.data + i * nbytes, nbytes, None)
            if do_encode:
                IGZIP.compress_many(out, nbytes)

    def run() -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda share: work(share, decode, encode), range(threads)))

    for share in range(threads):  # the values to deflate, untimed; warms each thread's codec state
        work(share, True, False)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- checksums: data values only, with h5py, after the clock ------------------------------------------


def _strings(dset: Any) -> np.ndarray:
    return np.asarray(dset.asstr()[:], dtype=object)


def _weights(group: Any, name: str, n: int) -> np.ndarray:
    """Small integer weights from the trailing number of an id (Accession, CellID), else 1..n."""
    if group is None or name not in group:
        return np.arange(1, n + 1, dtype=np.float64)
    ids = _strings(group[name])
    return np.array([int(re.search(r"(\d+)$", s).group(1)) % 101 + 1 for s in ids], dtype=np.float64)


def checksum(path: Path) -> dict[str, float]:
    """Sums that equal data give equally in both libraries, whatever the dtypes of strings."""
    import h5py

    out: dict[str, float] = {}
    with h5py.File(path, "r") as f:
        n_rows, n_cols = f["matrix"].shape
        out["rows"], out["cols"] = float(n_rows), float(n_cols)
        rw = _weights(f.get("row_attrs"), "Accession", n_rows)
        cw = _weights(f.get("col_attrs"), "CellID", n_cols)
        layers = {"": f["matrix"]} | {name: d for name, d in f.get("layers", {}).items() if name != ""}
        for name, dset in sorted(layers.items()):
            row_sums, col_sums = np.zeros(n_rows), np.zeros(n_cols)
            for lo in range(0, n_rows, 2048):
                band = dset[lo : lo + 2048, :]
                row_sums[lo : lo + band.shape[0]] = band.sum(axis=1, dtype=np.float64)
                col_sums += band.sum(axis=0, dtype=np.float64)
            out[f"layer {name!r}"] = float(row_sums.sum())
            out[f"layer {name!r} x Accession"] = float(row_sums @ rw)
            out[f"layer {name!r} x CellID"] = float(col_sums @ cw)
        numeric = 0.0
        for axis in ("row_attrs", "col_attrs"):
            for dset in f.get(axis, {}).values():
                if dset.dtype.kind in "iufb":
                    numeric += float(np.sum(dset[()], dtype=np.float64))
        out["numeric attributes"] = numeric
        for axis, w in (("row_graphs", rw), ("col_graphs", cw)):
            for name, g in f.get(axis, {}).items():
                a, b, v = g["a"][()], g["b"][()], g["w"][()].astype(np.float64)
                out[f"{axis}/{name}"] = float(len(v)) + float(v.sum()) + float(v @ (w[a] * w[b]))
    return out


# --- one measurement, in a child process -----------------------------------------------------------------


def _reset_peak() -> None:
    """Set VmHWM back to the current RSS (Linux >= 4.0), so setup's transients do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def child(lib_name: str, op: str, inputs: str, scratch: str) -> None:
    lib = _loompy() if lib_name == "loompy" else __import__("loomfile")
    run, result = OPS[op](lib, Path(inputs), Path(scratch))
    gc.collect()
    _reset_peak()
    base = _status_mb("VmRSS")
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    if _aggregate.ds is not None:
        _aggregate.ds.close()
    print(json.dumps({"seconds": seconds, "peak_mb": peak - base, "checksum": checksum(result)}))


def measure(lib_name: str, op: str, inputs: Path) -> dict[str, Any]:
    return child_in_scratch(
        __file__, lambda scratch: [lib_name, op, str(inputs), scratch], inputs, f"{lib_name} on {op!r}"
    )


# --- driver ----------------------------------------------------------------------------------------------


def _same(results: list[dict[str, Any]], rtol: float) -> bool:
    first = results[0]["checksum"]
    return all(
        r["checksum"].keys() == first.keys()
        and all(np.isclose(r["checksum"][k], first[k], rtol=rtol, atol=0) for k in first)
        for r in results
    )


def bench(inputs: Path, ops: list[str], runs: int) -> list[dict[str, Any]]:
    rows = []
    for op in ops:
        results: dict[str, list[dict[str, Any]]] = {"loompy": [], "loomfile": []}
        for _ in range(runs):
            for lib_name in ("loompy", "loomfile"):
                results[lib_name].append(measure(lib_name, op, inputs))
        row: dict[str, Any] = {"op": op, "target": TARGETS[op]}
        ok = True
        for lib_name, rs in results.items():
            good = [r for r in rs if "error" not in r]
            row[f"{lib_name}_errors"] = [r["error"] for r in rs if "error" in r]
            ok = ok and len(good) == len(rs)
            row[lib_name] = statistics.median(r["seconds"] for r in good) if good else None
            row[f"{lib_name}_mb"] = max(r["peak_mb"] for r in good) if good else None
            row[f"{lib_name}_checksum"] = good[0]["checksum"] if good else None
        row["same"] = ok and _same(results["loompy"] + results["loomfile"], RTOL.get(op, 1e-9))
        row["floor"] = codec_floor(inputs, op)
        row["floor2"] = codec_floor(inputs, op, threads=2)
        rows.append(row)
        print(_line(row), flush=True)
    return rows


HEADER = (
    f"| {'operation':<22} | {'loompy s':>9} | {'loomfile s':>10} | {'speedup':>7} | {'target':>6} "
    f"| {'floor s':>7} | {'vs floor':>8} | {'2-core floor s':>14} | {'loompy MB':>9} | {'loomfile MB':>11} | {'checksums equal':>15} |\n"
    f"|{'-' * 24}|{'-' * 10}:|{'-' * 11}:|{'-' * 8}:|{'-' * 7}:|{'-' * 8}:|{'-' * 9}:|{'-' * 15}:|{'-' * 10}:|{'-' * 12}:"
    f"|{'-' * 17}|"
)


def _line(r: dict[str, Any]) -> str:
    def num(v: float | None, fmt: str) -> str:
        return "FAILED" if v is None else format(v, fmt)

    speedup = "-" if r["loompy"] is None or r["loomfile"] is None else f"{r['loompy'] / r['loomfile']:.1f}x"
    floor = "-" if r["floor"] is None else f"{r['floor']:.3f}"
    vs = "-" if r["floor"] is None or r["loomfile"] is None else f"{r['loomfile'] / r['floor']:.2f}x"
    floor2 = "-" if r.get("floor2") is None else f"{r['floor2']:.3f}"
    return (
        f"| {r['op']:<22} | {num(r['loompy'], '.3f'):>9} | {num(r['loomfile'], '.3f'):>10} | {speedup:>7} "
        f"| {r['target']:>6} | {floor:>7} | {vs:>8} | {floor2:>14} | {num(r['loompy_mb'], '.0f'):>9} | {num(r['loomfile_mb'], '.0f'):>11} "
        f"| {'yes' if r['same'] else 'NO':>15} |"
    )


def _select(wanted: list[str]) -> list[str]:
    """Operation names, or unambiguous parts of them ("combine")."""
    ops = []
    for w in wanted:
        found = [w] if w in OPS else [op for op in OPS if w.lower() in op.lower()]
        if not found:
            raise SystemExit(f"unknown operation {w!r}; choose from: {', '.join(OPS)}")
        ops += [op for op in found if op not in ops]
    return ops


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="small", help="small: 20000 x 10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ops", nargs="*", default=list(OPS), help="operations (or parts of their names)")
    parser.add_argument("--json", type=Path, help="also write the rows, with every checksum, to this file")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    ops = _select(args.ops)
    shape = SCALES[args.scale]
    inputs = ensure_inputs(*shape)
    info = json.loads((inputs / "done.json").read_text())
    size = (inputs / "full.loom").stat().st_size / 2**20
    print(
        f"{inputs.name}: {shape[0]} x {shape[1]}, {info['zeros']:.0%} zeros, full.loom {size:.0f} MiB, "
        f"{os.cpu_count()} cores, median of {args.runs} runs, each run in a fresh process\n"
    )
    print(HEADER)
    rows = bench(inputs, ops, args.runs)
    if args.json:
        args.json.write_text(
            json.dumps({"scale": args.scale, "shape": shape, "runs": args.runs, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
