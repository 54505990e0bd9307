"""``loomfile validate --deep`` against a full read of every layer, on files of growing size.

    python benchmarks/validate.py                 # 20000 x 2500, 5000, 10000; 3 runs each
    python benchmarks/validate.py --cells 2500 5000 10000 20000 --runs 3

The deep check reads every chunk of every dataset (decoding each once), checks every chunk index
entry against HDF5's own lookup, and reads attributes and graphs; the goal is within 2x of reading
every layer, and linear in the file's size (seconds per MiB constant down the table). Each
measurement runs in a fresh process; the files are the loompy-written ones of ``run.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets

CHILD = {
    "read every layer": (
        "import loomfile\n"
        "with loomfile.connect(PATH, 'r') as ds:\n"
        "    for name in ds.layers.keys():\n"
        "        ds.layers[name][:, :]\n"
    ),
    "validate --deep": (
        "import loomfile\n"
        "problems = loomfile.LoomValidator().check_deep(PATH)\n"
        "assert problems == [], problems\n"
    ),
}


def child(what: str, path: str) -> None:
    start = time.perf_counter()
    exec(CHILD[what], {"PATH": path})
    print(json.dumps({"seconds": time.perf_counter() - start}))


def measure(what: str, path: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, str(path)], check=True, capture_output=True, text=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="*", default=[2500, 5000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"20000 genes, median of {args.runs} runs, each in a fresh process\n")
    print("| cells | MiB | read every layer s | validate --deep s | ratio | deep s per 100 MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for cells in args.cells:
        path = datasets.ensure(20000, cells)
        mib = path.stat().st_size / 2**20
        times = {what: [] for what in CHILD}  # type: dict[str, list[float]]
        for _ in range(args.runs):
            for what in CHILD:
                times[what].append(measure(what, path))
        read, deep = (statistics.median(times[w]) for w in CHILD)
        print(f"| {cells} | {mib:.0f} | {read:.2f} | {deep:.2f} | {deep / read:.2f}x | {deep / mib * 100:.2f} |")


if __name__ == "__main__":
    main()
