"""loompy vs loomfile on the same loompy-written files: medians, peak memory, speedups, the decode floor.

    python benchmarks/run.py                      # 20000 x 10000, 3 runs per operation
    python benchmarks/run.py --scale medium       # 20000 x 50000
    python benchmarks/run.py --series             # how cost grows with the number of cells

Each (library, operation, run) runs in a fresh process, loompy and loomfile alternating, so peak
memory is per operation and neither library warms the other's caches. The floor is the time to
decode, once, on one thread, exactly the chunks the operation touches, with libdeflate (the codec
loomfile uses), from bytes already in memory. Checksums show both libraries returned the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets

SCALES = {"small": (20000, 10000), "medium": (20000, 50000)}
SERIES_CELLS = (2500, 5000, 10000, 20000, 50000)
SERIES_OPS = ("full read", "1000 random columns", "scan axis 1", "sparse()")

# --- the operations, written once against loompy's API ------------------------------------------------


def _pick(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, min(k, n), replace=False))


def _mask(n: int) -> np.ndarray:
    return np.random.default_rng(11).random(n) < 0.1


def _sum(a: Any) -> float:
    return float(np.sum(a, dtype=np.float64))


def _checksum(result: Any) -> float:
    """Computed after the clock stops: sums, sizes and a sample of indices of what came back."""
    if isinstance(result, float):
        return result
    if isinstance(result, list):
        return sum(_sum(r) for r in result)
    if hasattr(result, "nnz"):
        return float(result.nnz) + _sum(result.data) + _sum(result.row[::97]) + _sum(result.col[::89])
    if isinstance(result, dict):
        return float(sum(len(v) for v in result.values())) + _sum(result["TotalUMI"])
    return _sum(result) + float(np.asarray(result).shape[0])


def _scan(ds: Any, **kw: Any) -> float:
    total = 0.0
    for _ix, _sel, view in ds.scan(**kw):
        total += sum(_sum(view.layers[name][:, :]) for name in view.layers.keys())
    return total


def _view(ds: Any) -> float:
    v = ds.view[:, _pick(ds.shape[1], 5000, 5)]
    return _sum(v[:, :]) + _sum(v.layers["unspliced"][:, :]) + float(v.ca["TotalUMI"].sum())


OPS: dict[str, Callable[[Any], Any]] = {
    "full read": lambda ds: ds[:, :],
    "100 random columns": lambda ds: ds[:, _pick(ds.shape[1], 100, 1)],
    "1000 random columns": lambda ds: ds[:, _pick(ds.shape[1], 1000, 2)],
    "5000 random columns": lambda ds: ds[:, _pick(ds.shape[1], 5000, 3)],
    "1000 random rows": lambda ds: ds[_pick(ds.shape[0], 1000, 4), :],
    "10% column mask": lambda ds: ds[:, _mask(ds.shape[1])],
    "gene by name": lambda ds: ds[ds.ra.Gene == "Gene01234", :],
    "scan axis 0": lambda ds: _scan(ds, axis=0),
    "scan axis 1": lambda ds: _scan(ds, axis=1),
    "scan with items": lambda ds: _scan(ds, axis=1, items=_mask(ds.shape[1])),
    "map mean+std axis 0": lambda ds: ds.map([np.mean, np.std], axis=0),
    "map mean+std axis 1": lambda ds: ds.map([np.mean, np.std], axis=1),
    "sparse()": lambda ds: ds.layers[""].sparse(),
    "view of 5000 columns": _view,
    "all column attributes": lambda ds: {k: ds.ca[k] for k in ds.ca.keys()},
}


def _touched(op: str, shape: tuple[int, int]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(layer, rows, columns) each operation reads, for the floor."""
    everything = np.arange(shape[0]), np.arange(shape[1])
    both = ("", "unspliced")
    cols = {
        "100 random columns": _pick(shape[1], 100, 1),
        "1000 random columns": _pick(shape[1], 1000, 2),
        "5000 random columns": _pick(shape[1], 5000, 3),
        "10% column mask": np.flatnonzero(_mask(shape[1])),
    }
    if op in cols:
        return [("", everything[0], cols[op])]
    if op == "1000 random rows":
        return [("", _pick(shape[0], 1000, 4), everything[1])]
    if op == "gene by name":
        return [("", np.array([1234]), everything[1])]
    if op in ("scan axis 0", "scan axis 1"):
        return [(name, *everything) for name in both]
    if op == "scan with items":
        return [(name, everything[0], np.flatnonzero(_mask(shape[1]))) for name in both]
    if op == "view of 5000 columns":
        return [(name, everything[0], _pick(shape[1], 5000, 5)) for name in both]
    if op == "all column attributes":
        return []
    return [("", *everything)]


# --- one measurement, in a child process ---------------------------------------------------------------


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process: unlike ru_maxrss, not inherited from the parent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def child(lib_name: str, op: str, path: str) -> None:
    if lib_name == "loompy":
        if not hasattr(np, "in1d"):
            np.in1d = np.isin  # type: ignore[attr-defined]  # loompy 3.0.8 on numpy >= 2.4
        import loompy as lib
    else:
        import loomfile as lib
    with lib.connect(path, "r") as ds:
        base = _status_mb("VmRSS")
        start = time.perf_counter()
        result = OPS[op](ds)
        seconds = time.perf_counter() - start
        peak = _status_mb("VmHWM")
        checksum = _checksum(result)
    print(json.dumps({"seconds": seconds, "peak_mb": peak - base, "checksum": checksum}))


