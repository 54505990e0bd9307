"""The rollback journal: a write call that is cut short at any moment leaves the file exactly as it
was before the call (byte for byte, once recovered); a call that returned is never undone."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any
from unittest import mock

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loomfile
from loomfile._errors import LoomFormatError, LoomLockedError
from loomfile._store import journal as _journal
from loomfile._store.journal import JournaledFile, journal_path, recover
from looms import counts_file


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_loom(path: Path, n_rows: int = 300, n_cols: int = 200, seed: int = 0) -> np.ndarray:
    return counts_file(path, n_rows, n_cols, seed)


# --- the interval bookkeeping ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 20)), max_size=25))
def test_saved_ranges_match_a_set_model(ops: list[tuple[int, int]]) -> None:
    saved = _journal._Saved()
    model: set[int] = set()
    for lo, width in ops:
        hi = lo + width
        gaps = saved.missing(lo, hi)
        expect = sorted(set(range(lo, hi)) - model)
        assert [i for a, b in gaps for i in range(a, b)] == expect
        assert all(a < b for a, b in gaps)
        saved.add(lo, hi) if width else None
        model |= set(range(lo, hi))
        assert all(a < b for a, b in zip(saved.starts, saved.stops, strict=True))
        assert all(
            b < a for a, b in zip(saved.starts[1:], saved.stops[:-1], strict=True)
        )  # disjoint, not touching


# --- a kill at every write: the recovered file is the original, byte for byte ------------------------


class Snapshots:
    """Copies of the file and its journal as they are on disk after every k-th write HDF5 makes:
    what a kill at that moment would leave behind."""

    def __init__(self, path: Path, out: Path, every: int = 1) -> None:
        self.path, self.out, self.every = path, out, every
        self.count = 0
        self.taken: list[tuple[Path, Path | None]] = []
        self.original_write = JournaledFile.write

    def write(self, jf: JournaledFile, data: Any) -> int:
        n = self.original_write(jf, data)
        self.count += 1
        if self.count % self.every == 0 and jf.path == str(self.path):
            i = len(self.taken)
            file_copy = self.out / f"snap{i}.loom"
            shutil.copyfile(self.path, file_copy)
            journal = Path(journal_path(str(self.path)))
            journal_copy = None
            if journal.exists():
                journal_copy = Path(journal_path(str(file_copy)))
                shutil.copyfile(journal, journal_copy)
            self.taken.append((file_copy, journal_copy))
        return n


def add_columns_call(ds: loomfile.LoomConnection) -> None:
    rng = np.random.default_rng(5)
    m = rng.poisson(0.5, (ds.shape[0], 70)).astype(np.float32)
    ds.add_columns(
        {"": m, "spliced": (m * 2).astype(np.uint16)},
        {"CellID": np.array([f"n{j}" for j in range(70)]), "Size": rng.random(70)},
    )


CALLS = {
    "add_columns": add_columns_call,
    "column attribute": lambda ds: ds.ca.__setitem__("Cluster", np.arange(ds.shape[1]) % 7),
    "replace attribute": lambda ds: ds.ca.__setitem__(
        "CellID", np.array([f"x{j}" for j in range(ds.shape[1])])
    ),
    "layer block": lambda ds: ds.__setitem__((slice(10, 140), slice(5, 180)), 3.0),
    "new layer": lambda ds: ds.layers.__setitem__("extra", np.ones(ds.shape, dtype=np.float32)),
    "delete layer": lambda ds: ds.layers.__delitem__("spliced"),
    "graph": lambda ds: ds.col_graphs.__setitem__(
        "knn",
        __import__("scipy.sparse").sparse.coo_matrix(
            (np.ones(50), (np.arange(50), np.arange(50) + 1)), shape=(ds.shape[1],) * 2
        ),
    ),
    "permute": lambda ds: ds.permute(np.random.default_rng(1).permutation(ds.shape[1]), axis=1),
    "global attribute": lambda ds: ds.attrs.__setitem__("title", "a longer title " * 20),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_kill_after_any_write_recovers_the_original_bytes(tmp_path: Path, call: str) -> None:
    path = tmp_path / "f.loom"
    make_loom(path)
    before = digest(path)
    snaps_dir = tmp_path / "snaps"
    snaps_dir.mkdir()
    snaps = Snapshots(path, snaps_dir)
    with (
        mock.patch.object(JournaledFile, "write", lambda jf, data: snaps.write(jf, data)),
        loomfile.connect(path) as ds,
    ):
        CALLS[call](ds)
        after_call = len(snaps.taken)
    assert after_call > 0, "the call wrote nothing through the journal"
    # every moment inside the call: recovery gives back the original file exactly
    for file_copy, journal_copy in snaps.taken[:after_call]:
        assert journal_copy is not None, "bytes were written with no journal to undo them"
        assert recover(str(file_copy)) is True
        assert digest(file_copy) == before
        assert not os.path.exists(journal_path(str(file_copy)))
        with loomfile.connect(file_copy, "r") as ds:  # and it opens
            assert ds.shape == (300, 200)
    # the committed file has no journal and holds the change
    assert not os.path.exists(journal_path(str(path)))
    assert digest(path) != before


def test_recover_without_a_journal_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    make_loom(path)
    before = digest(path)
    assert recover(str(path)) is False
    assert digest(path) == before


def test_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    """A kill while the journal itself was being written: the record's bytes had not been
    overwritten yet, so dropping the torn record is right."""
    path = tmp_path / "f.bin"
    original = bytes(range(256)) * 64
    path.write_bytes(original)
    jf = JournaledFile(str(path))
    jf.seek(100)
    jf.write(b"\xff" * 50)
    jf.seek(5000)
    jf.write(b"\xee" * 300)
    jf.seek(len(original))
    jf.write(b"tail" * 10)  # past the original end: nothing to save
    journal = Path(jf.journal)
    content = journal.read_bytes()
    jf.close()
    # the second record torn in the middle, and its overwrite never happened
    torn = content[: len(content) - 100]
    journal.write_bytes(torn)
    data = bytearray(path.read_bytes())
    data[5000:5300] = original[5000:5300]
    path.write_bytes(bytes(data))
    assert recover(str(path)) is True
    assert path.read_bytes() == original


def test_a_foreign_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    make_loom(path)
    Path(journal_path(str(path))).write_bytes(b"something else entirely, 32 bytes+")
    with pytest.raises(LoomFormatError, match="not a loomfile journal"):
        loomfile.connect(path, "r")


# --- failures inside a call --------------------------------------------------------------------------


def contents(path: Path) -> dict[str, Any]:
    """Everything in the file that a reader sees, with timestamps left out."""
    out: dict[str, Any] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]
        out[name + "@"] = {k: v for k, v in obj.attrs.items() if k != "last_modified"}

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def assert_same_contents(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert a[k].keys() == b[k].keys(), k
            for name in a[k]:
                np.testing.assert_array_equal(a[k][name], b[k][name], err_msg=f"{k} {name}")
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def disk_full_at(n: int) -> Any:
    """A full disk from the n-th write on: writes that would grow a file (the Loom file or its
    journal) fail with ENOSPC."""
    real_pwrite, real_write = os.pwrite, os.write
    calls = {"n": 0}

    def full(fd: int, size: int, offset: int) -> bool:
        calls["n"] += 1
        return calls["n"] >= n and offset + size > os.fstat(fd).st_size

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if full(fd, len(data), offset):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    def write(fd: int, data: Any) -> int:
        if full(fd, len(data), os.lseek(fd, 0, os.SEEK_CUR)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    return mock.patch.multiple(os, pwrite=pwrite, write=write)


def ctrl_c_at(n: int) -> Any:
    """A real SIGINT sent to this process during HDF5's n-th write."""
    real = JournaledFile.write
    calls = {"n": 0}

    def write(jf: JournaledFile, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return real(jf, data)

    return mock.patch.object(JournaledFile, "write", write)


@pytest.mark.parametrize(
    ("inject", "failure"),
    [(disk_full_at, OSError), (ctrl_c_at, KeyboardInterrupt)],
    ids=["disk full", "ctrl-c"],
)
@pytest.mark.parametrize("at", [1, 6, 30])
def test_a_failure_half_way_leaves_the_file_as_it_was(
    tmp_path: Path, inject: Any, failure: type[BaseException], at: int
) -> None:
    path = tmp_path / "f.loom"
    m = make_loom(path)
    before = contents(path)
    with loomfile.connect(path) as ds:
        with inject(at), pytest.raises(failure):
            add_columns_call(ds)
        # the connection is still usable, and sees the old state
        assert ds.shape == (300, 200)
        np.testing.assert_array_equal(ds[:, :], m)
        assert list(ds.ca["CellID"][:2]) == ["c0", "c1"]
        ds.ca["After"] = np.arange(200)
    after = contents(path)
    assert_same_contents({k: v for k, v in after.items() if "After" not in k}, before)
    assert not os.path.exists(journal_path(str(path)))


def test_a_writer_holds_the_lock_and_its_journal_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    make_loom(path)
    ds = loomfile.connect(path)
    try:
        ds.ca["x"] = np.arange(200)
        # another writer is refused while this one is open
        with pytest.raises(LoomLockedError):
            JournaledFile(str(path))
        # a journal present while its writer is alive is not "recovered" by someone else
        jf = ds._store.journal
        assert jf is not None
        jf.seek(0)
        jf.write(jf.read(8))  # starts a journal: an uncommitted write in progress
        assert os.path.exists(journal_path(str(path)))
        with pytest.raises(LoomLockedError):
            recover(str(path))
        assert os.path.exists(journal_path(str(path)))
    finally:
        ds.close()
    assert not os.path.exists(journal_path(str(path)))
    with loomfile.connect(path, "r") as ds2:
        np.testing.assert_array_equal(ds2.ca["x"], np.arange(200))
