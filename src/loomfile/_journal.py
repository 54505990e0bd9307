"""A rollback journal: each write call on an existing Loom file happens completely or not at all.

HDF5 updates a file in place and keeps changed metadata in memory until it flushes, so a process
killed in the middle of a write can leave a file whose metadata is half old, half new: unreadable,
with everything in it lost (loompy's documentation: "if something happens during a write, the
entire file can be lost"). loomfile opens existing files for writing through h5py's file-object
driver with a :class:`JournaledFile`, which sees every byte HDF5 writes:

- before HDF5 first overwrites bytes that were in the file when the current write call began, the
  original bytes are appended to a journal beside the file (``.<name>.loomfile-journal``); bytes
  past the original end need no copy, so appending data costs nothing extra;
- when the call completes, HDF5 flushes, the file is fsynced and the journal deleted: the commit;
- if the process dies first, the journal is still there, and the next :func:`recover` (run by
  every ``connect``) copies the saved bytes back and cuts the file to its original length, leaving it
  exactly as it was before the interrupted call.

The journal is only ever appended to, and each record carries a checksum: a record cut short by
a kill is ignored, which is right because the bytes it was saving had not been overwritten yet.
The journal guards against the process dying (kill, crash, out-of-memory killer, Ctrl-C). It does
not fsync before each overwrite, so after a power cut mid-write the file may need the journal and
the journal may be incomplete.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import logging
import os
import signal
import struct
import threading
import weakref
import zlib
from collections.abc import Iterator
from typing import Any

from ._errors import LoomFormatError, LoomLockedError

log = logging.getLogger(__name__)

MAGIC = b"LOOMFILE-JOURNAL"
_HEADER = struct.Struct("<16sQI")  # magic, original size, crc32 of the first two
_RECORD = struct.Struct("<QQI")  # offset, length, crc32 of (offset, length, bytes)


READ_AHEAD = 1 << 20  # bytes saved at once when overwrites follow each other through the file
SEQUENTIAL_GAP = 1 << 16  # how far past the last record an overwrite still counts as "following"


def locking_disabled() -> bool:
    """True when ``HDF5_USE_FILE_LOCKING=FALSE`` (or 0): neither HDF5 nor loomfile takes file locks."""
    return os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() in ("FALSE", "0")


def lock(fd: int, path: str) -> None:
    """Take the exclusive lock a writer holds (the same ``flock`` HDF5 takes, so HDF5 readers and
    writers elsewhere see it). Skipped with ``HDF5_USE_FILE_LOCKING=FALSE``, as HDF5 does, and on
    file systems without locks."""
    if locking_disabled():
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        msg = f"Cannot write to '{path}': another process has it open (it holds the HDF5 file lock)"
        raise LoomLockedError(msg) from None
    except OSError as e:
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        log.warning("%s: this file system does not support locking; writing without a lock", path)


def journal_path(path: str) -> str:
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(head, f".{tail}.loomfile-journal")


class _Saved:
    """Disjoint, sorted ranges [lo, hi) of the original file already copied into the journal."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.stops: list[int] = []

    def missing(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The parts of [lo, hi) not saved yet."""
        gaps = []
        i = bisect.bisect_right(self.stops, lo)
        at = lo
        while at < hi and i < len(self.starts) and self.starts[i] < hi:
            if self.starts[i] > at:
                gaps.append((at, self.starts[i]))
            at = max(at, self.stops[i])
            i += 1
        if at < hi:
            gaps.append((at, hi))
        return gaps

    def add(self, lo: int, hi: int) -> None:
        i = bisect.bisect_left(self.stops, lo)
        j = bisect.bisect_right(self.starts, hi)
        if i < j:
            lo, hi = min(lo, self.starts[i]), max(hi, self.stops[j - 1])
        self.starts[i:j] = [lo]
        self.stops[i:j] = [hi]


class JournaledFile:
    """The file object h5py's ``fileobj`` driver reads and writes through (see the module docs)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.journal = journal_path(path)
        self.fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        self._closer = weakref.finalize(self, os.close, self.fd)  # a dropped connection lets go
        try:
            lock(self.fd, path)
        except BaseException:
            self._closer()
            raise
        self.pos = 0
        self._journal_fd: int | None = None
        self._base = 0  # the file's size when the current write began
        self._saved = _Saved()
        self._last_end = -(1 << 62)
        self.failure: BaseException | None = None  # the first failed write (see write())
        self.interrupted = False  # set by a Ctrl-C deferred during a transaction

    # --- what h5py calls ---------------------------------------------------------------------------
    # HDF5 cannot survive a failed write half way through a flush (h5py turns an exception here into
    # an HDF5 error, and HDF5's caches are left inconsistent: later calls crash). So write() and
    # truncate() never raise: the first failure is kept in ``failure``, every later write is dropped
    # (which keeps the journal complete: nothing unsaved is ever overwritten), and the transaction
    # that sees it rolls the file back and raises it.

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = offset
        elif whence == 1:
            self.pos += offset
        else:
            self.pos = os.fstat(self.fd).st_size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = os.preadv(self.fd, [view], self.pos)
        if n < len(view):  # past the end of the file HDF5 expects zeros, as its own driver gives
            view[n:] = bytes(len(view) - n)
        self.pos += len(view)
        return len(view)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = max(0, os.fstat(self.fd).st_size - self.pos)
        data = os.pread(self.fd, size, self.pos)
        self.pos += len(data)
        return data

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        try:
            if self.interrupted and self.failure is None:
                self.failure = KeyboardInterrupt()
            if self.failure is None:
                self._protect(self.pos, self.pos + len(view))
                done = 0
                while done < len(view):
                    done += os.pwrite(self.fd, view[done:], self.pos + done)
        except BaseException as e:
            self.failure = e
        self.pos += len(view)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        try:
            if self.failure is None:
                self._protect(size, os.fstat(self.fd).st_size)
                os.ftruncate(self.fd, size)
        except BaseException as e:
            self.failure = e
        return size

    def flush(self) -> None:
        """Nothing is buffered here: every write has reached the operating system already."""

    # --- transactions ------------------------------------------------------------------------------

    @property
    def in_write(self) -> bool:
        """Whether something has been written since the last commit."""
        return self._journal_fd is not None

    def _begin(self) -> None:
        self._base = os.fstat(self.fd).st_size
        self._saved = _Saved()
        self._last_end = -(1 << 62)  # where the last record ended (see _protect)
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        head = MAGIC + struct.pack("<Q", self._base)
        _write_all(fd, _HEADER.pack(MAGIC, self._base, zlib.crc32(head)))
        self._journal_fd = fd

    def _protect(self, lo: int, hi: int) -> None:
        """Copy the original bytes in [lo, hi) into the journal, unless already there."""
        if self._journal_fd is None:
            self._begin()
        assert self._journal_fd is not None
        hi = min(hi, self._base)
        if lo >= hi:
            return
        for a, b in self._saved.missing(lo, hi):
            if 0 <= a - self._last_end <= SEQUENTIAL_GAP:
                # Overwrites marching through the file (a layer rewritten in place): save ahead, up
                # to the next bytes already saved (those may hold new data by now), so that the
                # next overwrites find their original bytes saved already.
                b = max(b, self._saved.missing(a, min(self._base, a + READ_AHEAD))[0][1])
            original = os.pread(self.fd, b - a, a)
            crc = zlib.crc32(original, zlib.crc32(struct.pack("<QQ", a, b - a)))
            _write_all(self._journal_fd, _RECORD.pack(a, b - a, crc) + original)
            self._saved.add(a, b)
            self._last_end = b

    def commit(self) -> None:
        """Make everything written so far permanent (call after HDF5 has flushed)."""
        if self._journal_fd is None:
            return
        os.fsync(self.fd)
        os.close(self._journal_fd)
        self._journal_fd = None
        os.remove(self.journal)

    def rollback(self) -> None:
        """Put back the file as it was at the last commit (HDF5 must have closed it)."""
        self.failure = None
        self.interrupted = False
        if self._journal_fd is None:
            return
        os.close(self._journal_fd)
        self._journal_fd = None
        recover(self.path, self.fd)

    def discard_writes(self) -> None:
        """Drop every write from now until the rollback (what HDF5 writes while closing a file
        about to be rolled back need not be journaled)."""
        if self.failure is None:
            self.failure = _Discarded()

    def close(self) -> None:
        if self._journal_fd is not None:  # uncommitted: the journal stays for recover()
            os.close(self._journal_fd)
            self._journal_fd = None
        self._closer()


class _Discarded(Exception):
    """The failure a rollback sets on purpose (see discard_writes)."""


@contextlib.contextmanager
def interrupts_deferred(journal: JournaledFile) -> Iterator[None]:
    """Ctrl-C inside the block does not raise at once, which could happen inside a write callback
    (see JournaledFile): it marks the journal instead, so later writes are dropped, and it is
    raised when the block ends, after the rollback. Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def mark(signum: int, frame: Any) -> None:
        journal.interrupted = True

    signal.signal(signal.SIGINT, mark)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def recover(path: str, fd: int | None = None) -> bool:
    """Undo an interrupted write to ``path`` if its journal is there; True if something was undone.

    ``fd``: the file, already open for writing and locked (a rollback); otherwise it is opened and
    locked here, so the journal of a writer that is still running is left alone (LoomLockedError).
    Raises a LoomFormatError naming the journal if it cannot be applied (no write permission).
    """
    journal = journal_path(path)
    if not os.path.exists(journal):
        return False
    if fd is not None:
        return _apply(path, journal, fd)
    try:
        own = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        msg = (
            f"'{path}' has an interrupted write to undo (journal '{journal}'), but this process "
            "may not write to it: open it once with write permission"
        )
        raise LoomFormatError(msg) from None
    try:
        lock(own, path)
        return _apply(path, journal, own)
    finally:
        os.close(own)


def _apply(path: str, journal: str, fd: int) -> bool:
    try:
        with open(journal, "rb") as f:
            content = f.read()
    except FileNotFoundError:  # another process recovered it first
        return False
    if len(content) < _HEADER.size:
        os.remove(journal)  # cut short while being created: nothing was overwritten yet
        return False
    magic, base, crc = _HEADER.unpack_from(content)
    if magic != MAGIC or crc != zlib.crc32(MAGIC + struct.pack("<Q", base)):
        msg = f"'{journal}' is not a loomfile journal; move it away to open '{path}'"
        raise LoomFormatError(msg)
    restored = 0
    at = _HEADER.size
    while at + _RECORD.size <= len(content):
        offset, length, crc = _RECORD.unpack_from(content, at)
        data = content[at + _RECORD.size : at + _RECORD.size + length]
        if len(data) < length or crc != zlib.crc32(data, zlib.crc32(struct.pack("<QQ", offset, length))):
            break  # cut short by the kill: its bytes were never overwritten
        done = 0
        while done < length:
            done += os.pwrite(fd, data[done:], offset + done)
        restored += length
        at += _RECORD.size + length
    os.ftruncate(fd, base)
    os.fsync(fd)
    os.remove(journal)
    log.warning("%s: undid an interrupted write (%d bytes restored)", path, restored)
    return True
