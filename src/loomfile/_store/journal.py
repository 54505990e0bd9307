"""A rollback journal: each write call on an existing Loom file happens completely or not at all.

HDF5 updates a file in place and keeps changed metadata in memory until it flushes, so a process
killed in the middle of a write can leave a file whose metadata is half old, half new: unreadable,
with everything in it lost (loompy's documentation: "if something happens during a write, the
entire file can be lost"). loomfile opens existing files for writing through h5py's file-object
driver with a :class:`JournaledFile`, which sees every byte HDF5 writes (chunks the engine hands
to HDF5 directly, ``_engine.stored``, included: HDF5 writes them through the same file object):

- before HDF5 first overwrites bytes that were in the file when the current write call began, the
  original bytes are appended to a journal beside the file (``.<name>.loomfile-journal``); bytes
  past the original end need no copy, so appending data costs nothing extra;
- when the call completes, HDF5 flushes, the file is fsynced and the journal deleted: the commit;
- if the process dies first, the journal is still there, and the next :func:`recover` (run by
  every ``connect``) copies the saved bytes back and cuts the file to its original length, leaving it
  exactly as it was before the interrupted call.

The journal is only ever appended to, and each record carries a checksum: a record cut short by
a kill or a power cut is ignored, which is right because the bytes it was saving had not been
overwritten yet.

Against a power cut (or a kernel panic, or a node lost with its page cache), writes must also reach
the disk in the right order. With ``durability="full"`` (the default) the order is SQLite's (its
"Atomic Commit In SQLite", section 3):

1. the journal's header and records are fdatasynced before any original byte they save is
   overwritten, and the folder is fsynced once after the journal is created (a new name is only
   durable once its folder is: without it a power cut could lose the whole journal while the file
   it protects is half overwritten);
2. at the commit the file is fsynced before the journal is deleted, and the folder is fsynced after
   the delete (otherwise the deleted journal could come back after a power cut and undo a call
   that had returned);
3. a new file built under a temporary name is fsynced before it is renamed over its target, and the
   folder after the rename (:func:`replace`).

Syncing the journal before every overwrite would cost one fsync per few KiB that HDF5 overwrites.
Instead overwrites of original bytes are *held back* in memory (group commit): their journal records
are appended at once, the new bytes wait, and a batch is applied after one fdatasync of the journal,
when the commit comes, when the held bytes reach ``HOLD_BYTES`` (memory stays bounded), or when a
read or a truncation touches them (reads always see what was written). Bytes past the original end
need no journal and go to the file at once. A write call thus costs three or four syncs, whatever
its size. ``durability="none"`` (for scratch files) writes through at once and never syncs: the
journal still protects against a killed process, not against a power cut.
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
from typing import Any, Literal

from .._errors import LoomFormatError, LoomLockedError, LoomValueError

log = logging.getLogger(__name__)

MAGIC = b"LOOMFILE-JOURNAL"
_HEADER = struct.Struct("<16sQI")  # magic, original size, crc32 of the first two
_RECORD = struct.Struct("<QQI")  # offset, length, crc32 of (offset, length, bytes)


READ_AHEAD = 1 << 20  # bytes saved at once when overwrites follow each other through the file
SEQUENTIAL_GAP = 1 << 16  # how far past the last record an overwrite still counts as "following"
HOLD_BYTES = 64 << 20  # overwrites held back before a batch is applied (see the module docs)

Durability = Literal["full", "none"]
DURABILITY_LEVELS: tuple[Durability, ...] = ("full", "none")
DURABILITY_VARIABLE = "LOOMFILE_DURABILITY"


def durability_of(value: str | None) -> Durability:
    """The durability asked for: ``value`` if given, else ``$LOOMFILE_DURABILITY``, else "full"."""
    source = "durability"
    if value is None:
        value = os.environ.get(DURABILITY_VARIABLE, "") or "full"
        source = DURABILITY_VARIABLE
    if value not in DURABILITY_LEVELS:
        msg = f"{source}={value!r} is not a durability level; use one of " + ", ".join(
            repr(level) for level in DURABILITY_LEVELS
        )
        raise LoomValueError(msg)
    return value


# What file systems that cannot sync a folder (some FUSE and network ones) answer; as SQLite does,
# such a folder is left unsynced rather than every write refused.
_NO_FOLDER_SYNC = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EBADF, errno.EACCES, errno.EPERM)


def sync_folder(path: str) -> None:
    """Make the names in the folder holding ``path`` durable (created, renamed, deleted files)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno not in _NO_FOLDER_SYNC:
            raise
        log.debug("%s: the file system cannot sync this folder (%s); names may not be durable", folder, e)


