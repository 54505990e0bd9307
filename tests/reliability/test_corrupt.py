"""Damaged files: truncations and bit flips anywhere give a loomfile error or the original data.

Each damaged copy is opened and read whole (every layer, attribute, graph and global attribute) in a
worker process, many copies per worker, so that a crash or a hang is caught and blamed on the copy
that caused it. Where the format lets damage be detected (deflate streams carry an Adler-32
checksum; chunk indexes must tile the chunk grid inside the file), a read must raise, never return
other values. Elsewhere (names, strings in the global heap, timestamps: HDF5's version-0 metadata has
no checksums) a changed value cannot be told from a real one, and only crashes, hangs and errors that
are not loomfile's are failures.

Run as a script, this file is the worker: ``python test_corrupt.py SEED VALIDATE ATTEMPTS`` reads
attempts (JSON lines) from the file ATTEMPTS and answers one JSON line each on standard output.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import struct
import subprocess
import sys
import traceback
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile

HANG_SECONDS = 20.0  # no answer from a worker for this long: the attempt hangs
WORKER = Path(__file__).resolve()


# --- the seed files --------------------------------------------------------------------------------


def seed_data(seed: int = 7) -> dict[str, Any]:
    """Small but complete Loom content: two layers, string/number/2-D attributes, a graph."""
    rng = np.random.default_rng(seed)
    n_rows, n_cols = 150, 140
    m = rng.poisson(0.6, (n_rows, n_cols)).astype(np.float32)
    knn = sparse.random(n_cols, n_cols, density=0.03, random_state=seed, format="coo")
    return {
        "matrix": m,
        "spliced": (m * 3).astype(np.uint16),
        "row_attrs": {"Gene": np.array([f"g{i}" for i in range(n_rows)]), "Total": m.sum(axis=1)},
        "col_attrs": {
            "CellID": np.array([f"cell_{j}_é" for j in range(n_cols)]),
            "Cluster": rng.integers(0, 6, n_cols),
            "PCA": rng.normal(size=(n_cols, 3)),
        },
        "knn": knn,
        "title": "damage test",
    }


def write_loomfile_seed(path: Path, data: dict[str, Any]) -> None:
    loomfile.create(
        path, {"": data["matrix"], "spliced": data["spliced"]}, data["row_attrs"], data["col_attrs"]
    )
    with loomfile.connect(path) as ds:
        ds.col_graphs["KNN"] = data["knn"]
        ds.attrs["title"] = data["title"]


def write_loompy_seed(path: Path, data: dict[str, Any]) -> None:
    import loompy

    loompy.create(
        os.fspath(path),
        {"": data["matrix"], "spliced": data["spliced"]},
        data["row_attrs"],
        ascii_col_attrs(data),
        file_attrs={"title": data["title"]},
    )
    with loompy.connect(os.fspath(path)) as ds:
        ds.col_graphs["KNN"] = data["knn"]


def ascii_col_attrs(data: dict[str, Any]) -> dict[str, Any]:
    """The column attributes with ASCII cell names (loompy 3 drops other characters)."""
    col_attrs = dict(data["col_attrs"])
    col_attrs["CellID"] = np.array([name.rstrip("é") for name in col_attrs["CellID"]])
    return col_attrs


# --- reading a whole file ----------------------------------------------------------------------------


def _digest(value: Any) -> str:
    """A fingerprint of a value read from the file (arrays: dtype, shape and contents)."""
    h = hashlib.sha256()
    if sparse.issparse(value):
        g = sparse.coo_matrix(value)
        for part in (g.row, g.col, g.data):
            h.update(_digest(np.asarray(part)).encode())
        h.update(repr(g.shape).encode())
        return h.hexdigest()
    arr = np.asarray(value)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    if arr.dtype.kind == "O":
        h.update(repr(arr.tolist()).encode())
    else:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def snapshot(path: str | os.PathLike[str], validate: bool | str = True) -> dict[str, str]:
    """Everything loomfile reads from the file, as fingerprints by element."""
    with loomfile.connect(path, "r", validate=validate) as ds:  # type: ignore[arg-type]
        out = {"shape": repr(ds.shape)}
        for name in ds.layers.keys():
            out[f"layer {name}"] = _digest(ds.layers[name][:, :])
        out["corner"] = _digest(ds[3:70, 60:130])
        for word, manager in (("row", ds.ra), ("col", ds.ca)):
            for name in manager.keys():
                out[f"{word} attr {name}"] = _digest(manager[name])
        for word, graphs in (("row", ds.row_graphs), ("col", ds.col_graphs)):
            for name in graphs.keys():
                out[f"{word} graph {name}"] = _digest(graphs[name])
        for name in ds.attrs.keys():
            out[f"global {name}"] = _digest(np.asarray(ds.attrs[name], dtype=object))
    return out


# --- where things are in a file ----------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A byte range of the file and what lives there: ``kind`` (see ``regions``) and ``owner``, the
    HDF5 object it belongs to (or "")."""

    start: int
    stop: int
    kind: str
    owner: str = ""


