"""Many processes on one file: readers at once, a reader meeting a writer, file locking switched
off, and long-running use (file handles, memory). What users see is written up in docs/concurrency.md."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import loomfile

READERS = 24


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LOOMFILE_THREADS": "1", **extra}


def _python(code: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )


def _fingerprint(matrix: np.ndarray, cells: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(matrix).tobytes() + "|".join(cells).encode()).hexdigest()


@pytest.fixture
def counts(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    matrix = rng.poisson(0.5, (500, 300)).astype(np.float32)
    cells = np.array([f"cell{j}" for j in range(300)])
    path = tmp_path / "shared.loom"
    loomfile.create(path, matrix, {"Gene": np.array([f"g{i}" for i in range(500)])}, {"CellID": cells})
    return path, matrix, cells


READ_ALL = """
    import hashlib, sys, numpy as np, loomfile
    with loomfile.connect(sys.argv[1] if len(sys.argv) > 1 else {path!r}, "r") as ds:
        m, cells = ds[:, :], ds.ca.CellID
        part = ds[100:300, ::7]
    assert np.array_equal(part, m[100:300, ::7])
    print(hashlib.sha256(np.ascontiguousarray(m).tobytes() + "|".join(cells).encode()).hexdigest())
"""


def test_many_readers_at_once_read_correct_data(counts: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, matrix, cells = counts
    readers = [_python(READ_ALL.format(path=os.fspath(path))) for _ in range(READERS)]
    outputs = [r.communicate(timeout=120) for r in readers]
    assert [r.returncode for r in readers] == [0] * READERS, [err[-500:] for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {_fingerprint(matrix, cells)}


HOLD = """
    import sys, time, loomfile
    ds = loomfile.connect({path!r}, {mode!r})
    print("open", flush=True)
    time.sleep({seconds})
    ds.close()
"""


def _holder(path: Path, mode: str, seconds: float, **env: str) -> subprocess.Popen[str]:
    """A process that keeps the file open for ``seconds`` (from when it prints "open")."""
    proc = _python(HOLD.format(path=os.fspath(path), mode=mode, seconds=seconds), **env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open", proc.stderr.read() if proc.stderr else ""
    return proc


@contextlib.contextmanager
def _held(path: Path, mode: str, seconds: float) -> Iterator[None]:
    """Another process holds the file open (mode ``mode``) while the block runs; killed after it."""
    holder = _holder(path, mode, seconds)
    try:
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("mode", ["r", "r+"])
def test_opening_while_another_process_writes_says_so(
    counts: tuple[Path, np.ndarray, np.ndarray], mode: Any
) -> None:
    path, _, _ = counts
    with _held(path, "r+", 30):
        with pytest.raises(loomfile.LoomLockedError, match=r"another process .*writing"):
            loomfile.connect(path, mode)
        with pytest.raises(OSError):  # (LoomLockedError is an OSError, as h5py raised)
            loomfile.connect(path, mode, validate=False)


def test_writing_while_another_process_reads_says_so(counts: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, _, _ = counts
    with _held(path, "r", 30):
        with pytest.raises(loomfile.LoomLockedError, match="another process has it open"):
            loomfile.connect(path, "r+")
        with loomfile.connect(path, "r") as ds:  # readers share the file
            assert ds.shape == (500, 300)


def test_timeout_waits_for_the_writer_to_finish(counts: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, matrix, _ = counts
    writer = _holder(path, "r+", 1.5)
    start = time.monotonic()
    with pytest.raises(loomfile.LoomLockedError):
        loomfile.connect(path, "r", timeout=0.3)
    assert 0.3 <= time.monotonic() - start < 1.4
    with loomfile.connect(path, "r", timeout=30) as ds:
        np.testing.assert_array_equal(ds[:, :], matrix)
    assert writer.wait(timeout=30) == 0


WRITER = """
    import numpy as np, loomfile
    with loomfile.connect({path!r}) as ds:
        for i in range(1, {rounds} + 1):
            ds.ca["Round"] = np.full(ds.shape[1], i)
            ds[:, :64] = np.full((ds.shape[0], 64), i, dtype=np.float32)
    print("done", flush=True)
"""

UNLOCKED_READER = """
    import collections, sys, time, numpy as np, loomfile
    seen = collections.Counter()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with loomfile.connect({path!r}, "r") as ds:
                block = ds[:, :64]
                rounds = ds.ca["Round"] if "Round" in ds.ca else np.zeros(1)
        except loomfile.LoomError as e:
            seen["loomfile error"] += 1
            continue
        uniform = len(np.unique(block)) == 1 and len(np.unique(rounds)) == 1
        seen["consistent" if uniform else "mixed"] += 1
        if int(rounds[0]) == {rounds}:
            break
    print(dict(seen), flush=True)
