"""Reading a chunked dataset's version-1 B-tree chunk index straight from the file.

HDF5's own chunk iteration calls back into Python once per chunk (about 1 us each: 0.3 s for the
245,000 chunks of a 20000 x 50000 layer). Files written with HDF5's default format (loompy, h5py,
anndata) index chunks with a version-1 B-tree, whose nodes hold many chunk records each; parsing
those records with numpy costs a few microseconds per node. Anything unexpected (another object
header or index version, unusual address sizes) returns None and the caller asks HDF5 instead; the
caller also checks the result against HDF5 (chunk count and a few chunks' bytes).

Format references: HDF5 File Format Specification 3.0, sections III.A.1 (v1 B-trees), IV.A.1.a
(version 1 object headers) and IV.A.2.i (the Data Layout message).
"""

from __future__ import annotations

import os
import struct
from typing import Any, Protocol

import h5py
import numpy as np

from .._errors import LoomFormatError

LAYOUT_MESSAGE = 0x0008
CONTINUATION_MESSAGE = 0x0010
CHUNKED = 2
UNDEFINED = 2**64 - 1  # HDF5's "no address"
Records = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # coordinates, offsets, sizes, masks
# Nodes hold up to 2K records, K = 32 unless the file says otherwise: one read usually fetches a node.
READ_AHEAD_RECORDS = 64


class RangeReader(Protocol):
    """Reads a file's bytes at given offsets, from any thread (a remote file: see ``_store.remote``)."""

    def read_into(self, into: memoryview, offset: int) -> int:
        """Fill ``into`` with the bytes at ``offset``; how many there were (fewer at the end)."""
        ...


Source = int | RangeReader  # where the engine reads a file's bytes: its descriptor, or a reader


def read_into(source: Source, into: memoryview, offset: int) -> int:
    """Positioned read of ``into.nbytes`` bytes at ``offset``; how many were read."""
    if isinstance(source, int):
        return os.preadv(source, [into], offset)
    return source.read_into(into, offset)


