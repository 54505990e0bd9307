"""Durability against a power cut: the order in which writes and syncs reach the disk (issue 22).

- the ``durability=`` setting and its errors;
- a rollback inside the writing process is silent, a recovery of a dead process's write warns;
- overwrites held back until the journal is synced are seen by every read;
- strace of every write operation in a child process: the syscalls come in SQLite's order (see
  ``_journal``), and with ``durability="none"`` there is no sync at all;
- crash states replayed from those traces in the style of ALICE (OSDI 2014): see ``crash_states``.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import unittest.mock
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import durability_ops
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loomfile
from loomfile._errors import LoomValueError
from loomfile._store import journal as _journal
from loomfile._store.journal import JournaledFile, durability_of, journal_path
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


def test_a_file_system_that_cannot_sync_a_folder_still_takes_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.loom"
    counts_file(path, 10, 8, 0)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with loomfile.connect(path) as ds:
        ds.ca["More"] = np.arange(8)
    loomfile.create(tmp_path / "g.loom", np.ones((2, 3)), {}, {})
    monkeypatch.undo()
    with loomfile.connect(path, "r") as ds:
        np.testing.assert_array_equal(ds.ca["More"], np.arange(8))
    assert not os.path.exists(journal_path(str(path)))
    assert (tmp_path / "g.loom").exists()


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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), max_size=15), st.integers(0, 80), st.integers(0, 20))
def test_held_ranges_intersect_as_a_set_model(added: list[tuple[int, int]], lo: int, width: int) -> None:
    ranges = _journal._Saved()
    model: set[int] = set()
    for a, w in added:
        ranges.add(a, a + w)
        model |= set(range(a, a + w))
    assert ranges.intersects(lo, lo + width) == bool(model & set(range(lo, lo + width)))


_OPS = st.lists(
    st.tuples(st.sampled_from(["write", "read", "truncate"]), st.integers(0, 3000), st.integers(0, 700)),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, hold=st.integers(1, 2000), commit=st.booleans())
def test_held_overwrites_match_a_plain_file(ops: list[tuple[str, int, int]], hold: int, commit: bool) -> None:
    """Writes, reads and cuts through a JournaledFile holding overwrites back (with a small batch
    limit) read like a bytearray; committed, the file is that bytearray; left uncommitted (a dead
    process), recovery gives back the original bytes."""
    original = bytes(range(256)) * 8
    with tempfile.TemporaryDirectory(dir=_scratch_root()) as folder:
        path = os.path.join(folder, "f.bin")
        Path(path).write_bytes(original)
        model = bytearray(original)
        jf = JournaledFile(path)
        try:
            with unittest.mock.patch.object(_journal, "HOLD_BYTES", hold):
                for i, (kind, at, size) in enumerate(ops):
                    jf.seek(at)
                    if kind == "write":
                        data = bytes([i + 1]) * size
                        jf.write(data)
                        if size:  # (an empty write does not grow a file)
                            model.extend(bytes(max(0, at - len(model))))
                            model[at : at + size] = data
                    elif kind == "read":
                        assert jf.read(size) == bytes(model[at : at + size])
                    else:
                        jf.truncate(at)
                        del model[at:]
                        model.extend(bytes(at - len(model)))
                    assert jf.file_size() == len(model)
                assert jf.failure is None
                if commit:
                    jf.commit()
        finally:
            jf.close()
        if commit:
            assert Path(path).read_bytes() == bytes(model)
        else:
            _journal.recover(path)
            assert Path(path).read_bytes() == original


# --- tracing a write operation ----------------------------------------------------------------------------
#
# strace records the operation's file-system calls with their data (-xx: every string in hex, -s:
# whole buffers). Only calls on the folder the operation writes in matter; the parser follows file
# descriptors (openat / close / lseek) itself, and refuses calls it cannot model on that folder.

OPS_SCRIPT = Path(__file__).with_name("durability_ops.py")
TRACED = (
    "openat,open,creat,write,pwrite64,pwritev,writev,lseek,ftruncate,fsync,fdatasync,rename,renameat,"
    "renameat2,unlink,unlinkat,close,sendfile,copy_file_range,fallocate"
)
_PREFIX = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+)")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")


def strace_problem() -> str | None:
    """Why strace cannot trace a child here (not installed, or ptrace refused), or None."""
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace; .ci/run does)"
    done = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True, text=True)
    return None if done.returncode == 0 else f"strace cannot trace here: {done.stderr.strip()[-300:]}"


def _arguments(text: str) -> list[str]:
    """Split strace's argument list at the top-level commas (strings are hex: no commas inside)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def _hex(text: str) -> bytes:
    assert text.startswith('"') and text.endswith('"'), text[:80]
    return bytes.fromhex(text[1:-1].replace("\\x", ""))