SUPERBLOCK_BYTES = 96  # version-0 superblock with 8-byte addresses, and the root group's entry
ATTRIBUTE_MESSAGE = 0x000C
CONTINUATION_MESSAGE = 0x0010
LAYOUT_MESSAGE = 0x0008


def regions(path: Path) -> list[Region]:
    """The file's structures, from its HDF5 metadata (version-0 superblock, version-1 object headers,
    as loompy and loomfile write): "superblock", "object header", "attribute message", "chunk"
    (stored chunk bytes), "chunk index" (B-tree nodes of a dataset's chunk index), "raw" (contiguous
    data), "names" (local heaps: link names), "strings" (global heaps: variable-length strings),
    "group index" (group B-tree and symbol table nodes)."""
    blob = path.read_bytes()
    found = [Region(0, SUPERBLOCK_BYTES, "superblock")]
    with h5py.File(path, "r") as f:
        objects: list[tuple[str, Any]] = [("/", f)]
        f.visititems(lambda name, obj: objects.append(("/" + name, obj)))
        for name, obj in objects:
            found += _header_regions(blob, int(h5py.h5o.get_info(obj.id).addr), name)
            if isinstance(obj, h5py.Dataset):
                found += _data_regions(blob, obj, name)
    found += _heap_regions(blob)
    return sorted(set(found), key=lambda r: (r.start, r.stop))


def _header_messages(blob: bytes, address: int) -> Iterator[tuple[int, int, int]]:
    """(position, type, body size) of each message of a version-1 object header, following its
    continuation blocks."""
    _version, _, count, _, size = struct.unpack_from("<BBHII", blob, address)
    blocks, seen = [(address + 16, size)], 0
    while blocks and seen < count:
        start, length = blocks.pop()
        pos = start
        while pos + 8 <= start + length:
            kind, body = struct.unpack_from("<HH", blob, pos)
            seen += 1
            if kind == CONTINUATION_MESSAGE:
                blocks.append(struct.unpack_from("<QQ", blob, pos + 8))
            yield pos, kind, body
            pos += 8 + body


def _header_regions(blob: bytes, address: int, owner: str) -> list[Region]:
    """A version-1 object header and its continuation blocks; attribute messages inside."""
    size = struct.unpack_from("<I", blob, address + 8)[0]
    out = [Region(address, address + 16 + size, "object header", owner)]
    for pos, kind, body in _header_messages(blob, address):
        if kind == ATTRIBUTE_MESSAGE:
            out.append(Region(pos, pos + 8 + body, "attribute message", owner))
        elif kind == CONTINUATION_MESSAGE:
            offset, extent = struct.unpack_from("<QQ", blob, pos + 8)
            out.append(Region(offset, offset + extent, "object header", owner))
    return out


