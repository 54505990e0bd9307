"""Opening the text inputs of the importers: plain or gzip-compressed (decompressed by ISA-L's igzip),
with a missing file reported as :class:`LoomNotFoundError` naming its path."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from isal import igzip

from .._errors import LoomNotFoundError

# Bytes handed to a parser at a time: large enough that numpy's per-call cost vanishes, small enough
# that numpy's parser (which holds the GIL for a whole call) lets the threads compressing earlier
# bands run often, and that a block and its parsed numbers stay a few MB.
BLOCK_BYTES = 2 << 20


def require(path: str, what: str) -> str:
    """``path``, or a LoomNotFoundError naming it (and what it should have been) if it is missing."""
    if not os.path.isfile(path):
        msg = f"{what} '{path}' not found"
        raise LoomNotFoundError(msg)
    return path


def open_binary(path: str) -> io.BufferedIOBase:
    """The bytes of a file, decompressed when its name ends with ``.gz``."""
    require(path, "File")
    if path.endswith(".gz"):
        return igzip.IGzipFile(path, "rb")  # type: ignore[no-untyped-call]
    return open(path, "rb")


def read_lines(path: str) -> list[str]:
    """The non-blank lines of a UTF-8 text file (gzipped or not), without their line breaks."""
    with open_binary(path) as f:
        return [line for line in f.read().decode("utf-8").splitlines() if line.strip()]


def blocks(stream: io.BufferedIOBase) -> Iterator[bytes]:
    """The stream in blocks of BLOCK_BYTES, the next one read (and decompressed) on a second
    thread while the caller parses the current one."""
    with ThreadPoolExecutor(1, thread_name_prefix="loomfile-import") as reader:
        pending = reader.submit(stream.read, BLOCK_BYTES)
        while block := pending.result():
            pending = reader.submit(stream.read, BLOCK_BYTES)
            yield block


def lines_in_blocks(stream: io.BufferedIOBase) -> Iterator[bytes]:
    """The stream in blocks of whole lines (each ends with a line break, except perhaps the last)."""
    tail = b""
    for block in blocks(stream):
        text = tail + block
        cut = text.rfind(b"\n") + 1
        if cut:
            yield text[:cut]
        tail = text[cut:]
    if tail:
        yield tail