@dataclass
class Call:
    """One completed system call: its name, arguments (strings decoded) and result."""

    name: str
    args: list[Any]
    result: int


def parse_trace(text: str) -> list[Call]:
    """The successful calls in strace's output, in the order they completed."""
    calls: list[Call] = []
    pending: dict[str, str] = {}
    for line in text.splitlines():
        match = _PREFIX.match(line)
        if match is None:
            continue
        pid, body = match.groups()
        if body.startswith(("---", "+++")):
            continue
        if body.endswith("<unfinished ...>"):
            pending[pid] = body[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = _RESUMED.match(body)
        if resumed is not None:
            body = pending.pop(pid) + resumed.group(2)
        call = _CALL.match(body)
        if call is None:
            continue
        name, args, result = call.group(1), _arguments(call.group(2)), int(call.group(3))
        if result < 0:
            continue
        calls.append(Call(name, [_hex(a) if a.startswith('"') else a for a in args], result))
    return calls


def run_traced(operation: str, folder: Path, durability: str) -> list[Call]:
    """Run ``operation`` (see durability_ops) on ``folder`` in a child process under strace."""
    log_file = folder.parent / f"{folder.name}.strace"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(loomfile.__file__).parents[1]), str(Path(__file__).parent)])}
    env.pop("LOOMFILE_DURABILITY", None)
    command = ["strace", "-f", "-qq", "-xx", "-s", "1000000000", "-e", f"trace={TRACED}", "-o", str(log_file),
               sys.executable, str(OPS_SCRIPT), operation, str(folder), durability]
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return parse_trace(log_file.read_text())


