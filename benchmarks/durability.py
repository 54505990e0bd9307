"""What durability="full" (writes synced in SQLite's order, see docs/reliability.md) costs over "none".

    python benchmarks/durability.py                          # 20000 x 10000, 3 runs per operation and level
    python benchmarks/durability.py --scale tiny --runs 1    # 2000 x 1000, to try the harness
    python benchmarks/durability.py --ops permute "block"    # a subset (parts of the names)

The operations, inputs and child processes are write.py's (inputs generated once with loompy under
``benchmarks/data/``, ignored by git; each run in a fresh process; the clock stops when the output
file is closed), run by loomfile only, with ``LOOMFILE_DURABILITY`` set to "none" or "full" for the
child, the two levels alternating. Beside write.py's operations (which write new files, apart from
permute) come writes into a copy of ``full.loom``, made before the clock, which go through the
rollback journal: a new layer, a block of the main matrix rewritten in place, ten appends of 100
columns, and twenty small attribute writes (each write call is a transaction: its own syncs).

"in syncs" is the time the "full" runs spent inside fsync and fdatasync (timed in the child): on a
shared machine, where whole runs drift by 10-30%, it is the steadier measure of what "full" adds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import write
from run import child_in_scratch

LEVELS = ("none", "full")
WRITE_OPS = ["create from sparse", "new + add_columns x10", "combine 4 files", "combine 4 aligned files",
             "permute columns"]


def _copy(inputs: Path, scratch: Path) -> Path:
    out = scratch / "inplace.loom"
    shutil.copyfile(inputs / "full.loom", out)
    return out


def _new_layer(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    out = _copy(inputs, scratch)
    values = write.load_layers(inputs)[""]

    def run() -> None:
        with lib.connect(str(out)) as ds:
            ds.layers["again"] = values

    return run, out


def _block(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    out = _copy(inputs, scratch)
    m = write.load_layers(inputs)[""]
    rows, cols = m.shape[0] // 4, m.shape[1] // 4
    block = m[:rows, :cols].toarray() + 1

    def run() -> None:
        with lib.connect(str(out)) as ds:
            ds[:rows, :cols] = block

    return run, out


def _append(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    out = _copy(inputs, scratch)
    layers = write.load_layers(inputs)
    _, ca = write.load_attrs(inputs)
    bands = [({name: m[:, 100 * k : 100 * (k + 1)].toarray() for name, m in layers.items()},
              {name: v[100 * k : 100 * (k + 1)] for name, v in ca.items()}) for k in range(10)]

    def run() -> None:
        with lib.connect(str(out)) as ds:
            for band, attrs in bands:
                ds.add_columns(band, attrs)

    return run, out


def _attributes(lib: Any, inputs: Path, scratch: Path) -> tuple[Callable[[], None], Path]:
    out = _copy(inputs, scratch)
    _, ca = write.load_attrs(inputs)
    values = np.random.default_rng(0).random((20, len(ca["CellID"])))

    def run() -> None:
        with lib.connect(str(out)) as ds:
            for i, v in enumerate(values):
                ds.ca[f"Extra{i}"] = v

    return run, out


IN_PLACE: dict[str, write.Setup] = {
    "new layer (in place)": _new_layer,
    "block 1/4 x 1/4 (in place)": _block,
    "add_columns 10 x 100 (in place)": _append,
    "20 attribute writes (in place)": _attributes,
}
write.OPS.update(IN_PLACE)


def child(op: str, inputs: str, scratch: str) -> None:
    """write.child, with the time spent in fsync and fdatasync added to its report."""
    in_syncs = [0.0]

    def timed(sync: Callable[[int], None]) -> Callable[[int], None]:
        def call(fd: int) -> None:
            start = time.perf_counter()
            try:
                sync(fd)
            finally:
                in_syncs[0] += time.perf_counter() - start

        return call

    os.fsync, os.fdatasync = timed(os.fsync), timed(os.fdatasync)
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        write.child("loomfile", op, inputs, scratch)
    result = json.loads(report.getvalue().strip().splitlines()[-1])
    print(json.dumps({**result, "sync_seconds": in_syncs[0]}))


def measure(op: str, level: str, inputs: Path) -> dict[str, Any]:
    os.environ["LOOMFILE_DURABILITY"] = level
    return child_in_scratch(__file__, lambda scratch: [op, str(inputs), scratch], inputs, f"{op!r} ({level})")


HEADER = (
    f"| {'operation':<32} | {'none s':>7} | {'full s':>7} | {'full / none':>11} | {'in syncs s':>10} "
    f"| {'syncs / none':>12} | {'checksums equal':>15} |\n"
    f"|{'-' * 34}|{'-' * 8}:|{'-' * 8}:|{'-' * 12}:|{'-' * 11}:|{'-' * 13}:|{'-' * 17}|"
)


def bench(inputs: Path, ops: list[str], runs: int) -> None:
    for op in ops:
        results: dict[str, list[dict[str, Any]]] = {level: [] for level in LEVELS}
        for _ in range(runs):
            for level in LEVELS:
                results[level].append(measure(op, level, inputs))
        if any("error" in r for rs in results.values() for r in rs):
            print(f"| {op:<32} | FAILED |")
            continue
        seconds = {level: statistics.median(r["seconds"] for r in rs) for level, rs in results.items()}
        syncs = statistics.median(r["sync_seconds"] for r in results["full"])
        assert all(r["sync_seconds"] == 0 for r in results["none"]), "durability 'none' synced"
        same = write._same(results["none"] + results["full"], 1e-9)
        print(
            f"| {op:<32} | {seconds['none']:>7.3f} | {seconds['full']:>7.3f} | "
            f"{seconds['full'] / seconds['none']:>11.2f} | {syncs:>10.3f} | {syncs / seconds['none']:>11.1%} "
            f"| {'yes' if same else 'NO':>15} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(write.SCALES), default="small", help="small: 20000 x 10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ops", nargs="*", default=WRITE_OPS + list(IN_PLACE), help="operations (or parts of names)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    ops = write._select(args.ops)
    shape = write.SCALES[args.scale]
    inputs = write.ensure_inputs(*shape)
    size = (inputs / "full.loom").stat().st_size / 2**20
    print(
        f"{inputs.name}: {shape[0]} x {shape[1]}, full.loom {size:.0f} MiB, {os.cpu_count()} cores, "
        f"median of {args.runs} runs per level, each in a fresh process\n"
    )
    print(HEADER)
    bench(inputs, ops, args.runs)


if __name__ == "__main__":
    main()