def read_at(source: Source, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer at the end of the file)."""
    if isinstance(source, int):
        return os.pread(source, size, offset)
    buf = bytearray(size)
    return bytes(buf[: source.read_into(memoryview(buf), offset)])


def _read(fd: Source, size: int, offset: int) -> bytes:
    data = read_at(fd, size, offset)
    if len(data) != size:
        msg = "short read"
        raise ValueError(msg)
    return data


def _messages(fd: Source, start: int, size: int) -> list[tuple[int, bytes]]:
    """(type, body) of the messages in one block of a version-1 object header."""
    block = _read(fd, size, start)
    out, pos = [], 0
    while pos + 8 <= size:
        kind, length = struct.unpack_from("<HH", block, pos)
        out.append((kind, block[pos + 8 : pos + 8 + length]))
        pos += 8 + length
    return out


def _btree_address(fd: Source, header: int, base: int) -> tuple[int, int] | None:
    """(B-tree address, dimensionality) from the Data Layout message of a version-1 object header."""
    prefix = _read(fd, 16, base + header)
    version, _, count, _, size = struct.unpack_from("<BBHII", prefix)
    if version != 1:
        return None
    blocks = [(base + header + 16, size)]
    seen = 0
    while blocks and seen < count:
        start, length = blocks.pop(0)
        for kind, body in _messages(fd, start, length):
            seen += 1
            if kind == CONTINUATION_MESSAGE:
                offset, extent = struct.unpack_from("<QQ", body)
                blocks.append((base + offset, extent))
            elif kind == LAYOUT_MESSAGE:
                layout_version = body[0]
                if layout_version == 3 and body[1] == CHUNKED:
                    return struct.unpack_from("<Q", body, 3)[0], body[2]
                if layout_version in (1, 2) and body[2] == CHUNKED:
                    return struct.unpack_from("<Q", body, 8)[0], body[1]
                return None
    return None


Wanted = tuple[np.ndarray, np.ndarray]  # sorted unique chunk-grid rows and columns


def _header_address(dset: h5py.Dataset) -> int:
    """Where ``dset``'s object header is: from its link (microseconds) when it is a hard link, else
    from H5Oget_info (milliseconds: it also counts attributes and header space)."""
    name = dset.name  # (bytes when the name is not valid UTF-8)
    link = dset.file.id.links.get_info(name if isinstance(name, bytes) else name.encode())
    if link.type == h5py.h5l.TYPE_HARD:
        return int(link.u)
    return int(h5py.h5o.get_info(dset.id).addr)


def chunk_records(dset: h5py.Dataset, fd: Source, wanted: Wanted | None = None) -> Records | None:
    """(chunk coordinates (n, rank), file offsets, stored sizes, filter masks) of every chunk, or None.

    With ``wanted`` (grid rows, grid columns), only the chunks in those rows x columns: the walk
    descends only into subtrees whose key range can hold one of them (a small read of a large
    layer reads a few nodes instead of the whole index)."""
    f = dset.file
    if f.id.get_create_plist().get_sizes() != (8, 8):
        return None
    base = int(f.userblock_size)
    try:
        found = _btree_address(fd, _header_address(dset), base)
        if found is None:
            return None
        root, dims = found
        if dims != dset.ndim + 1:  # (the offsets of a key: one per dimension, and the element's)
            return None
        if root == UNDEFINED:  # nothing written yet: no index at all
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros((0, dims - 1), dtype=np.int64), empty, empty, empty
        chunks = tuple(int(c) for c in dset.chunks) + (1,) * (2 - dset.ndim)
        prune = None if wanted is None else _Pruner(wanted, chunks)
        grid = int(np.prod([-(-int(n) // c) for n, c in zip(dset.shape, chunks, strict=False)]))
        records = _walk(fd, base, root, dims, READ_AHEAD_RECORDS, prune, max(grid, 1))
    except _Damage as e:
        # (HDF5 itself may loop or overflow its stack on such an index: never hand it over)
        msg = f"The chunk index of {dset.name} is damaged: {e}"
        raise LoomFormatError(msg) from None
    except (ValueError, struct.error, OSError, OverflowError):
        return None
    if prune is not None:
        records = records[prune.keep(records["offsets"])]
    coords = records["offsets"][:, : dims - 1].astype(np.int64)
    return (
        coords,
        records["child"].astype(np.int64) + base,
        records["size"].astype(np.int64),
        records["mask"].astype(np.int64),
    )


class _Pruner:
    """Which children of a node can hold a wanted chunk, from the node's keys.

    Child i holds chunks whose keys (row offset, column offset, ...) lie, in lexicographic order,
    between key i and key i + 1 (taken inclusively: a subtree too many is read, never one too few).
    """

    def __init__(self, wanted: Wanted, chunks: tuple[int, ...]) -> None:
        self.rows, self.cols = (np.asarray(w, dtype=np.int64) for w in wanted)
        self.c0, self.c1 = chunks[0], chunks[1]

    def children(self, keys: np.ndarray) -> np.ndarray:
        """For a node's used + 1 keys (offsets), a mask over its used children."""
        r = keys[:, 0].astype(np.int64) // self.c0
        c = keys[:, 1].astype(np.int64) // self.c1 if keys.shape[1] > 2 else np.zeros_like(r)
        lo_r, lo_c, hi_r, hi_c = r[:-1], c[:-1], r[1:], c[1:]
        rows, cols = self.rows, self.cols
        if rows.size == 0 or cols.size == 0:
            return np.zeros(lo_r.shape, dtype=bool)
        # a wanted row strictly inside (lo_r, hi_r): any wanted column will do
        inside = np.searchsorted(rows, hi_r, "left") > np.searchsorted(rows, lo_r, "right")
        has_lo = _member(rows, lo_r)
        has_hi = _member(rows, hi_r)
        same = lo_r == hi_r
        # on row lo_r: a wanted column >= lo_c (and <= hi_c when the range is within one row)
        first_ge = np.searchsorted(cols, lo_c, "left")
        at_lo = has_lo & (first_ge < cols.size)
        at_lo &= ~same | (cols[np.minimum(first_ge, cols.size - 1)] <= hi_c)
        # on row hi_r (a different row): a wanted column <= hi_c
        at_hi = has_hi & ~same & (cols[0] <= hi_c)
        return inside | at_lo | at_hi

    def keep(self, offsets: np.ndarray) -> np.ndarray:
        r = offsets[:, 0].astype(np.int64) // self.c0
        c = offsets[:, 1].astype(np.int64) // self.c1 if offsets.shape[1] > 2 else np.zeros_like(r)
        return _member(self.rows, r) & _member(self.cols, c)