# --- what the calls do to the folder: steps ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One file-system change in the folder, in a form the crash model understands.

    ``kind``: "create" (``name`` now names the new file ``inode``), "rename" (``name`` -> ``to``),
    "unlink" (``name``), "write" (``data`` at ``offset`` of ``inode``), "truncate" (``inode`` cut or
    grown to ``offset`` bytes), "fsync" (of ``inode``), "dirsync" (of the folder).
    """

    kind: str
    inode: int = -1
    name: str = ""
    to: str = ""
    offset: int = 0
    data: bytes = b""


@dataclass
class _Handle:
    inode: int  # -1: the folder itself
    pos: int = 0


def steps_of(calls: list[Call], folder: Path, names: dict[str, int]) -> tuple[list[Step], dict[str, int]]:
    """The calls on ``folder`` as steps; ``names``: the files there before (name -> inode), updated.
    Returns the steps and the number of inodes known after them."""
    root = str(folder)
    names = dict(names)
    next_inode = max(names.values(), default=-1) + 1
    handles: dict[int, _Handle] = {}
    steps: list[Step] = []

    def local(path: bytes | str) -> str | None:
        """The name in the folder that ``path`` (absolute or relative to it) is, or None."""
        text = os.fsdecode(path) if isinstance(path, bytes) else path
        full = os.path.normpath(os.path.join(root, text))
        if full == root:
            return "."
        return os.path.basename(full) if os.path.dirname(full) == root else None

    def dir_path(dirfd: str, path: bytes) -> str | None:
        if dirfd != "AT_FDCWD" and not os.path.isabs(os.fsdecode(path)):
            msg = f"a call relative to directory descriptor {dirfd} is not modelled"
            raise AssertionError(msg)
        return local(path)

    for call in calls:
        a = call.args
        if call.name in ("openat", "open"):
            path, flags = (a[1], a[2]) if call.name == "openat" else (a[0], a[1])
            name = dir_path(a[0], path) if call.name == "openat" else local(path)
            if name is None:
                handles.pop(call.result, None)
                continue
            if name == ".":
                handles[call.result] = _Handle(-1)
                continue
            assert "O_APPEND" not in flags, f"O_APPEND on {name} is not modelled"
            if name not in names:
                assert "O_CREAT" in flags, f"{name} opened without O_CREAT but unknown"
                names[name] = next_inode
                next_inode += 1
                steps.append(Step("create", names[name], name))
            elif "O_TRUNC" in flags:
                steps.append(Step("truncate", names[name], offset=0))
            handles[call.result] = _Handle(names[name])
        elif call.name == "close":
            handles.pop(int(a[0]), None)
        elif call.name in ("rename", "renameat", "renameat2"):
            src, dst = (local(a[0]), local(a[1])) if call.name == "rename" else (dir_path(a[0], a[1]), dir_path(a[2], a[3]))
            if src is None and dst is None:
                continue
            assert src is not None and dst is not None, f"a rename into or out of the folder: {a}"
            names[dst] = names.pop(src)
            steps.append(Step("rename", names[dst], src, dst))
        elif call.name in ("unlink", "unlinkat"):
            name = local(a[0]) if call.name == "unlink" else dir_path(a[0], a[1])
            if name is not None:
                steps.append(Step("unlink", names.pop(name), name))
        else:
            fd = int(a[0]) if a and str(a[0]).isdigit() else -2
            handle = handles.get(fd)
            if handle is None:
                continue
            if call.name == "write":
                steps.append(Step("write", handle.inode, offset=handle.pos, data=a[1][: call.result]))
                handle.pos += call.result
            elif call.name == "pwrite64":
                steps.append(Step("write", handle.inode, offset=int(a[3]), data=a[1][: call.result]))
            elif call.name == "lseek":
                handle.pos = call.result
            elif call.name == "ftruncate":
                steps.append(Step("truncate", handle.inode, offset=int(a[1])))
            elif call.name in ("fsync", "fdatasync"):
                steps.append(Step("dirsync") if handle.inode == -1 else Step("fsync", handle.inode))
            else:
                msg = f"{call.name} on a file in the folder is not modelled"
                raise AssertionError(msg)
    return steps, names


def apply_data(content: bytes, ops: list[Step]) -> bytes:
    out = bytearray(content)
    for op in ops:
        if op.kind == "truncate":
            del out[op.offset :]
            out.extend(bytes(op.offset - len(out)))
        else:
            if op.offset > len(out):
                out.extend(bytes(op.offset - len(out)))
            out[op.offset : op.offset + len(op.data)] = op.data
    return bytes(out)


def apply_names(names: dict[str, int], ops: list[Step]) -> dict[str, int]:
    out = dict(names)
    for op in ops:
        if op.kind == "create":
            out[op.name] = op.inode
        elif op.kind == "rename":
            out[op.to] = out.pop(op.name)
        else:
            out.pop(op.name, None)
    return out


# --- crash states ------------------------------------------------------------------------------------------
#
# After every prefix of the steps, the disk holds what was synced plus some of what was not. The
# model is ext4's data=ordered mode, taken conservatively (ALICE's "abstract persistence model"):
# - a file's data steps (writes, truncations) are durable once the file is fsynced; until then any
#   of them may be lost: all kept, all lost, for each file alone kept or lost, every prefix of a
#   file's unsynced steps, each single unsynced write lost, and the last one torn (half written);
# - names (create, rename, unlink) are durable once the folder is fsynced (an fsync of a file does
#   not make its name durable); before that, ext4's journal persists them in order: every prefix of
#   the unsynced name changes, with the data kept or lost.


def _data_choices(unsynced: dict[int, list[Step]]) -> list[dict[int, list[Step]]]:
    busy = [inode for inode, ops in unsynced.items() if ops]
    choices: list[dict[int, list[Step]]] = [dict(unsynced), {}]
    for inode in busy:
        choices.append({inode: unsynced[inode]})
        choices.append({i: ops for i, ops in unsynced.items() if i != inode})
        ops = unsynced[inode]
        for cut in range(1, len(ops)):
            choices.append({**unsynced, inode: ops[:cut]})
        for j, op in enumerate(ops):
            if op.kind == "write" and len(ops) > 1:
                choices.append({**unsynced, inode: ops[:j] + ops[j + 1 :]})
        last = ops[-1]
        if last.kind == "write" and len(last.data) > 1:
            torn = Step("write", inode, offset=last.offset, data=last.data[: len(last.data) // 2])
            choices.append({**unsynced, inode: [*ops[:-1], torn]})
    return choices


def crash_states(
    initial: dict[int, bytes], names: dict[str, int], steps: list[Step]
) -> Iterator[tuple[int, dict[str, bytes]]]:
    """(number of steps done, the folder's files) for every crash state of every prefix (repeats
    included: the caller drops them)."""
    durable = dict(initial)
    durable_names = dict(names)
    unsynced: dict[int, list[Step]] = {}
    unsynced_names: list[Step] = []
    yield 0, {name: durable[inode] for name, inode in durable_names.items()}
    for done, step in enumerate(steps, 1):
        if step.kind in ("create", "rename", "unlink"):
            unsynced_names.append(step)
            if step.kind == "create":
                durable.setdefault(step.inode, b"")
        elif step.kind in ("write", "truncate"):
            unsynced.setdefault(step.inode, []).append(step)
        elif step.kind == "fsync":
            durable[step.inode] = apply_data(durable[step.inode], unsynced.pop(step.inode, []))
        else:
            durable_names = apply_names(durable_names, unsynced_names)
            unsynced_names = []
        choices = _data_choices(unsynced)
        variants = [(len(unsynced_names), choice) for choice in choices]
        variants += [(n, choice) for n in range(len(unsynced_names)) for choice in choices[:2]]
        for n_names, kept in variants:
            folder = apply_names(durable_names, unsynced_names[:n_names])
            yield done, {name: apply_data(durable[inode], kept.get(inode, [])) for name, inode in folder.items()}


def state_key(files: dict[str, bytes]) -> str:
    digest = hashlib.sha1()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha1(files[name]).digest())
    return digest.hexdigest()


def fingerprint(path: Path) -> str | None:
    """What a reader of the Loom file at ``path`` sees, as a digest (None: no file there). Opening it
    runs the recovery of an interrupted write."""
    if not path.exists():
        return None
    digest = hashlib.sha1()

    def add(label: str, value: Any) -> None:
        array = np.asarray(value)
        text = array.astype(str) if array.dtype.kind in "OUS" else array
        digest.update(f"{label}{array.shape}{text.dtype}".encode() + np.ascontiguousarray(text).tobytes())

    with loomfile.connect(path, "r") as ds:
        add("shape", ds.shape)
        for name in sorted(ds.layers.keys()):
            add(f"layer {name}", ds.layers[name][:, :])
        for label, attrs in (("row", ds.ra), ("col", ds.ca), ("global", ds.attrs)):
            for name in sorted(attrs.keys()):
                add(f"{label} {name}", attrs[name])
        for label, graphs in (("row graph", ds.row_graphs), ("col graph", ds.col_graphs)):
            for name in sorted(graphs.keys()):
                g = graphs[name]
                add(f"{label} {name}", np.stack([g.row, g.col]))
                add(f"{label} {name} w", g.data)
    return digest.hexdigest()


# --- the order of the steps --------------------------------------------------------------------------------

JOURNAL_SUFFIX = ".loomfile-journal"


def journal_ranges(content: bytes) -> tuple[int, list[tuple[int, int]]] | None:
    """(the original size, the ranges saved) in a journal's bytes; None before a whole header."""
    if len(content) < 28:
        return None
    magic, base, _ = struct.unpack_from("<16sQI", content)
    assert magic == b"LOOMFILE-JOURNAL"
    ranges, at = [], 28
    while at + 20 <= len(content):
        offset, length, crc = struct.unpack_from("<QQI", content, at)
        data = content[at + 20 : at + 20 + length]
        if len(data) < length or crc != zlib.crc32(data, zlib.crc32(struct.pack("<QQ", offset, length))):
            break
        ranges.append((offset, offset + length))
        at += 20 + length
    return base, ranges


