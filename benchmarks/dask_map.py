"""map (mean, std, nonzero count) on both axes: loompy, loomfile in-process, loomfile.dask on local workers.

    python benchmarks/dask_map.py             # the 20000 x 20000 benchmark file, 3 runs
    python benchmarks/dask_map.py --runs 5

The file is generated with loompy into benchmarks/data/ if absent (see datasets.py). The Dask
clusters (``LocalCluster``, worker processes, loopback only) are started once, before any clock;
then every run times each method in turn (loompy, loomfile, and each cluster), so drift on this
shared machine spreads over all of them. Medians. Every result is checked against loomfile's
in-process one (bit for bit) and loompy's (to 1e-6).

The single-threaded workers (``LOOMFILE_THREADS=1``: one core each) show how the work divides over
workers; the default workers also run the engine's decoding pool (one thread per core) inside each
task, as loomfile does in-process.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets

import loomfile
import loomfile.dask as ld

FUNCTIONS = [np.mean, np.std, np.count_nonzero]
# name -> (workers, environment of each worker)
CLUSTERS = {
    "loomfile.dask, 1 worker x 1 core": (1, {"LOOMFILE_THREADS": "1"}),
    "loomfile.dask, 2 workers x 1 core": (2, {"LOOMFILE_THREADS": "1"}),
    "loomfile.dask, 2 workers (engine threads)": (2, {}),
}


def _loompy_map(path: str, axis: int) -> list[np.ndarray]:
    import loompy

    if not hasattr(np, "in1d"):
        np.in1d = np.isin  # type: ignore[attr-defined]  # loompy 3.0.8 on numpy 2.4
    with loompy.connect(path, "r") as ds:
        return list(ds.map(FUNCTIONS, axis=axis))


def _loomfile_map(path: str, axis: int) -> list[np.ndarray]:
    with loomfile.connect(path, "r") as ds:
        return ds.map(FUNCTIONS, axis=axis)


def _timed(fn: Callable[[], list[np.ndarray]]) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _same(got: list[np.ndarray], exact: list[np.ndarray], oracle: list[np.ndarray]) -> bool:
    return all(np.array_equal(g, e) for g, e in zip(got, exact, strict=True)) and all(
        np.allclose(g, o, rtol=1e-6) for g, o in zip(got, oracle, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.WARNING)
    from dask.distributed import Client, LocalCluster

    path = str(datasets.ensure(20000, 20000))
    clients: dict[str, Any] = {}
    for name, (workers, env) in CLUSTERS.items():
        start = time.perf_counter()
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, env=env
        )
        clients[name] = Client(cluster)
        clients[name].run(importlib.import_module, "loomfile.dask")  # workers import before any clock
        print(f"{name}: cluster up in {time.perf_counter() - start:.1f} s", flush=True)

    methods: dict[str, Callable[[int], list[np.ndarray]]] = {
        "loompy 3.0.8 (in-process)": lambda axis: _loompy_map(path, axis),
        "loomfile (in-process)": lambda axis: _loomfile_map(path, axis),
    }
    for name, client in clients.items():
        methods[name] = lambda axis, client=client: ld.map(path, FUNCTIONS, axis, client=client)

    times: dict[tuple[str, int], list[float]] = {}
    same: dict[tuple[str, int], bool] = {}
    for axis in (0, 1):
        exact = _loomfile_map(path, axis)
        oracle = _loompy_map(path, axis)
        for run in range(args.runs):
            for name, fn in methods.items():
                seconds, out = _timed(lambda fn=fn, axis=axis: fn(axis))
                times.setdefault((name, axis), []).append(seconds)
                same[(name, axis)] = same.get((name, axis), True) and _same(out, exact, oracle)
                print(f"axis {axis} run {run + 1} {name}: {seconds:.2f} s", flush=True)

    with loomfile.connect(path, "r") as ds:
        shape, chunks = ds.shape, ds.layers[""]._dataset().chunks
    tasks = [len(ld._parts(shape[a], chunks[a], shape[1 - a], 4, None)) for a in (0, 1)]
    print(
        f"\n{shape[0]} x {shape[1]}, chunks {chunks}, tasks per map: {tasks[0]} (axis 0), {tasks[1]} (axis 1)"
    )
    base = {a: statistics.median(times[("loompy 3.0.8 (in-process)", a)]) for a in (0, 1)}
    print("| method | axis 0 s | axis 1 s | vs loompy (0 / 1) | same |")
    print("|---|---:|---:|---:|---|")
    for name in methods:
        t0, t1 = (statistics.median(times[(name, a)]) for a in (0, 1))
        ok = "yes" if same[(name, 0)] and same[(name, 1)] else "NO"
        print(f"| {name} | {t0:.2f} | {t1:.2f} | {base[0] / t0:.1f}x / {base[1] / t1:.1f}x | {ok} |")
    for client in clients.values():
        cluster = client.cluster
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