def _data_regions(blob: bytes, dset: h5py.Dataset, owner: str) -> list[Region]:
    if dset.chunks is None:
        offset = dset.id.get_offset()
        return [] if offset is None else [Region(offset, offset + dset.id.get_storage_size(), "raw", owner)]
    chunks: list[Any] = []
    dset.id.chunk_iter(chunks.append)
    out = [Region(c.byte_offset, c.byte_offset + c.size, "chunk", owner) for c in chunks]
    return out + _tree_regions(
        blob, _chunk_tree_root(blob, int(h5py.h5o.get_info(dset.id).addr)), dset.ndim + 1, owner
    )


def _chunk_tree_root(blob: bytes, address: int) -> int | None:
    """The chunk index B-tree's address, from the Data Layout message (version 3)."""
    for pos, kind, _body in _header_messages(blob, address):
        if kind == LAYOUT_MESSAGE and blob[pos + 8] == 3 and blob[pos + 9] == 2:
            root: int = struct.unpack_from("<Q", blob, pos + 11)[0]
            return None if root == 2**64 - 1 else root
    return None


def _tree_regions(blob: bytes, root: int | None, dims: int, owner: str) -> list[Region]:
    """The nodes of a version-1 chunk B-tree (type 1: keys are size, mask and ``dims`` offsets)."""
    if root is None:
        return []
    out, nodes = [], [root]
    while nodes:
        node = nodes.pop()
        level, used = blob[node + 5], struct.unpack_from("<H", blob, node + 6)[0]
        key = 8 + 8 * dims
        out.append(Region(node, node + 24 + used * (key + 8) + key, "chunk index", owner))
        if level > 0:
            nodes += [struct.unpack_from("<Q", blob, node + 24 + i * (key + 8) + key)[0] for i in range(used)]
    return out


def _heap_regions(blob: bytes) -> list[Region]:
    """Local heaps (link names), global heaps (strings) and group B-tree/symbol table nodes, found
    by their signatures."""
    out = []
    for at in _find_all(blob, b"HEAP\x00"):
        size, _free, data = struct.unpack_from("<QQQ", blob, at + 8)
        out += [Region(at, at + 32, "names"), Region(data, data + size, "names")]
    for at in _find_all(blob, b"GCOL\x01"):
        out.append(Region(at, at + struct.unpack_from("<Q", blob, at + 8)[0], "strings"))
    for at in _find_all(blob, b"SNOD\x01"):
        out.append(Region(at, at + 8 + 40 * struct.unpack_from("<H", blob, at + 6)[0], "group index"))
    for at in _find_all(blob, b"TREE"):
        if blob[at + 4] == 0:
            used = struct.unpack_from("<H", blob, at + 6)[0]
            out.append(Region(at, at + 24 + used * 16 + 8, "group index"))
    return out


def _find_all(blob: bytes, signature: bytes) -> Iterator[int]:
    at = blob.find(signature)
    while at >= 0:
        yield at
        at = blob.find(signature, at + 1)


# --- the worker --------------------------------------------------------------------------------------


def damage(original: bytes, attempt: dict[str, Any]) -> bytes:
    """The file's bytes after an attempt: ``truncate`` at an offset, or ``flips`` [offset, xor mask]."""
    if "truncate" in attempt:
        return original[: attempt["truncate"]]
    data = bytearray(original)
    for offset, mask in attempt["flips"]:
        data[offset] ^= mask
    return bytes(data)


def outcome(path: Path, reference: dict[str, str], validate: bool | str) -> dict[str, Any]:
    """What reading a damaged file gave: a loomfile error, the original content, other content,
    or another exception (a failure)."""
    try:
        found = snapshot(path, validate)
    except loomfile.LoomError as e:
        return {"result": "error", "type": type(e).__name__, "message": str(e)[:300]}
    except Exception as e:
        frames = [
            f"{Path(f.filename).name}:{f.lineno}"
            for f in traceback.extract_tb(e.__traceback__)
            if "loomfile" in f.filename
        ]
        return {"result": "foreign", "type": type(e).__name__, "message": str(e)[:300], "where": frames[-3:]}
    changed = sorted(k for k in reference.keys() | found.keys() if reference.get(k) != found.get(k))
    return {"result": "differs", "changed": changed} if changed else {"result": "same"}