def _covered(lo: int, hi: int, ranges: list[tuple[int, int]]) -> bool:
    for a, b in sorted(ranges):
        if a <= lo < b:
            lo = b
    return lo >= hi


def order_violations(steps: list[Step], names: dict[str, int], initial: dict[int, bytes]) -> list[str]:
    """Where the steps break the protocol of ``_journal`` (empty: none):

    - an overwrite of bytes a file held when its write call began, or a cut of them, comes after the
      journal record saving them was fdatasynced, and after the folder was synced once the journal
      was created;
    - a journal is deleted only once its file was fsynced after its last change;
    - a file is renamed over another only once it was fsynced after its last change;
    - every delete of a journal and every rename is followed by a sync of the folder.
    """
    problems: list[str] = []
    names = dict(names)
    content = dict(initial)
    synced_journal: dict[int, bytes] = {}  # the journal's content at its last sync
    created: dict[int, int] = {}  # journal inode -> the step that created it
    last_change: dict[int, int] = {}
    last_fsync: dict[int, int] = {}
    last_dirsync = -1
    awaiting_dirsync: list[str] = []
    for i, step in enumerate(steps):
        name_of = {inode: name for name, inode in names.items()}
        if step.kind in ("write", "truncate") and step.inode in initial:
            name = name_of.get(step.inode, "?")
            journal = names.get(f".{name}{JOURNAL_SUFFIX}")
            header = journal_ranges(content[journal]) if journal is not None else None
            saved = journal_ranges(synced_journal.get(journal, b"")) if journal is not None else None
            lo = step.offset
            hi = step.offset + len(step.data) if step.kind == "write" else len(content[step.inode])
            if journal is None or header is None:
                problems.append(f"step {i}: {step.kind} of {name} at {lo} with no journal")
            elif lo < min(hi, header[0]):  # original bytes: not an append past the original end
                hi = min(hi, header[0])
                if saved is None:
                    problems.append(f"step {i}: {step.kind} of {name} at {lo} before a durable journal header")
                elif not _covered(lo, hi, saved[1]):
                    problems.append(f"step {i}: {step.kind} of {name} [{lo}, {hi}) before its journal record was synced")
                if last_dirsync < created.get(journal, -1):
                    problems.append(f"step {i}: {step.kind} of {name} before the journal's name was synced")
        if step.kind in ("write", "truncate"):
            content[step.inode] = apply_data(content.get(step.inode, b""), [step])
            last_change[step.inode] = i
        elif step.kind == "create":
            content[step.inode] = b""
            names[step.name] = step.inode
            if step.name.endswith(JOURNAL_SUFFIX):
                created[step.inode] = i
        elif step.kind == "fsync":
            last_fsync[step.inode] = i
            if step.inode in created:
                synced_journal[step.inode] = content[step.inode]
        elif step.kind == "dirsync":
            last_dirsync = i
            awaiting_dirsync = []
        elif step.kind == "unlink":
            del names[step.name]
            if step.name.endswith(JOURNAL_SUFFIX):
                target = names.get(step.name[1 : -len(JOURNAL_SUFFIX)])
                if target is not None and last_fsync.get(target, -1) < last_change.get(target, -1):
                    problems.append(f"step {i}: {step.name} deleted before its file was fsynced")
                awaiting_dirsync.append(f"step {i}: delete of {step.name}")
        elif step.kind == "rename":
            if last_fsync.get(step.inode, -1) < last_change.get(step.inode, -1):
                problems.append(f"step {i}: {step.name} renamed to {step.to} before it was fsynced")
            names[step.to] = names.pop(step.name)
            awaiting_dirsync.append(f"step {i}: rename of {step.name} to {step.to}")
    problems += [f"{what} never followed by a sync of the folder" for what in awaiting_dirsync]
    return problems