def sync_file(path: str) -> None:
    """fsync the file at ``path`` (written by another handle: HDF5's driver, a text writer)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(tmp: str, target: str, durability: Durability) -> None:
    """Rename the complete file ``tmp`` over ``target``, so that after a power cut ``target`` is the
    old file or the new one, never a part: ``tmp`` is fsynced before the rename, the folder after."""
    if durability == "full":
        sync_file(tmp)
    os.replace(tmp, target)
    if durability == "full":
        sync_folder(target)


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

    def intersects(self, lo: int, hi: int) -> bool:
        """Whether some of [lo, hi) is saved."""
        if lo >= hi:
            return False
        i = bisect.bisect_right(self.stops, lo)
        return i < len(self.starts) and self.starts[i] < hi

    def add(self, lo: int, hi: int) -> None:
        i = bisect.bisect_left(self.stops, lo)
        j = bisect.bisect_right(self.starts, hi)
        if i < j:
            lo, hi = min(lo, self.starts[i]), max(hi, self.stops[j - 1])
        self.starts[i:j] = [lo]
        self.stops[i:j] = [hi]


class JournaledFile:
    """The file object h5py's ``fileobj`` driver reads and writes through (see the module docs).

    It is also the engine's reader of the file's bytes (``read_into``, from any thread), so that the
    engine sees the overwrites held back in memory.
    """

    def __init__(self, path: str, durability: Durability = "full") -> None:
        self.path = path
        self.journal = journal_path(path)
        self.durability = durability
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
        self._journal_synced = True  # every record appended so far is durable
        self._folder_synced = True  # the journal's name is durable
        # Overwrites of original bytes waiting for the journal to be synced (durability "full"):
        # (offset, bytes) in the order HDF5 wrote them, the ranges they cover, and their size.
        self._held: list[tuple[int, bytes]] = []
        self._held_ranges = _Saved()
        self._held_bytes = 0
        self._held_end = 0
        self._lock = threading.RLock()  # the held writes, against the engine's reading threads
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
            self.pos = self.file_size() + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self.read_into(view, self.pos)
        if n < len(view):  # past the end of the file HDF5 expects zeros, as its own driver gives
            view[n:] = bytes(len(view) - n)
        self.pos += len(view)
        return len(view)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = max(0, self.file_size() - self.pos)
        data = bytearray(size)
        n = self.read_into(memoryview(data), self.pos)
        self.pos += n
        return bytes(data[:n])

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        try:
            if self.interrupted and self.failure is None:
                self.failure = KeyboardInterrupt()
            if self.failure is None:
                self._protect(self.pos, self.pos + len(view))
                self._write_at(view, self.pos)
        except BaseException as e:
            self.failure = e
        self.pos += len(view)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        try:
            if self.failure is None and size != self.file_size():  # (HDF5 often cuts to the size)
                self._protect(size, self.file_size())
                if size < self._base:  # original bytes go: their records must be durable first
                    self._apply_held()
                    self._sync_journal()
                os.ftruncate(self.fd, size)
        except BaseException as e:
            self.failure = e
        return size

    def flush(self) -> None:
        """Nothing to do: held overwrites wait for the commit (see the module docs)."""

    # --- what the engine calls ---------------------------------------------------------------------

    def read_into(self, into: memoryview, offset: int) -> int:
        """Fill ``into`` with the file's bytes at ``offset`` (held overwrites included); how many
        there were (fewer at the end of the file)."""
        self._apply_held_over(offset, offset + into.nbytes)
        n = os.preadv(self.fd, [into], offset)
        if n < into.nbytes:  # held bytes past the end on disk (after a cut): a hole before them
            end = min(into.nbytes, max(n, self._held_end - offset))
            into[n:end] = bytes(end - n)
            n = end
        return n

    def file_size(self) -> int:
        """The file's size, held overwrites included."""
        return max(os.fstat(self.fd).st_size, self._held_end)

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
        self._journal_fd = fd
        self._journal_synced = False
        self._folder_synced = False
        head = MAGIC + struct.pack("<Q", self._base)
        _write_all(fd, _HEADER.pack(MAGIC, self._base, zlib.crc32(head)))

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
            # Unsaved bytes were never overwritten, so the file still holds them (not held ones).
            original = os.pread(self.fd, b - a, a)
            crc = zlib.crc32(original, zlib.crc32(struct.pack("<QQ", a, b - a)))
            _write_all(self._journal_fd, _RECORD.pack(a, b - a, crc) + original)
            self._journal_synced = False
            self._saved.add(a, b)
            self._last_end = b

    def _write_at(self, view: memoryview, offset: int) -> None:
        """Write ``view`` at ``offset``: original bytes held back (durability "full"), the rest now."""
        held = 0 if self.durability == "none" else max(0, min(len(view), self._base - offset))
        if held:
            with self._lock:
                self._held.append((offset, bytes(view[:held])))
                self._held_ranges.add(offset, offset + held)
                self._held_bytes += held
                self._held_end = max(self._held_end, offset + held)
        done = held
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)
        if self._held_bytes >= HOLD_BYTES:
            self._apply_held()

    def _apply_held_over(self, lo: int, hi: int) -> None:
        """Apply the held overwrites first if some of them fall in [lo, hi) (a read of them)."""
        if self._held_bytes:
            with self._lock:
                if self._held_ranges.intersects(lo, hi):
                    self._apply_held()

    def _sync_journal(self) -> None:
        """Make the journal's records durable (and its name, the first time)."""
        if self.durability == "none" or self._journal_fd is None:
            return
        if not self._journal_synced:
            os.fdatasync(self._journal_fd)
            self._journal_synced = True
        if not self._folder_synced:
            sync_folder(self.journal)
            self._folder_synced = True

    def _apply_held(self) -> None:
        """Sync the journal, then write the held overwrites to the file (one batch)."""
        with self._lock:
            if not self._held:
                return
            self._sync_journal()
            for offset, data in self._held:
                view = memoryview(data)
                done = 0
                while done < len(view):
                    done += os.pwrite(self.fd, view[done:], offset + done)
            self._drop_held()

    def _drop_held(self) -> None:
        with self._lock:
            self._held = []
            self._held_ranges = _Saved()
            self._held_bytes = 0
            self._held_end = 0

    def commit(self) -> None:
        """Make everything written so far permanent (call after HDF5 has flushed)."""
        if self._journal_fd is None:
            return
        self._apply_held()
        if self.durability == "full":
            os.fsync(self.fd)
        os.close(self._journal_fd)
        self._journal_fd = None
        os.remove(self.journal)
        if self.durability == "full":
            sync_folder(self.journal)

    def rollback(self) -> None:
        """Put back the file as it was at the last commit (HDF5 must have closed it)."""
        self.failure = None
        self.interrupted = False
        self._drop_held()  # never written: nothing to undo for them
        if self._journal_fd is None:
            return
        os.close(self._journal_fd)
        self._journal_fd = None
        _undo(self.path, self.journal, self.fd, interrupted=False, durability=self.durability)

    def discard_writes(self) -> None:
        """Drop every write from now until the rollback (what HDF5 writes while closing a file
        about to be rolled back need not be journaled)."""
        if self.failure is None:
            self.failure = _Discarded()

    def close(self) -> None:
        self._drop_held()  # uncommitted: never written, and the journal stays for recover()
        if self._journal_fd is not None:
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
    Recovery always syncs (a power cut during it must not lose the file it repairs).
    """
    journal = journal_path(path)
    if not os.path.exists(journal):
        return False
    if fd is not None:
        return _undo(path, journal, fd, interrupted=False, durability="full")
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
        return _undo(path, journal, own, interrupted=True, durability="full")
    finally:
        os.close(own)


def _undo(path: str, journal: str, fd: int, *, interrupted: bool, durability: Durability) -> bool:
    """Copy the journal's saved bytes back into the file and cut it to its original length.

    ``interrupted``: the journal was left by a process that died (a warning); otherwise this process
    is rolling back a write call of its own, which it reports by raising (a debug message here).
    """
    try:
        with open(journal, "rb") as f:
            content = f.read()
    except FileNotFoundError:  # another process recovered it first
        return False
    if _torn_header(content):
        # Cut short while being created (by a kill, or by a power cut before it was synced): the
        # header is synced before anything is overwritten, so nothing was.
        _remove_journal(journal, durability)
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
    if durability == "full":
        os.fsync(fd)  # the file is whole again before the journal that made it so goes
    _remove_journal(journal, durability)
    if interrupted:
        log.warning("%s: undid an interrupted write (%d bytes restored)", path, restored)
    else:
        log.debug("%s: rolled back a failed write (%d bytes restored)", path, restored)
    return True


def _torn_header(content: bytes) -> bool:
    """Whether ``content`` starts with a journal header that was never completely written: shorter
    than a header, or a part of one followed by zeros (what a power cut leaves), or the magic with a
    wrong checksum. Anything else that is not a valid header is someone else's file."""
    head = content[: _HEADER.size]
    if len(head) < _HEADER.size:
        return True
    magic, base, crc = _HEADER.unpack(head)
    if magic == MAGIC:
        return crc != zlib.crc32(MAGIC + struct.pack("<Q", base))
    written = magic.rstrip(b"\0")
    return MAGIC.startswith(written) and not head[len(MAGIC) :].strip(b"\0")


def _remove_journal(journal: str, durability: Durability) -> None:
    os.remove(journal)
    if durability == "full":
        sync_folder(journal)