def worker(seed: str, validate: bool | str, attempts: str) -> None:
    """Answer each attempt listed in the file ``attempts`` (see module docstring)."""
    original = Path(seed).read_bytes()
    reference = snapshot(seed, validate)
    work = Path(seed).with_suffix(".damaged.loom")
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in Path(attempts).read_text().splitlines():
        attempt = json.loads(line)
        work.write_bytes(damage(original, attempt))
        answer = {"id": attempt["id"], **outcome(work, reference, validate)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


@dataclass
class Report:
    """Answers by attempt id; crashes and hangs by attempt id."""

    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    crashes: dict[int, str] = field(default_factory=dict)


def run_attempts(seed: Path, attempts: list[dict[str, Any]], validate: bool | str = True) -> Report:
    """Run the attempts in worker processes; a worker that dies or stalls is blamed on its current
    attempt, and a new worker takes the rest."""
    report = Report()
    pending = list(attempts)
    while pending:
        _run_worker(seed, pending, validate, report)
        pending = [a for a in pending if a["id"] not in report.answers and a["id"] not in report.crashes]
    return report


def _run_worker(seed: Path, attempts: list[dict[str, Any]], validate: bool | str, report: Report) -> None:
    env = {**os.environ, "LOOMFILE_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    todo, log = seed.with_suffix(".attempts"), seed.with_suffix(".stderr")
    todo.write_text("".join(json.dumps(a) + "\n" for a in attempts))
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, os.fspath(WORKER), os.fspath(seed), json.dumps(validate), os.fspath(todo)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    waiting, ready = [a["id"] for a in attempts], False
    for answer in _answers(proc, deadline=HANG_SECONDS * 3):
        if answer.get("ready"):
            ready = True
            continue
        report.answers[answer["id"]] = answer
        waiting.remove(answer["id"])
    if not waiting:
        proc.wait()
        return
    proc.kill()
    code = proc.wait()
    stderr = log.read_text(errors="replace")
    if not ready:
        pytest.fail(f"the worker could not read the intact file {seed}: {stderr[-2000:]}")
    report.crashes[waiting[0]] = f"{'hang' if code == -9 else f'exit {code}'}: {stderr[-2000:]}"


def _answers(proc: subprocess.Popen[bytes], deadline: float) -> Iterator[dict[str, Any]]:
    """The worker's answers until it exits or is silent for too long (unbuffered: a line Python
    had buffered would not wake ``select``)."""
    assert proc.stdout is not None
    fd, pending, limit = proc.stdout.fileno(), b"", deadline
    while True:
        ready, _, _ = select.select([fd], [], [], limit)
        if not ready:
            return
        block = os.read(fd, 1 << 16)
        if not block:
            return
        pending += block
        *lines, pending = pending.split(b"\n")
        limit = HANG_SECONDS
        yield from (json.loads(line) for line in lines)


# --- judging the answers ------------------------------------------------------------------------------


def region_at(found: list[Region], offset: int) -> Region | None:
    """The innermost structure holding ``offset`` (an attribute message inside an object header)."""
    holding = [r for r in found if r.start <= offset < r.stop]
    return min(holding, key=lambda r: r.stop - r.start) if holding else None


def checksum_collision(original: bytes, damaged_bytes: bytes, region: Region) -> bool:
    """True if a damaged deflate chunk still inflates, to other bytes: deflate's Adler-32 checksum
    missed the change (it happens: about one flip in a thousand), so no reader could detect it."""
    try:
        before = zlib.decompress(original[region.start : region.stop])
        after = zlib.decompress(damaged_bytes[region.start : region.stop])
    except zlib.error:
        return False
    return before != after


def strict(region: Region | None, deep: bool) -> bool:
    """Whether damage there must be detected: chunk bytes always; chunk indexes of layers always
    (the engine reads them itself), of other datasets with deep validation."""
    if region is None:
        return False
    if region.kind == "chunk":
        return True
    return region.kind == "chunk index" and (
        deep or region.owner == "/matrix" or region.owner.startswith("/layers/")
    )


@dataclass
class Verdict:
    """Outcomes by region kind, and what went wrong."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    collisions: int = 0


def judge(seed: Path, attempts: list[dict[str, Any]], report: Report, deep: bool) -> Verdict:
    """Every attempt must give a loomfile error or the original content; other content only where
    the damage cannot be detected (see ``strict``); never a crash, hang or foreign exception."""
    original = seed.read_bytes()
    found = regions(seed)
    verdict = Verdict()
    for attempt in attempts:
        where = attempt.get("flips", [[attempt.get("truncate", 0)]])[0][0]
        region = region_at(found, where) if "flips" in attempt else Region(0, 0, "truncation")
        kind = region.kind if region is not None else "unused"
        if attempt["id"] in report.crashes:
            verdict.failures.append(f"{attempt}: {kind}: {report.crashes[attempt['id']]}")
            verdict.counts[(kind, "crash")] += 1
            continue
        answer = report.answers[attempt["id"]]
        verdict.counts[(kind, answer["result"])] += 1
        if answer["result"] == "foreign":
            verdict.failures.append(f"{attempt}: {kind} {region}: {answer}")
        elif answer["result"] == "differs" and strict(region, deep):
            assert region is not None
            if region.kind == "chunk" and checksum_collision(original, damage(original, attempt), region):
                verdict.collisions += 1
            else:
                verdict.failures.append(f"{attempt}: {kind} {region}: {answer}")
    return verdict


# --- the tests ---------------------------------------------------------------------------------------

WRITERS = {"loomfile": write_loomfile_seed, "loompy": write_loompy_seed}


@pytest.fixture(scope="module", params=sorted(WRITERS))
def seed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small complete Loom file written by loomfile or by loompy."""
    path = tmp_path_factory.mktemp(request.param) / "seed.loom"
    WRITERS[request.param](path, seed_data())
    return path


def _flip_attempts(
    seed: Path, kinds: Iterable[str], per_region: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """``per_region`` random one-byte changes (xor with a random non-zero byte) in every structure of these kinds."""
    attempts: list[dict[str, Any]] = []
    for region in regions(seed):
        if region.kind in kinds and region.stop > region.start:
            for offset in rng.integers(region.start, region.stop, per_region).tolist():
                attempts.append({"id": len(attempts), "flips": [[offset, int(rng.integers(1, 256))]]})
    return attempts


def _assert_sound(verdict: Verdict) -> None:
    shown = "\n".join(verdict.failures[:10])
    assert not verdict.failures, (
        f"{len(verdict.failures)} damaged files misread:\n{shown}\n{dict(verdict.counts)}"
    )


def test_reference_is_what_was_written(seed: Path) -> None:
    """The intact seed as loomfile reads it (the reference for every damaged copy) is what was
    written, and what loompy reads."""
    import loompy

    data = seed_data()
    col_attrs = ascii_col_attrs(data) if seed.parent.name.startswith("loompy") else data["col_attrs"]
    with loomfile.connect(seed, "r") as ds, loompy.connect(os.fspath(seed), "r") as oracle:
        np.testing.assert_array_equal(ds[:, :], data["matrix"])
        np.testing.assert_array_equal(ds.layers["spliced"][:, :], oracle.layers["spliced"][:, :])
        for mine, written in ((ds.ra, data["row_attrs"]), (ds.ca, col_attrs)):
            assert sorted(mine.keys()) == sorted(written)
            for name, values in written.items():
                np.testing.assert_array_equal(mine[name], values)
        assert (ds.col_graphs["KNN"] != oracle.col_graphs["KNN"]).nnz == 0
        assert ds.attrs["title"] == data["title"]
    assert snapshot(seed) == snapshot(seed, "full")


def test_truncated_files_raise(seed: Path) -> None:
    """A file cut anywhere (in every structure, and at random) is refused with a loomfile error."""
    size = seed.stat().st_size
    rng = np.random.default_rng(1)
    cuts = (
        {r.start for r in regions(seed)}
        | {r.stop - 1 for r in regions(seed)}
        | set(rng.integers(0, size, 40).tolist())
    )
    attempts = [{"id": i, "truncate": cut} for i, cut in enumerate(sorted(c for c in cuts if 0 <= c < size))]
    report = run_attempts(seed, attempts)
    assert not report.crashes, report.crashes
    results = Counter(a["result"] for a in report.answers.values())
    assert results == {"error": len(attempts)}, results


def test_damage_in_each_structure(seed: Path) -> None:
    """Changed bytes in chunk data, chunk indexes, the strings' global heap, link names, attribute
    messages, object headers, group indexes and the superblock."""
    kinds = (
        "chunk",
        "chunk index",
        "strings",
        "names",
        "attribute message",
        "object header",
        "group index",
        "superblock",
        "raw",
    )
    attempts = _flip_attempts(seed, kinds, 4, np.random.default_rng(2))
    verdict = judge(seed, attempts, run_attempts(seed, attempts), deep=False)
    _assert_sound(verdict)
    for kind in ("chunk", "chunk index", "object header", "names", "superblock"):
        assert verdict.counts[(kind, "error")] > 0, (kind, dict(verdict.counts))  # damage was done
    assert verdict.counts[("chunk", "error")] >= 0.9 * sum(
        n for (k, _), n in verdict.counts.items() if k == "chunk"
    )


def test_damage_at_random_places(seed: Path) -> None:
    """Changed bytes anywhere in the file."""
    rng = np.random.default_rng(3)
    size = seed.stat().st_size
    attempts = [
        {"id": i, "flips": [[int(rng.integers(size)), int(rng.integers(1, 256))]]} for i in range(250)
    ]
    verdict = judge(seed, attempts, run_attempts(seed, attempts), deep=False)
    _assert_sound(verdict)
    assert sum(n for (_, result), n in verdict.counts.items() if result == "error") > 100


def test_deep_validation_detects_index_damage_everywhere(seed: Path) -> None:
    """With ``validate="full"``, damage to the chunk index of any dataset (attributes and graphs,
    which h5py reads, included) or to any chunk is refused at connect."""
    attempts = _flip_attempts(seed, ("chunk index", "chunk"), 2, np.random.default_rng(4))
    report = run_attempts(seed, attempts, "full")
    verdict = judge(seed, attempts, report, deep=True)
    _assert_sound(verdict)
    assert verdict.counts[("chunk index", "error")] > 0


def _chunk_at(path: Path, name: str, where: tuple[int, ...]) -> tuple[int, int]:
    """(file offset, stored size) of the chunk at element ``where`` of dataset ``name``."""
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info_by_coord(where)
    return int(info.byte_offset), int(info.size)


def _write_changed(source: Path, target: Path, changes: dict[int, bytes]) -> Path:
    data = bytearray(source.read_bytes())
    for offset, new in changes.items():
        data[offset : offset + len(new)] = new
    target.write_bytes(bytes(data))
    return target


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("intact") / "seed.loom"
    write_loomfile_seed(path, seed_data())
    return path


def test_corrupt_chunk_names_dataset_and_chunk(intact: Path, tmp_path: Path) -> None:
    offset, size = _chunk_at(intact, "/matrix", (64, 64))
    stored = bytearray(intact.read_bytes()[offset : offset + size])
    stored[size // 2] ^= 0x10
    with pytest.raises(zlib.error):
        zlib.decompress(bytes(stored))  # (the damage is detectable)
    damaged = _write_changed(intact, tmp_path / "d.loom", {offset: bytes(stored)})
    with loomfile.connect(damaged, "r") as ds:
        np.testing.assert_array_equal(ds[:64, :], seed_data()["matrix"][:64])  # other chunks read
        with pytest.raises(loomfile.LoomFormatError, match=r"Chunk \(1, 1\) of /matrix is corrupt"):
            ds[:, :]
    problems = loomfile.LoomValidator().check_deep(damaged)
    assert problems == ["Chunk (1, 1) of /matrix is corrupt: libdeflate rejected it"] or (
        len(problems) == 1 and problems[0].startswith("Chunk (1, 1) of /matrix is corrupt")
    ), problems
    with pytest.raises(loomfile.LoomFormatError, match=r"Chunk \(1, 1\) of /matrix"):
        loomfile.connect(damaged, "r", validate="full")


def _index_entry(path: Path, name: str, where: tuple[int, ...]) -> int:
    """Where the chunk index of ``name`` stores the file address of the chunk at ``where``."""
    offset, _ = _chunk_at(path, name, where)
    nodes = [r for r in regions(path) if r.kind == "chunk index" and r.owner == name]
    blob = path.read_bytes()
    at = [n.start + blob[n.start : n.stop].find(struct.pack("<Q", offset)) for n in nodes]
    found = [a for a, n in zip(at, nodes, strict=True) if a >= n.start]
    assert len(found) == 1
    return found[0]


def test_index_pointing_past_the_end_names_dataset_and_chunk(intact: Path, tmp_path: Path) -> None:
    entry = _index_entry(intact, "/layers/spliced", (64, 0))
    beyond = struct.pack("<Q", intact.stat().st_size + 4096)
    damaged = _write_changed(intact, tmp_path / "d.loom", {entry: beyond})
    with (
        loomfile.connect(damaged, "r") as ds,
        pytest.raises(loomfile.LoomFormatError, match=r"/layers/spliced.*chunk \(1, 0\).*outside the file"),
    ):
        ds.layers["spliced"][:, :]


def test_deep_check_of_an_intact_file_finds_nothing(intact: Path) -> None:
    assert loomfile.LoomValidator().check_deep(intact) == []
    with loomfile.connect(intact, "r", validate="full") as ds:
        assert ds.shape == (150, 140)


def test_deep_check_finds_attribute_index_damage_that_h5py_misses(intact: Path, tmp_path: Path) -> None:
    """A chunk index key that moved: HDF5's lookup no longer finds the chunk and h5py reads fill
    values (zeros) without complaint; the deep check compares the index with the lookups."""
    with h5py.File(intact, "r") as f:
        rows = int(f["/col_attrs/PCA"].chunks[0])
    entry = _index_entry(intact, "/col_attrs/PCA", (0, 0))
    key = entry - 8 - 8 * 3  # the chunk's key (size, mask, offsets) just before its address
    assert struct.unpack_from("<QQQ", intact.read_bytes(), key + 8) == (0, 0, 0)
    damaged = _write_changed(intact, tmp_path / "d.loom", {key + 8: struct.pack("<Q", rows)})
    with h5py.File(damaged, "r") as f:
        silently_wrong = f["/col_attrs/PCA"][()]
    assert not np.array_equal(silently_wrong, seed_data()["col_attrs"]["PCA"])
    problems = loomfile.LoomValidator().check_deep(damaged)
    assert any("/col_attrs/PCA" in p for p in problems), problems
    with pytest.raises(loomfile.LoomFormatError, match="/col_attrs/PCA"):
        loomfile.connect(damaged, "r", validate="full")


@pytest.mark.parametrize("compression", ["gzip", None])
def test_fletcher32_layers_read_and_damage_is_detected(tmp_path: Path, compression: str | None) -> None:
    """Layers with HDF5's fletcher32 checksum (as h5py writes with ``fletcher32=True``) read
    correctly; a changed byte in a chunk raises, even where no compression checksum would notice."""
    data = seed_data()
    path = tmp_path / "f32.loom"
    write_loomfile_seed(path, data)
    with h5py.File(path, "r+") as f:
        del f["/matrix"]
        f.create_dataset(
            "/matrix",
            data=data["matrix"],
            chunks=(64, 64),
            compression=compression,
            fletcher32=True,
            maxshape=(None, None),
        )
    with loomfile.connect(path, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], data["matrix"])
        np.testing.assert_array_equal(ds[10:90, 70:], data["matrix"][10:90, 70:])
    offset, size = _chunk_at(path, "/matrix", (64, 0))
    damaged = _write_changed(
        path, tmp_path / "d.loom", {offset + size // 3: bytes([path.read_bytes()[offset + size // 3] ^ 4])}
    )
    with loomfile.connect(damaged, "r") as ds:
        np.testing.assert_array_equal(ds[:64, :], data["matrix"][:64])
        with pytest.raises(loomfile.LoomFormatError, match="/matrix"):
            ds[64:128, :]
    assert any("/matrix" in p for p in loomfile.LoomValidator().check_deep(damaged))


def test_chunk_index_that_loops_is_refused_without_crashing(tmp_path: Path) -> None:
    """A B-tree node made its own child (HDF5 itself overflows its stack walking it): loomfile's
    reader and the deep check refuse the file, and the process survives."""
    path = tmp_path / "seed.loom"
    write_loomfile_seed(path, seed_data())
    with h5py.File(path, "r+") as f:  # 342 chunks of 8 x 8: a two-level index
        f.create_dataset(
            "/layers/small_chunks", data=seed_data()["matrix"], chunks=(8, 8), compression="gzip"
        )
    blob = path.read_bytes()
    nodes = [r for r in regions(path) if r.kind == "chunk index" and r.owner == "/layers/small_chunks"]
    root = next(n for n in nodes if blob[n.start + 5] > 0)
    first_child = root.start + 24 + 8 + 8 * 3
    loop = struct.pack("<Q", root.start)
    flips = [
        [first_child + i, blob[first_child + i] ^ loop[i]]
        for i in range(8)
        if blob[first_child + i] != loop[i]
    ]
    for validate in (True, "full"):
        report = run_attempts(path, [{"id": 0, "flips": flips}], validate)
        assert report.answers.get(0, {}).get("result") == "error", (report.answers, report.crashes)
        assert "/layers/small_chunks" in report.answers[0]["message"]


def test_a_looping_index_in_a_string_attribute_is_refused_on_an_ordinary_read(tmp_path: Path) -> None:
    """Attributes h5py reads itself (strings, few chunks) get the same index check first, so the
    ordinary connect (not only validate="full") names the damaged index before HDF5 walks it (HDF5
    gives up on this one with a generic error; on a layer's index it overflowed its stack)."""
    path = tmp_path / "seed.loom"
    write_loomfile_seed(path, seed_data())
    words = np.array([f"w{j}" for j in range(140)], dtype=object)
    with h5py.File(path, "r+") as f:  # 140 chunks of one string: a two-level index
        f.create_dataset("/col_attrs/Words", data=words, chunks=(1,), dtype=h5py.string_dtype())
    blob = path.read_bytes()
    nodes = [r for r in regions(path) if r.kind == "chunk index" and r.owner == "/col_attrs/Words"]
    root = next(n for n in nodes if blob[n.start + 5] > 0)
    first_child = root.start + 24 + 8 + 8 * 2  # (a 1-D dataset's keys hold two offsets)
    loop = struct.pack("<Q", root.start)
    flips = [[first_child + i, blob[first_child + i] ^ loop[i]] for i in range(8) if blob[first_child + i] != loop[i]]
    report = run_attempts(path, [{"id": 0, "flips": flips}], True)
    assert report.answers.get(0, {}).get("result") == "error", (report.answers, report.crashes)
    assert "chunk index of /col_attrs/Words is damaged" in report.answers[0]["message"]


if __name__ == "__main__":
    worker(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])