# --- replaying crash states -------------------------------------------------------------------------------


@dataclass
class Replay:
    """What a replay found: distinct crash states, how many were opened, and the bad ones."""

    states: int
    checked: int
    bad: list[str]


def _scratch_root() -> str | None:
    """Where crash states are written: memory when there is a tmpfs (recovery fsyncs: cheap there)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def replay(t: Traced, cap: int) -> Replay:
    """Open the target file of every crash state (at most ``cap`` of them, evenly spread over the
    trace, deterministically): it must read as before the operation or as after it."""
    old, new = fingerprint(t.before / t.target), fingerprint(t.after / t.target)
    assert old != new, f"{t.operation} changed nothing that a reader sees"
    order: list[str] = []
    seen: set[str] = set()
    for _, files in crash_states(t.initial, t.names, t.steps):
        key = state_key(files)
        if key not in seen:
            seen.add(key)
            order.append(key)
    stride = max(1.0, len(order) / cap)
    chosen = {order[int(i * stride)] for i in range(min(cap, len(order)))}
    bad: list[str] = []
    checked: set[str] = set()
    with tempfile.TemporaryDirectory(dir=_scratch_root()) as scratch:
        folder = Path(scratch)
        for done, files in crash_states(t.initial, t.names, t.steps):
            key = state_key(files)
            if key not in chosen or key in checked:
                continue
            checked.add(key)
            for leftover in folder.iterdir():
                leftover.unlink()
            for name, data in files.items():
                (folder / name).write_bytes(data)
            try:
                found = fingerprint(folder / t.target)
            except Exception as e:  # any error is a bad state
                bad.append(f"after step {done} of {len(t.steps)}: {type(e).__name__}: {e}")
                continue
            if found not in (old, new):
                what = "no file" if found is None else "a third state"
                bad.append(f"after step {done} of {len(t.steps)}: {t.target} holds {what}, not the old or new data")
    return Replay(len(order), len(checked), bad)


# --- the tests ---------------------------------------------------------------------------------------------

OPERATIONS = list(durability_ops.OPERATIONS)
_STRACE_PROBLEM = strace_problem()
needs_strace = pytest.mark.skipif(_STRACE_PROBLEM is not None, reason=_STRACE_PROBLEM or "")


@dataclass
class Traced:
    """One operation run under strace: the folder before (a copy) and after, and its steps."""

    operation: str
    before: Path
    after: Path
    steps: list[Step]
    initial: dict[int, bytes]
    names: dict[str, int]

    @property
    def target(self) -> str:
        return durability_ops.TARGETS.get(self.operation, "f.loom")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("durability_template")
    durability_ops.setup(str(folder))
    return folder


@pytest.fixture(scope="module")
def traced(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Traced]:
    """``traced(operation, durability)``: the operation traced once per module."""
    cache: dict[tuple[str, str], Traced] = {}

    def get(operation: str, durability: str) -> Traced:
        if (operation, durability) not in cache:
            work = tmp_path_factory.mktemp(f"traced_{operation.replace(' ', '_')}_{durability}")
            before, after = work / "before", work / "after"
            shutil.copytree(template, before)
            shutil.copytree(template, after)
            names = {name: inode for inode, name in enumerate(sorted(os.listdir(before)))}
            initial = {inode: (before / name).read_bytes() for name, inode in names.items()}
            calls = run_traced(operation, after, durability)
            steps, _ = steps_of(calls, after, names)
            cache[operation, durability] = Traced(operation, before, after, steps, initial, names)
        return cache[operation, durability]

    return get


@needs_strace
@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_write_operation_syncs_in_sqlites_order(traced: Callable[[str, str], Traced], operation: str) -> None:
    t = traced(operation, "full")
    kinds = {step.kind for step in t.steps}
    assert {"write", "fsync", "dirsync"} <= kinds, f"the trace of {operation} is missing calls: {kinds}"
    assert order_violations(t.steps, t.names, t.initial) == []


@needs_strace
@pytest.mark.parametrize("operation", OPERATIONS)
def test_durability_none_never_syncs(traced: Callable[[str, str], Traced], operation: str) -> None:
    t = traced(operation, "none")
    assert any(step.kind == "write" for step in t.steps)
    assert [step for step in t.steps if step.kind in ("fsync", "dirsync")] == []


def test_the_order_check_finds_a_missing_sync() -> None:
    """order_violations on steps made by hand: it is not blind."""
    names, initial = {"f.loom": 0}, {0: bytes(100)}
    header = struct.pack("<16sQ", b"LOOMFILE-JOURNAL", 100)
    header += struct.pack("<I", zlib.crc32(header))
    body = struct.pack("<QQ", 10, 5)
    record = body + struct.pack("<I", zlib.crc32(bytes(5), zlib.crc32(body))) + bytes(5)
    journal = ".f.loom" + JOURNAL_SUFFIX
    good = [
        Step("create", 1, journal), Step("write", 1, data=header + record), Step("fsync", 1), Step("dirsync"),
        Step("write", 0, offset=10, data=b"abcde"), Step("fsync", 0), Step("unlink", 1, journal), Step("dirsync"),
    ]
    assert order_violations(good, names, initial) == []
    for dropped, expected in ((2, "before a durable journal header"), (3, "journal's name was synced"),
                              (5, "deleted before its file was fsynced"), (7, "never followed by a sync")):
        problems = order_violations(good[:dropped] + good[dropped + 1 :], names, initial)
        assert any(expected in p for p in problems), (dropped, problems)
    wide = [*good[:4], Step("write", 0, offset=10, data=b"abcdefg"), *good[5:]]  # past the record
    assert any("before its journal record was synced" in p for p in order_violations(wide, names, initial))


@needs_strace
@pytest.mark.parametrize("operation", ["create over", "add_columns", "attribute"])
def test_the_order_check_fails_without_the_syncs(traced: Callable[[str, str], Traced], operation: str) -> None:
    """The traces of durability="none" (no sync at all) break the order: the check sees it."""
    t = traced(operation, "none")
    assert order_violations(t.steps, t.names, t.initial) != []


REPLAY_CAP = 150  # crash states opened per operation (evenly spread over the trace when there are more)


@needs_strace
@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_crash_state_opens_to_the_old_or_the_new_data(
    traced: Callable[[str, str], Traced], operation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    t = traced(operation, "full")
    result = replay(t, REPLAY_CAP)
    with capsys.disabled():
        print(f"\n{operation}: {len(t.steps)} steps, {result.states} crash states, {result.checked} opened")
    assert result.checked >= min(result.states, REPLAY_CAP)
    assert result.bad == []


@needs_strace
@pytest.mark.parametrize("operation", ["create over", "add_columns"])
def test_the_replay_finds_bad_states_without_the_syncs(traced: Callable[[str, str], Traced], operation: str) -> None:
    """With durability="none" a power cut can leave a third state: the replay is not blind."""
    result = replay(traced(operation, "none"), REPLAY_CAP)
    assert result.bad != []
