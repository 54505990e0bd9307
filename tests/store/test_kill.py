"""A writer killed with SIGKILL at random moments loses nothing it had committed.

A separate process (the "writer") runs a fixed, seeded sequence of write calls and reports each one
that returned; the test kills it with SIGKILL after a random delay and then checks what is on disk:

- in-place writes (journaled): the file opens (``connect`` undoes the half-done call) and holds
  exactly the state after the last call reported committed, or after the next one (the kill can
  land between the commit and the report); a further write works and h5py opens the file;
- calls that produce a new file: the target is the old file, byte for byte (or still absent), or
  the complete new file, never anything in between.

Starting Python and importing numpy/h5py/loomfile takes ~0.3 s, so a single server process does it
once and forks one writer per run; the writers are the processes killed. Delays are spread evenly
(stratified, seeded) over the writer's runtime, measured by uninterrupted runs first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

import loomfile

KILLS_IN_PLACE = 8  # per family of in-place writes
KILLS_NEW_FILE = 6  # per call that produces a new file
TIMEOUT = 60.0  # seconds without a word from the writer: it hangs

Step = Callable[[loomfile.LoomConnection], None]
State = dict[str, Any]

# --- the writer's side: runs in a process forked by the server ----------------------------------------

SERVER = r"""
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("kill_scenarios", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
os.write(1, b"server ready\n")
while True:
    line = sys.stdin.readline()
    if not line:
        break
    pid = os.fork()
    if pid == 0:
        module.writer(json.loads(line))  # never returns
    os.write(1, f"pid {pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    os.write(1, f"exit {status}\n".encode())
"""


def writer(job: dict[str, Any]) -> None:
    """Run one job's calls, printing ``ready`` once their data is made (just before ``connect``
    or the call) and ``committed <k>`` after each call returns; ends the process."""

    def emit(text: str) -> None:
        os.write(1, (text + "\n").encode())

    code = 0
    try:
        directory, path = Path(job["dir"]), job["path"]
        if job["kind"] == "in-place":
            steps = IN_PLACE[job["family"]].steps(directory)
            emit("ready")
            ds = loomfile.connect(path)
            for k, step in enumerate(steps):
                step(ds)
                emit(f"committed {k}")
            ds.close()
        else:
            call = NEW_FILE[job["family"]].call(directory)
            emit("ready")
            call(path)
            emit("committed 0")
        emit("closed")
    except BaseException:
        emit("error " + json.dumps(traceback.format_exc()))
        code = 1
    os._exit(code)


# --- files and sequences of calls -----------------------------------------------------------------------


def cells(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{j}" for j in range(n)])


def graph(n: int, seed: int, density: float = 0.03) -> sp.coo_matrix:
    return sp.random(n, n, density=density, random_state=seed, format="coo", dtype=np.float32)


def make_loom(path: Path, n_rows: int, n_cols: int, seed: int, prefix: str = "c") -> None:
    """A Loom file with a float32 main matrix, a uint16 layer, row and column attributes and a
    column graph; rows of files with another seed come in another order of ``Gene``."""
    rng = np.random.default_rng(seed)
    m = rng.poisson(0.5, (n_rows, n_cols)).astype(np.float32)
    genes = np.array([f"g{i}" for i in range(n_rows)])
    order = np.arange(n_rows) if seed == 0 else rng.permutation(n_rows)
    loomfile.create(
        path,
        {"": m[order], "spliced": (m[order] * 2).astype(np.uint16)},
        {"Gene": genes[order], "Start": order * 10},
        {"CellID": cells(prefix, n_cols), "Size": rng.random(n_cols), "Cluster": np.arange(n_cols) % 5},
    )
    with loomfile.connect(path) as ds:
        ds.col_graphs["knn"] = graph(n_cols, seed)


def base_file(directory: Path) -> Path:
    return directory / "base.loom"


@dataclass(frozen=True)
class InPlace:
    """A family of in-place write calls: ``steps(directory)`` makes the (deterministic) calls,
    ``prepare(directory)`` the files they need."""

    steps: Callable[[Path], list[Step]]
    prepare: Callable[[Path], None] = lambda directory: None


N_ROWS, N_COLS = 300, 200


def add_columns_steps(directory: Path) -> list[Step]:
    rng = np.random.default_rng(1)
    steps: list[Step] = []
    for k in range(12):
        n = int(rng.integers(5, 40))
        m = rng.poisson(1.0, (N_ROWS, n)).astype(np.float32)
        layers = {"": m, "spliced": (m * 3).astype(np.uint16)}
        attrs = {"CellID": cells(f"add{k}_", n), "Size": rng.random(n), "Cluster": rng.integers(0, 5, n)}
        steps.append(lambda ds, layers=layers, attrs=attrs: ds.add_columns(layers, attrs))
    return steps


def other_file(directory: Path, i: int) -> Path:
    return directory / f"other{i}.loom"


def add_loom_prepare(directory: Path) -> None:
    for i in range(4):
        make_loom(other_file(directory, i), N_ROWS, 20 + 5 * i, seed=10 + i, prefix=f"o{i}_")


def add_loom_steps(directory: Path) -> list[Step]:
    return [
        lambda ds, k=k: ds.add_loom(str(other_file(directory, k % 4)), key="Gene", include_graphs=k % 2 == 0)
        for k in range(10)
    ]


def permute_steps(axis: int) -> Callable[[Path], list[Step]]:
    def steps(directory: Path) -> list[Step]:
        rng = np.random.default_rng(2 + axis)
        orders = [rng.permutation((N_ROWS, N_COLS)[axis]) for _ in range(12)]
        return [lambda ds, order=order: ds.permute(order, axis=axis) for order in orders]

    return steps


def column_attribute_steps(directory: Path) -> list[Step]:
    rng = np.random.default_rng(4)
    values: list[tuple[str, np.ndarray | None]] = [
        ("Score", rng.random(N_COLS)),
        ("CellID", np.array([f"renamed_cell_{j}_" + "x" * (j % 7) for j in range(N_COLS)])),
        ("Cluster", rng.integers(0, 9, N_COLS)),
        ("PCA", rng.normal(size=(N_COLS, 4))),
        ("Label", np.array([f"type{j % 13}" for j in range(N_COLS)])),
        ("Score", None),  # deleted
        ("Size", rng.random(N_COLS).astype(np.float32)),
        ("Flag", (rng.random(N_COLS) < 0.5).astype(np.int64)),
        ("CellID", np.array(["a much longer identifier, number " + str(j) for j in range(N_COLS)])),
        ("PCA", rng.normal(size=(N_COLS, 6))),
        ("Label", None),
        ("Cluster", rng.random(N_COLS)),
        ("Last", np.arange(N_COLS)),
    ]

    def step(name: str, value: np.ndarray | None) -> Step:
        if value is None:
            return lambda ds: ds.ca.__delitem__(name)
        return lambda ds: ds.ca.__setitem__(name, value)

    return [step(name, value) for name, value in values]


def layer_block_steps(directory: Path) -> list[Step]:
    rng = np.random.default_rng(5)
    steps: list[Step] = []
    for k in range(14):
        r0, c0 = int(rng.integers(0, N_ROWS - 50)), int(rng.integers(0, N_COLS - 40))
        r1, c1 = int(rng.integers(r0 + 1, N_ROWS + 1)), int(rng.integers(c0 + 1, N_COLS + 1))
        if k % 2 == 0:
            block: np.ndarray = rng.random((r1 - r0, c1 - c0)).astype(np.float32)
            steps.append(lambda ds, b=block, r=slice(r0, r1), c=slice(c0, c1): ds.__setitem__((r, c), b))
        else:
            block = rng.integers(0, 60000, (r1 - r0, c1 - c0)).astype(np.uint16)
            steps.append(
                lambda ds, b=block, r=slice(r0, r1), c=slice(c0, c1): ds.layers["spliced"].__setitem__(
                    (r, c), b
                )
            )
    return steps


def new_layer_steps(directory: Path) -> list[Step]:
    rng = np.random.default_rng(6)
    dtypes = [np.float32, np.uint16, np.float64, np.int32]
    steps: list[Step] = []
    for k in range(10):
        data = (rng.random((N_ROWS, N_COLS)) * 1000).astype(dtypes[k % 4])
        name = "spliced" if k == 6 else f"extra{k % 7}"  # k == 7: extra0 again, replaced
        steps.append(lambda ds, name=name, data=data: ds.layers.__setitem__(name, data))
    steps.insert(5, lambda ds: ds.layers.__delitem__("extra1"))
    return steps


def col_graph_steps(directory: Path) -> list[Step]:
    names = ["knn", "mknn", "umap", "knn", "extra", "mknn", "knn", "big", "umap", "knn", "extra", "big"]

    def step(name: str, g: sp.coo_matrix) -> Step:
        return lambda ds: ds.col_graphs.__setitem__(name, g)

    return [step(name, graph(N_COLS, 100 + k, density=0.02 + 0.01 * (k % 4))) for k, name in enumerate(names)]


IN_PLACE: dict[str, InPlace] = {
    "add_columns": InPlace(add_columns_steps),
    "add_loom": InPlace(add_loom_steps, add_loom_prepare),
    "permute columns": InPlace(permute_steps(1)),
    "permute rows": InPlace(permute_steps(0)),
    "column attributes": InPlace(column_attribute_steps),
    "layer blocks": InPlace(layer_block_steps),
    "new layers": InPlace(new_layer_steps),
    "column graphs": InPlace(col_graph_steps),
}


@dataclass(frozen=True)
class NewFile:
    """A call that produces a new file: ``call(directory)`` gives a function of the target path
    (its data made beforehand); ``prepare(directory)`` makes its inputs and returns the old file to
    put at the target first (None: no file there)."""

    call: Callable[[Path], Callable[[str], None]]
    prepare: Callable[[Path], Path | None]
    target: str = "target.loom"


def create_call(directory: Path) -> Callable[[str], None]:
    rng = np.random.default_rng(7)
    m = rng.poisson(0.5, (2000, 3000)).astype(np.float32)
    ra = {"Gene": np.array([f"g{i}" for i in range(2000)])}
    ca = {"CellID": cells("new", 3000), "Size": rng.random(3000)}
    return lambda target: loomfile.create(target, m, ra, ca)


def old_loom(directory: Path) -> Path:
    make_loom(directory / "old.loom", N_ROWS, N_COLS, seed=0)
    return directory / "old.loom"


def new_call(directory: Path) -> Callable[[str], None]:
    rng = np.random.default_rng(8)
    genes = np.array([f"g{i}" for i in range(1000)])
    batches = [rng.poisson(0.5, (1000, 250)).astype(np.float32) for _ in range(6)]

    def call(target: str) -> None:
        with loomfile.new(target, file_attrs={"title": "built batch by batch"}) as ds:
            for b, m in enumerate(batches):
                ds.add_columns(
                    {"": m, "spliced": (m * 2).astype(np.uint16)},
                    {"CellID": cells(f"b{b}_", 250)},
                    row_attrs={"Gene": genes},
                )
            ds.col_graphs["knn"] = graph(ds.shape[1], 9, density=0.001)

    return call


def combine_prepare(directory: Path) -> Path:
    for i in range(3):
        make_loom(directory / f"part{i}.loom", 2000, 300, seed=20 + i, prefix=f"p{i}_")
    return old_loom(directory)


def combine_call(directory: Path) -> Callable[[str], None]:
    parts = [str(directory / f"part{i}.loom") for i in range(3)]
    return lambda target: loomfile.combine(parts, target, key="Gene")


def source_prepare(n_rows: int, n_cols: int) -> Callable[[Path], Path]:
    def prepare(directory: Path) -> Path:
        make_loom(directory / "source.loom", n_rows, n_cols, seed=30)
        return old_loom(directory)

    return prepare


def aggregate_call(directory: Path) -> Callable[[str], None]:
    def call(target: str) -> None:
        with loomfile.connect(directory / "source.loom", "r") as ds:
            # one column per group: an output as large as the input, so that writing it takes a good
            # part of the time (the aggregation itself runs in memory before anything is written)
            ds.aggregate(target, group_by=np.arange(ds.shape[1]), aggr_by="first")

    return call


def export_prepare(directory: Path) -> Path:
    source_prepare(700, 300)(directory)
    (directory / "old.tab").write_text("an old export\t1\t2\n" * 100)
    return directory / "old.tab"


def export_call(directory: Path) -> Callable[[str], None]:
    def call(target: str) -> None:
        with loomfile.connect(directory / "source.loom", "r") as ds:
            ds.export(target)

    return call


NEW_FILE: dict[str, NewFile] = {
    "create over a file": NewFile(create_call, old_loom),
    "new + close": NewFile(new_call, lambda directory: None),
    "combine": NewFile(combine_call, combine_prepare),
    "aggregate": NewFile(aggregate_call, source_prepare(2000, 1500)),
    "export": NewFile(export_call, export_prepare, target="target.tab"),
}

# --- the parent's side: running, killing, checking ----------------------------------------------------


@dataclass
class Run:
    """What a writer reported before it ended."""

    last: int  # the last call reported committed (-1: none)
    closed: bool  # it ran to the end
    killed: bool  # by our SIGKILL
    runtime: float  # from "ready" to "closed" (or to the kill)


class Server:
    """The process that imports everything once and forks a writer per job."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.buffer = b""
        assert self.line() == "server ready"

    def line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([fd], [], [], TIMEOUT)
            assert ready, f"no word from the writer in {TIMEOUT} s"
            chunk = os.read(fd, 65536)
            assert chunk, "the server died"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def run(self, job: dict[str, Any], delay: float | None) -> Run:
        """Run a job; kill its writer ``delay`` seconds after it is ready (None: let it finish)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        seen: dict[str, Any] = {
            "pid": 0,
            "ready": 0.0,
            "closed": 0.0,
            "last": -1,
            "status": None,
            "error": None,
        }

        def take(line: str) -> None:
            """Record one message of the writer (or of the server about it)."""
            word, _, rest = line.partition(" ")
            if word in ("ready", "closed"):
                seen[word] = time.perf_counter()
            elif word in ("pid", "exit", "committed"):
                seen[{"exit": "status", "committed": "last"}.get(word, word)] = int(rest)
            elif word == "error":
                seen["error"] = json.loads(rest)

        while not (seen["pid"] and seen["ready"]) and seen["status"] is None:
            take(self.line())
        killed_at = 0.0
        if delay is not None and seen["status"] is None:
            time.sleep(max(0.0, delay - (time.perf_counter() - seen["ready"])))
            killed_at = time.perf_counter()
            # The server reaps the writer only after it ends, and reports that after: until we
            # read "exit", the pid is the writer's (alive, or a zombie if it just finished).
            with contextlib.suppress(ProcessLookupError):
                os.kill(seen["pid"], signal.SIGKILL)
        while seen["status"] is None:
            take(self.line())
        error, status, closed_at, ready_at = seen["error"], seen["status"], seen["closed"], seen["ready"]
        assert error is None, f"the writer failed:\n{error}"
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert killed or status == 0, f"the writer ended with status {status}"
        assert closed_at or killed, "the writer stopped without finishing"
        runtime = (closed_at if closed_at else killed_at) - ready_at
        return Run(seen["last"], bool(closed_at), killed, runtime)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def delays(runtime: float, n: int, seed: int) -> list[float]:
    """``n`` random delays in [0, runtime], one in each n-th of it."""
    rng = np.random.default_rng(seed)
    return [(i + rng.random()) * runtime / n for i in range(n)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_of(path: Path) -> Path:
    return path.parent / f".{path.name}.loomfile-journal"


def state(ds: loomfile.LoomConnection) -> State:
    """Everything a reader sees in the file (timestamps left out)."""
    out: State = {"shape": np.array(ds.shape)}
    for name in ds.layers.keys():
        out[f"layer {name!r}"] = ds.layers[name][:, :]
    for kind, attrs in (("row", ds.ra), ("col", ds.ca)):
        for name in attrs.keys():
            out[f"{kind} attribute {name}"] = np.asarray(attrs[name])
    for kind, graphs in (("row", ds.row_graphs), ("col", ds.col_graphs)):
        for name in graphs.keys():
            out[f"{kind} graph {name}"] = sp.coo_matrix(graphs[name]).toarray()
    for name in ds.attrs.keys():
        if name not in ("CreationDate", "last_modified"):
            out[f"global attribute {name}"] = np.asarray(ds.attrs[name])
    return out


def mismatches(got: State, want: State) -> list[str]:
    out = [f"{key}: missing" for key in want.keys() - got.keys()]
    out += [f"{key}: not expected" for key in got.keys() - want.keys()]
    for key in sorted(got.keys() & want.keys()):
        a, b = got[key], want[key]
        if a.dtype != b.dtype or a.shape != b.shape:
            out.append(f"{key}: {a.dtype}{a.shape}, expected {b.dtype}{b.shape}")
        elif not np.array_equal(a, b):
            out.append(f"{key}: {np.count_nonzero(a != b)} of {a.size} values differ")
    return out


def read_with_h5py(path: Path) -> int:
    """Open the file with plain h5py and read every dataset and attribute; the number of datasets."""
    count = 0

    def visit(name: str, obj: Any) -> None:
        nonlocal count
        dict(obj.attrs)
        if isinstance(obj, h5py.Dataset):
            obj[()]
            count += 1

    with h5py.File(path, "r") as f:
        dict(f.attrs)
        f.visititems(visit)
    return count


# --- in-place writes ---------------------------------------------------------------------------------------


def recovered(path: Path, allowed: list[State], last: int) -> None:
    """The file opens (the interrupted call undone) in one of the ``allowed`` states (those after
    calls ``last``, ``last + 1``), its journal is gone, a further write works and h5py opens it."""
    with loomfile.connect(path) as ds:
        assert not journal_of(path).exists()
        got = state(ds)
        problems = [mismatches(got, want) for want in allowed]
        assert any(p == [] for p in problems), "\n".join(
            f"against the state after call {last + j}: {p}" for j, p in enumerate(problems)
        )
        ds.ca["After"] = np.arange(ds.shape[1])
    assert not journal_of(path).exists()
    assert read_with_h5py(path) > 0
    with loomfile.connect(path, "r") as ds:
        np.testing.assert_array_equal(ds.ca["After"], np.arange(ds.shape[1]))
        assert mismatches({k: v for k, v in state(ds).items() if "After" not in k}, got) == []


@pytest.mark.parametrize("family", list(IN_PLACE))
def test_a_killed_in_place_writer_loses_no_committed_call(
    tmp_path: Path, server: Server, family: str
) -> None:
    """After a kill at any moment of a sequence of write calls on an existing file, the file opens
    and holds the state after the last call reported committed (or after the next one); the journal
    is gone, a further write works, and h5py opens the file."""
    spec = IN_PLACE[family]
    make_loom(base_file(tmp_path), N_ROWS, N_COLS, seed=0)
    spec.prepare(tmp_path)
    # the expected state after each call: the same calls replayed here on a copy
    replay = tmp_path / "replay.loom"
    shutil.copyfile(base_file(tmp_path), replay)
    with loomfile.connect(replay) as ds:
        states = [state(ds)]
        for step in spec.steps(tmp_path):
            step(ds)
            states.append(state(ds))
    n = len(states) - 1
    assert n >= 8
    work = tmp_path / "work"
    work.mkdir()
    path = work / "f.loom"
    job = {"kind": "in-place", "family": family, "dir": str(tmp_path), "path": str(path)}

    # uninterrupted runs give the replayed end state, and the runtime (the faster of two: the
    # machine may be busy)
    runtimes = []
    for _ in range(2):
        shutil.copyfile(base_file(tmp_path), path)
        full = server.run(job, None)
        assert full.closed and full.last == n - 1
        with loomfile.connect(path, "r") as ds:
            assert mismatches(state(ds), states[n]) == []
        runtimes.append(full.runtime)
    runtime = min(runtimes)

    log: list[str] = []
    inside = 0  # kills that cut the sequence: mid-call (journal left) or between two calls
    with_journal = 0
    for i, delay in enumerate(delays(runtime, KILLS_IN_PLACE, seed=zlib.crc32(family.encode()))):
        shutil.copyfile(base_file(tmp_path), path)
        run = server.run(job, delay)
        journal = journal_of(path).exists()
        where = (
            f"{family}, kill {i}: {delay * 1000:.1f} ms after ready (full run {runtime * 1000:.1f} ms), "
            f"last committed call {run.last} of {n}, journal left: {journal}, ran to the end: {run.closed}"
        )
        log.append(where)
        with_journal += journal
        inside += journal or 0 <= run.last < n - 1
        allowed = [states[n]] if run.closed else states[run.last + 1 : run.last + 3]
        try:
            recovered(path, allowed, run.last)
        except Exception as e:
            raise AssertionError(f"{where}\n{type(e).__name__}: {e}") from e
    print("\n" + "\n".join(log))
    assert inside > 0, "no kill landed inside the sequence of calls:\n" + "\n".join(log)
    print(f"{family}: {with_journal} kills mid-call, {inside - with_journal} between calls")


# --- calls that produce a new file ----------------------------------------------------------------------------


def loom_outcome(target: Path, expected: State) -> None:
    """The target is a complete new Loom file with the expected contents, h5py opens it, and it
    takes a further write."""
    assert read_with_h5py(target) > 0
    with loomfile.connect(target, "r") as ds:
        assert mismatches(state(ds), expected) == []
    with loomfile.connect(target) as ds:
        ds.ca["After"] = np.arange(ds.shape[1])
    assert not journal_of(target).exists()


@pytest.mark.parametrize("family", list(NEW_FILE))
def test_a_killed_writer_of_a_new_file_leaves_the_old_or_the_new(
    tmp_path: Path, server: Server, family: str
) -> None:
    """After a kill at any moment of a call that produces a new file, the target holds the old
    file untouched (or is still absent) or the complete new one, which h5py opens."""
    spec = NEW_FILE[family]
    old = spec.prepare(tmp_path)
    old_digest = digest(old) if old is not None else None
    is_loom = spec.target.endswith(".loom")
    # the expected new file: the same call made here
    (tmp_path / "expected").mkdir()
    expected_path = tmp_path / "expected" / spec.target
    spec.call(tmp_path)(str(expected_path))
    expected: State = {}
    if is_loom:
        with loomfile.connect(expected_path, "r") as ds:
            expected = state(ds)
    expected_digest = digest(expected_path)

    work = tmp_path / "work"
    work.mkdir()
    target = work / spec.target
    job = {"kind": "new-file", "family": family, "dir": str(tmp_path), "path": str(target)}

    def reset() -> None:
        for p in work.iterdir():
            p.unlink()
        if old is not None:
            shutil.copyfile(old, target)

    runtimes = []
    for _ in range(2):  # uninterrupted: the new file, and the runtime (the faster of two)
        reset()
        full = server.run(job, None)
        assert full.closed
        if is_loom:
            loom_outcome(target, expected)
        else:
            assert digest(target) == expected_digest
        runtimes.append(full.runtime)
    runtime = min(runtimes)

    log: list[str] = []
    outcomes: list[tuple[float, str, bool]] = []  # (delay, outcome, temporary files left)

    def kill_at(i: int, delay: float) -> None:
        reset()
        run = server.run(job, delay)
        # Temporary files of the killed writer stay behind (the writer is dead, nobody removes
        # them): ``.target.loom.<random>.tmp``.
        stray = sorted(p.name for p in work.iterdir() if p.name != spec.target)
        if not target.exists():
            outcome = "absent"
        elif old_digest is not None and digest(target) == old_digest:
            outcome = "old"
        else:
            outcome = "new"
        where = (
            f"{family}, kill {i}: {delay * 1000:.1f} ms after ready (full run {runtime * 1000:.1f} ms), "
            f"committed: {run.last == 0}, target: {outcome}, left behind: {stray}"
        )
        log.append(where)
        outcomes.append((delay, outcome, bool(stray)))
        assert outcome in (("old",) if old is not None else ("absent",)) + ("new",), where
        if run.last == 0:
            assert outcome == "new", where
        if outcome != "new":
            return
        if is_loom:
            try:
                loom_outcome(target, expected)
            except Exception as e:
                raise AssertionError(f"{where}: {e}") from e
        else:
            assert digest(target) == expected_digest, where

    for i, delay in enumerate(delays(runtime, KILLS_NEW_FILE, seed=zlib.crc32(family.encode()))):
        kill_at(i, delay)
    # Writing the new file may be a short moment at the end of the call (aggregate computes first):
    # if no kill landed in it, aim between the last kill that left the old file and the first that
    # found the new one.
    for i in range(KILLS_NEW_FILE, KILLS_NEW_FILE + 8):
        if any(stray for _, _, stray in outcomes):
            break
        lo = max((d for d, outcome, _ in outcomes if outcome != "new"), default=0.0)
        hi = min((d for d, outcome, _ in outcomes if outcome == "new" and d > lo), default=runtime)
        kill_at(i, (lo + hi) / 2)
    before_commit = sum(outcome != "new" for _, outcome, _ in outcomes)
    temporaries = sum(stray for _, _, stray in outcomes)
    print("\n" + "\n".join(log))
    assert before_commit > 0, "every kill came after the new file was in place:\n" + "\n".join(log)
    assert temporaries > 0, "no kill landed while the new file was being written:\n" + "\n".join(log)