def _member(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    if sorted_values.size == 0:
        return np.zeros(x.shape, dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, x), sorted_values.size - 1)
    return sorted_values[at] == x


def _walk(
    fd: Source, base: int, root: int, dims: int, capacity: int, prune: _Pruner | None, limit: int
) -> Any:
    """Every leaf record under ``root``: the chunk key (size, mask, offsets) and the chunk's address.

    Each node is fetched with one read of ``capacity`` records (a second read if it holds more).
    With ``prune``, only subtrees that can hold a wanted chunk are visited. A damaged tree raises
    _Damage, never walks without end: each level's nodes must be B-tree nodes one level below their
    parents, and no level may hold more than ``limit`` (the number of chunks) nodes.
    """
    record = np.dtype([("size", "<u4"), ("mask", "<u4"), ("offsets", "<u8", (dims,)), ("child", "<u8")])
    key = np.dtype([("size", "<u4"), ("mask", "<u4"), ("offsets", "<u8", (dims,))])
    node_bytes = 24 + capacity * record.itemsize + key.itemsize
    leaves: list[np.ndarray] = []
    level_nodes = [root]
    expected = -1  # the level of the nodes at this depth (the root's: any)
    for _depth in range(64):
        children: list[np.ndarray] = []
        if len(level_nodes) > limit:
            msg = f"it has more nodes than the dataset has chunks ({limit})"
            raise _Damage(msg)
        for node in level_nodes:
            head = _node(fd, node_bytes, base + node, head=True)
            if expected >= 0 and head[5] != expected:
                msg = f"the node at byte {base + node} is at level {head[5]}, not {expected}"
                raise _Damage(msg)
            level, used = head[5], struct.unpack_from("<H", head, 6)[0]
            expected = level
            size = used * record.itemsize + key.itemsize  # the records, then the node's last key
            body = head[24 : 24 + size] if 24 + size <= len(head) else _node(fd, size, base + node + 24)
            entries = np.frombuffer(body, dtype=record, count=used)
            if level == 0:
                leaves.append(entries)
                continue
            if prune is not None:
                last = np.frombuffer(body, dtype=key, count=1, offset=used * record.itemsize)
                keys = np.concatenate((entries["offsets"], last["offsets"]))
                entries = entries[prune.children(keys)]
            children.append(entries["child"])
        if not children:
            return np.concatenate(leaves) if leaves else np.zeros(0, dtype=record)
        if leaves:
            msg = "it has leaves and inner nodes at one depth"
            raise _Damage(msg)
        level_nodes = np.concatenate(children).tolist()
        expected -= 1
    msg = "it is more than 64 levels deep"
    raise _Damage(msg)


class _Damage(Exception):
    """A chunk index that cannot be right (see ``_walk``)."""


def _node(fd: Source, size: int, offset: int, head: bool = False) -> bytes:
    """``size`` bytes of a B-tree node at ``offset``; with ``head``, up to ``size`` bytes starting
    with a chunk node's header (the "TREE" signature, node type 1)."""
    try:
        data = read_at(fd, size, offset) if offset >= 0 else b""
    except (OSError, OverflowError):
        data = b""
    if len(data) < (24 if head else size) or (head and data[:5] != b"TREE\x01"):
        msg = f"no chunk index node at byte {offset} (beyond the end of the file, or overwritten)"
        raise _Damage(msg)
    return data