"""


def test_without_file_locking_a_single_writer_keeps_the_file_sound(
    counts: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    """``HDF5_USE_FILE_LOCKING=FALSE`` (NFS, HPC): readers are not kept out while a writer works.
    They may see half-written values or a loomfile error, never crash; and they must not undo the
    live writer's journal (they once did: the writer's commit then failed)."""
    path, matrix, _ = counts
    rounds = 15
    env = {"HDF5_USE_FILE_LOCKING": "FALSE"}
    readers = [_python(UNLOCKED_READER.format(path=os.fspath(path), rounds=rounds), **env) for _ in range(3)]
    writer = _python(WRITER.format(path=os.fspath(path), rounds=rounds), **env)
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0 and out.strip() == "done", err[-2000:]
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err[-2000:]  # (a crash or a foreign exception fails here)
    assert loomfile.LoomValidator().check_deep(path) == []
    with loomfile.connect(path, "r") as ds:
        assert (ds[:, :64] == rounds).all() and (ds.ca.Round == rounds).all()
        np.testing.assert_array_equal(ds[:, 64:], matrix[:, 64:])


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_connect_close_cycles_leak_no_file_handles(counts: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, matrix, _ = counts
    for mode in ("r", "r+"):
        with loomfile.connect(path, mode) as ds:  # (lazily created pools, caches: before counting)
            ds[:10, :10]
    before = _open_descriptors()
    for i in range(1000):
        with loomfile.connect(path, "r" if i % 2 else "r+") as ds:
            assert ds[i % 500, 7] == matrix[i % 500, 7]
    assert _open_descriptors() == before
    for _ in range(50):  # dropped without close(): the garbage collector lets go
        loomfile.connect(path, "r")[0, 0]
    import gc

    gc.collect()
    assert _open_descriptors() == before


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="needs /proc")
def test_repeated_reads_do_not_grow_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    matrix = rng.poisson(0.5, (2000, 1500)).astype(np.float32)  # 12 MB per whole read
    path = tmp_path / "big.loom"
    loomfile.create(path, matrix, {}, {})
    with loomfile.connect(path, "r") as ds:
        for _ in range(10):  # warm up: buffers, pools
            ds[:, :]
            ds[::3, 100:900]
        before = _rss_bytes()
        for _ in range(150):  # 150 x 12 MB if anything were kept
            ds[:, :]
            ds[::3, 100:900]
            ds.ca.keys()
        grown = _rss_bytes() - before
    assert grown < 40 * 2**20, f"resident memory grew by {grown / 2**20:.0f} MB"


# --- a connection opened without a mode: for reading, and for writing from its first write ----------

TRY_READ = """
    import loomfile
    try:
        with loomfile.connect({path!r}, "r") as ds:
            print("read", ds.shape, flush=True)
    except loomfile.LoomLockedError as e:
        print("locked", e, flush=True)
"""


def _other_process_reads(path: Path) -> str:
    proc = _python(TRY_READ.format(path=os.fspath(path)))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.strip()


def test_a_default_connection_lets_others_read_until_its_first_write(
    counts: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    """A notebook's connect(path) used to take the write lock: `loomfile info` elsewhere failed with
    "another process is writing". Now the lock is taken at the first write, and kept until close."""
    path, matrix, _ = counts
    with loomfile.connect(path) as ds:
        assert ds.mode == "r+"
        np.testing.assert_array_equal(ds[:, :10], matrix[:, :10])
        assert _other_process_reads(path).startswith("read (500, 300)")
        ds.ca["Seen"] = np.arange(300)  # the first write: reopened through the journal, locked
        assert _other_process_reads(path).startswith("locked")
        ds[0, 0] = 42
        assert ds[0, 0] == 42 and list(ds.ca.Seen[:3]) == [0, 1, 2]
    assert _other_process_reads(path).startswith("read (500, 300)")
    with loomfile.connect(path, "r") as ds:
        assert ds[0, 0] == 42 and "Seen" in ds.ca


def test_a_first_write_while_another_process_reads_fails_and_keeps_reading(
    counts: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    path, matrix, _ = counts
    before = path.read_bytes()
    with _held(path, "r", 30), loomfile.connect(path) as ds:
        with pytest.raises(loomfile.LoomLockedError, match="another process has it open"):
            ds.ca["Seen"] = np.arange(300)
        np.testing.assert_array_equal(ds[:, :], matrix)  # still open for reading
        assert "Seen" not in ds.ca
    assert path.read_bytes() == before


def test_the_loompy_mode_still_locks_at_once(counts: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, _, _ = counts
    with loomfile.connect(path, "r+"):
        assert _other_process_reads(path).startswith("locked")


def test_a_file_this_process_may_not_write_opens_for_reading(tmp_path: Path) -> None:
    """A lab's shared atlas, read-only to its users: connect(path) reads it (it raised
    PermissionError); a write says why it fails. (Made unwritable with chattr +i, which stops root
    too: the tests run as root.)"""
    path = tmp_path / "atlas.loom"
    loomfile.create(path, np.ones((5, 4)), {"Gene": np.arange(5)}, {"CellID": np.arange(4)})
    path.chmod(0o444)
    locked = subprocess.run(["chattr", "+i", os.fspath(path)], capture_output=True, text=True)
    if locked.returncode != 0 and os.access(path, os.W_OK):
        pytest.skip(f"cannot make the file unwritable here: {locked.stderr.strip()}")
    try:
        before = path.read_bytes()
        with loomfile.connect(path) as ds:
            assert ds.shape == (5, 4)
            with pytest.raises(loomfile.LoomReadOnlyError, match="may not write to it"):
                ds.ca["x"] = np.arange(4)
            assert list(ds.ca.CellID) == [0, 1, 2, 3]
        assert path.read_bytes() == before
    finally:
        subprocess.run(["chattr", "-i", os.fspath(path)], capture_output=True)