def measure(lib_name: str, op: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", lib_name, op, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_in_scratch(script: str, args: Callable[[str], list[str]], near: Path, what: str) -> dict[str, Any]:
    """Run ``script --child *args(scratch)`` in a fresh process, with a scratch folder made beside
    ``near`` and removed afterwards. Its last line of output as JSON, or ``{"error": ...}`` with
    the end of its stderr shown (``what`` names the run)."""
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix="scratch_", dir=near)
    try:
        out = subprocess.run([sys.executable, script, "--child", *args(scratch)], capture_output=True, text=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines() or ["(no output)"]
        print(f"  {what} failed:\n    " + "\n    ".join(lines[-15:]), file=sys.stderr)
        return {"error": lines[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the floor ---------------------------------------------------------------------------------------------


def stored_chunks(dset: Any, raw: Any, wanted: set[tuple[int, ...]] | None = None) -> list[bytes]:
    """The stored (compressed) bytes of ``dset``'s chunks, or of those at the ``wanted`` offsets,
    read from ``raw``, the file opened in binary."""
    found: list[Any] = []
    dset.id.chunk_iter(found.append)
    blobs = []
    for info in found:
        if wanted is None or tuple(info.chunk_offset) in wanted:
            raw.seek(info.byte_offset)
            blobs.append(raw.read(info.size))
    return blobs


def floor(path: Path, reads: list[tuple[str, np.ndarray, np.ndarray]], runs: int) -> float | None:
    """Median seconds to decode each touched chunk once, one thread, libdeflate, bytes in memory."""
    import h5py

    from loomfile._engine.codec import LIBDEFLATE

    if not reads or LIBDEFLATE is None:
        return None
    blobs: list[bytes] = []
    nbytes = 0
    with h5py.File(path, "r") as f, open(path, "rb") as raw:
        for layer, rows, cols in reads:
            dset = f["matrix" if layer == "" else f"layers/{layer}"]
            c0, c1 = dset.chunks
            wanted = {
                (int(r) * c0, int(c) * c1) for r in np.unique(rows // c0) for c in np.unique(cols // c1)
            }
            nbytes = max(nbytes, c0 * c1 * dset.dtype.itemsize)
            blobs += stored_chunks(dset, raw, wanted)
    out = np.empty(nbytes, dtype=np.uint8)
    decompress, d = LIBDEFLATE.zlib_decompress, LIBDEFLATE.decompressor()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for blob in blobs:
            decompress(d, blob, len(blob), out.ctypes.data, nbytes, None)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- driver --------------------------------------------------------------------------------------------------


def bench_file(path: Path, shape: tuple[int, int], ops: list[str], runs: int) -> list[dict[str, Any]]:
    rows = []
    for op in ops:
        results: dict[str, list[dict[str, float]]] = {"loompy": [], "loomfile": []}
        for _ in range(runs):
            for lib_name in ("loompy", "loomfile"):
                results[lib_name].append(measure(lib_name, op, path))
        row: dict[str, Any] = {"op": op}
        for lib_name, rs in results.items():
            row[lib_name] = statistics.median(r["seconds"] for r in rs)
            row[f"{lib_name}_mb"] = max(r["peak_mb"] for r in rs)
            row[f"{lib_name}_sum"] = rs[0]["checksum"]
        row["floor"] = floor(path, _touched(op, shape), runs)
        row["same"] = all(
            np.isclose(r["checksum"], row["loompy_sum"], rtol=1e-9)
            for r in results["loompy"] + results["loomfile"]
        )
        rows.append(row)
        print(_line(row), flush=True)
    return rows


HEADER = (
    f"| {'operation':<22} | {'loompy s':>9} | {'loomfile s':>10} | {'speedup':>7} | {'floor s':>7} "
    f"| {'vs floor':>8} | {'loompy MB':>9} | {'loomfile MB':>11} | {'same':>4} |\n"
    f"|{'-' * 24}|{'-' * 11}:|{'-' * 12}:|{'-' * 9}:|{'-' * 9}:|{'-' * 10}:|{'-' * 11}:|{'-' * 13}:|{'-' * 6}|"
)


def _line(r: dict[str, Any]) -> str:
    fl = r["floor"]
    floor_s = "-" if fl is None else f"{fl:.3f}"
    vs_floor = "-" if fl is None else f"{r['loomfile'] / fl:.2f}x"
    speedup = f"{r['loompy'] / r['loomfile']:.1f}x"
    return (
        f"| {r['op']:<22} | {r['loompy']:>9.3f} | {r['loomfile']:>10.3f} | {speedup:>7} | {floor_s:>7} "
        f"| {vs_floor:>8} | {r['loompy_mb']:>9.0f} | {r['loomfile_mb']:>11.0f} | {'yes' if r['same'] else 'NO':>4} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ops", nargs="*", default=list(OPS), help="a subset of the operations")
    parser.add_argument("--series", action="store_true", help="cost against the number of cells")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.series:
        print("| cells | " + " | ".join(f"{op}: loompy / loomfile s" for op in SERIES_OPS) + " |")
        for cells in SERIES_CELLS:
            path = datasets.ensure(20000, cells)
            rows = [bench_file(path, (20000, cells), [op], args.runs)[0] for op in SERIES_OPS]
            print(
                f"| {cells} | " + " | ".join(f"{r['loompy']:.2f} / {r['loomfile']:.2f}" for r in rows) + " |"
            )
        return
    shape = SCALES[args.scale]
    path = datasets.ensure(*shape)
    print(
        f"{path.name}: {shape[0]} x {shape[1]}, {path.stat().st_size / 2**20:.0f} MiB, {os.cpu_count()} cores, "
        f"median of {args.runs} runs, each run in a fresh process\n"
    )
    print(HEADER)
    bench_file(path, shape, args.ops, args.runs)


if __name__ == "__main__":
    main()
