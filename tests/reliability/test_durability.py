"""Durability against a power cut: the order in which writes and syncs reach the disk (issue 22).

- the ``durability=`` setting and its errors;
- a rollback inside the writing process is silent, a recovery of a dead process's write warns;
- overwrites held back until the journal is synced are seen by every read;
- strace of every write operation in a child process: the syscalls come in SQLite's order (see
  ``_journal``), and with ``durability="none"`` there is no sync at all;
- crash states replayed from those traces in the style of ALICE (OSDI 2014): see ``crash_states``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

import loomfile
from loomfile import _journal
from loomfile._errors import LoomValueError
from loomfile._journal import JournaledFile, durability_of, journal_path
from looms import counts_file

# --- the setting ---------------------------------------------------------------------------------------


def test_durability_defaults_to_full_and_the_argument_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOOMFILE_DURABILITY", raising=False)
    assert durability_of(None) == "full"
    monkeypatch.setenv("LOOMFILE_DURABILITY", "none")
    assert durability_of(None) == "none"
    assert durability_of("full") == "full"


@pytest.mark.parametrize("call", ["connect", "create", "new"])
def test_a_bad_durability_names_the_value_and_the_levels(tmp_path: Path, call: str) -> None:
    path = tmp_path / "f.loom"
    counts_file(path, 5, 4, 0)
    calls = {
        "connect": lambda: loomfile.connect(path, durability="fast"),  # type: ignore[arg-type]
        "create": lambda: loomfile.create(
            tmp_path / "g.loom", np.ones((2, 2)), {}, {}, durability="fast"  # type: ignore[arg-type]
        ),
        "new": lambda: loomfile.new(tmp_path / "g.loom", durability="fast"),  # type: ignore[arg-type]
    }
    with pytest.raises(LoomValueError, match=r"durability='fast' is not a durability level; use one of 'full', 'none'"):
        calls[call]()
    assert not (tmp_path / "g.loom").exists()


def test_a_bad_environment_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.loom"
    counts_file(path, 5, 4, 0)
    monkeypatch.setenv("LOOMFILE_DURABILITY", "FULL")
    with pytest.raises(LoomValueError, match=r"LOOMFILE_DURABILITY='FULL' is not a durability level"):
        loomfile.connect(path)
    with loomfile.connect(path, durability="none") as ds:  # the argument wins
        assert ds.shape == (5, 4)


# --- warnings: only for a write a dead process left ------------------------------------------------------


def test_a_rollback_in_the_same_process_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "f.loom"
    counts_file(path, 30, 20, 0)
    caplog.set_level(logging.DEBUG, logger="loomfile")
    with loomfile.connect(path) as ds:
        ds.ca["Ok"] = np.arange(20)
        with pytest.raises(LoomValueError):
            ds.ca["Bad"] = np.arange(3)  # wrong length: raised inside the transaction
        with pytest.raises(LoomValueError), ds._store.transaction():
            ds.ca["Half"] = np.arange(20)  # written, then rolled back
            raise LoomValueError("a failure after a write")
        assert "Half" not in ds.ca
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


def test_recovering_a_dead_writers_journal_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "f.loom"
    counts_file(path, 30, 20, 0)
    before = path.read_bytes()
    jf = JournaledFile(str(path))
    jf.seek(0)
    jf.write(b"\xff" * 64)  # an overwrite of the superblock, never committed
    jf.truncate(100)  # a cut: the held overwrite reaches the file after the journal is synced
    jf.close()  # the process "dies": the journal stays
    assert path.read_bytes()[:64] == b"\xff" * 64
    caplog.set_level(logging.WARNING, logger="loomfile")
    with loomfile.connect(path, "r") as ds:
        assert ds.shape == (30, 20)
    assert path.read_bytes() == before
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: undid an interrupted write ({64 + len(before) - 100} bytes restored)"  # [0, 64), [100, end)
    ]


# --- held-back overwrites -------------------------------------------------------------------------------


def test_held_overwrites_wait_for_the_commit_and_reads_see_them(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    original = bytes(range(256)) * 64
    path.write_bytes(original)
    jf = JournaledFile(str(path))
    try:
        jf.seek(1000)
        jf.write(b"\xaa" * 100)
        jf.seek(len(original))
        jf.write(b"tail")  # past the original end: written at once
        on_disk = path.read_bytes()
        assert on_disk[1000:1100] == original[1000:1100]  # held back
        assert on_disk[len(original) :] == b"tail"
        jf.seek(990)
        assert jf.read(20) == original[990:1000] + b"\xaa" * 10  # the read sees it...
        assert path.read_bytes()[1000:1100] == b"\xaa" * 100  # ...by applying the batch first
        jf.seek(2000)
        jf.write(b"\xbb" * 10)
        into = bytearray(4)
        assert jf.read_into(memoryview(into), 2008) == 4  # the engine's reads too
        assert bytes(into) == b"\xbb\xbb" + original[2010:2012]
        jf.seek(3000)
        jf.write(b"\xcc" * 10)
        jf.commit()
        assert path.read_bytes()[3000:3010] == b"\xcc" * 10
        assert not os.path.exists(journal_path(str(path)))
    finally:
        jf.close()


def test_a_batch_is_applied_when_the_held_bytes_reach_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_journal, "HOLD_BYTES", 1000)
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(10000))
    jf = JournaledFile(str(path))
    try:
        for i in range(5):
            jf.seek(i * 300)
            jf.write(b"\x01" * 300)
        on_disk = path.read_bytes()
        assert on_disk[:1200] == b"\x01" * 1200  # the first four made a batch of 1200 bytes
        assert on_disk[1200:1500] == bytes(300)  # the fifth waits
    finally:
        jf.close()


def test_durability_none_writes_through(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(1000))
    jf = JournaledFile(str(path), "none")
    try:
        jf.seek(10)
        jf.write(b"\x02" * 5)
        assert path.read_bytes()[10:15] == b"\x02" * 5
        assert os.path.exists(journal_path(str(path)))  # still journaled, against a kill
    finally:
        jf.close()
