"""Validation of Loom files: their structure, from metadata only (``validate``, ``check``: no
matrix data is read), or everything (``check_deep``: every chunk of every dataset is read).

Lenient by design: what real tools write (loomR's variable-length ASCII, SCENIC's compound column
attributes, fixed-length bytes in spec-3 files, extra groups, odd version attributes) is accepted,
at most with a warning. Errors are reserved for files no reader can use correctly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import h5py
import numpy as np

from .._engine.btree import chunk_records
from .._engine.chunks import ChunkLayout, file_size, layout_of
from .._errors import LoomError, LoomFormatError, LoomLockedError
from .._format import spec as fmt
from . import strings
from .store import open_h5

_VERTEX_KINDS = "iu"
# check_deep names at most this many damaged chunks per dataset (then how many more there are).
MAX_REPORTED = 10
# What reading a damaged file raises (MemoryError: a damaged dataspace can claim any extent).
_HDF5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, MemoryError)


class StructureValidator:
    """The checks of a file's HDF5 structure against the Loom format (``loomfile.LoomValidator``
    adds the content checks); collects ``errors`` and ``warnings`` (lists of str)."""

    def __init__(self, version: str | None = None) -> None:
        self.version = version
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.summary: list[str] = []

    def validate(self, path: str | os.PathLike[str], strictness: str = "speconly") -> bool:
        """True if the file has no errors (see ``errors`` and ``warnings`` afterwards).

        Raises :class:`LoomLockedError` if another process holds the file's lock (it is writing)."""
        self.errors, self.warnings, self.summary = [], [], []
        try:
            h5 = open_h5(os.fspath(path), "r")
        except LoomLockedError:
            raise  # (the file cannot be checked now; nothing is known to be wrong with it)
        except (OSError, ValueError, LoomError) as e:
            self.errors.append(str(e))
            return False
        with h5:
            try:
                self.validate_spec(h5)
            except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
                # (TypeError: h5py meeting a damaged datatype message it has no numpy type for)
                self.errors.append(f"the file's HDF5 metadata cannot be read ({e})")
        return not self.errors

    def check_deep(self, path: str | os.PathLike[str]) -> list[str]:
        """Read the whole file and return every problem found (an empty list: none).

        On top of ``validate``'s structural errors: every chunk of every dataset decodes (deflate's
        checksum, HDF5's fletcher32 where present), every chunk index lists chunks inside the chunk
        grid and the file, once each, where HDF5's own lookup finds them; attributes and global
        attributes decode, graphs have vertex ids in range. Reads about as much as loading every
        layer (``loomfile validate --deep`` prints the list).

        Examples
        --------
        >>> LoomValidator().check_deep("damaged.loom")
        ['Chunk (1, 2) of /matrix is corrupt: its stored bytes do not decode']
        """
        if not self.validate(path):
            return list(self.errors)
        problems: list[str] = []
        with open_h5(os.fspath(path), "r") as h5:
            datasets: list[h5py.Dataset] = []
            problems += problems_of("the file's groups", partial(_collect_datasets, h5, datasets, set()))
            for dset in datasets:
                problems += dataset_problems(dset)
        content: list[str] = []
        problems += problems_of("the file's content", partial(self.content_problems, os.fspath(path), content))
        return problems + content

    def check(self, path: str | os.PathLike[str], *, deep: bool = False) -> None:
        """Raise :class:`LoomFormatError` listing the errors if the file is not a usable Loom file;
        with ``deep``, also if ``check_deep`` finds any problem."""
        if deep:
            found = self.check_deep(path)
            if found:
                msg = f"'{os.fspath(path)}' is damaged: {'; '.join(found)}"
                raise LoomFormatError(msg)
            return
        if not self.validate(path):
            if len(self.errors) == 1 and not os.path.exists(os.fspath(path)):
                from .._errors import LoomNotFoundError

                raise LoomNotFoundError(self.errors[0])
            problems = "; ".join(self.errors)
            msg = f"'{os.fspath(path)}' is not a valid Loom file: {problems}"
            raise LoomFormatError(msg)

    def content_problems(self, path: str, problems: list[str]) -> None:
        """Add to ``problems`` what cannot be read as Loom content (the object model's checks:
        ``loomfile.LoomValidator``; the structure alone has none)."""

    def _error(self, message: str) -> None:
        self.errors.append(message)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)

    def validate_spec(self, h5: h5py.File) -> bool:
        """Check the layout of an open file; returns True if there are no errors."""
        version = self._spec_version(h5)
        if self.version is None:
            self.version = ".".join(map(str, version))
        shape = self._check_matrix(h5)
        self._check_layers(h5, shape)
        for axis in (0, 1):
            self._check_attrs(h5, axis, shape)
            self._check_graphs(h5, axis)
        if fmt.GLOBALS_GROUP not in h5 and version >= (3,):
            self._warn("the file declares spec 3 but has no /attrs group; global attributes are read from /")
        return not self.errors

    def _spec_version(self, h5: h5py.File) -> tuple[int, ...]:
        raw = None
        if fmt.GLOBALS_GROUP in h5 and fmt.SPEC_VERSION_NAME in h5[fmt.GLOBALS_GROUP]:
            raw = h5[fmt.GLOBALS_GROUP][fmt.SPEC_VERSION_NAME][()]
        elif fmt.SPEC_VERSION_NAME in h5.attrs:
            raw = h5.attrs[fmt.SPEC_VERSION_NAME]
        if raw is None:
            self._warn("LOOM_SPEC_VERSION is missing; the file is read as an old (pre-3.0) Loom file")
        return fmt.parse_spec_version(raw)

    def _check_matrix(self, h5: h5py.File) -> tuple[int, int] | None:
        if fmt.MATRIX_PATH not in h5 or not isinstance(h5[fmt.MATRIX_PATH], h5py.Dataset):
            self._error("the main matrix /matrix is missing")
            return None
        matrix = h5[fmt.MATRIX_PATH]
        if matrix.ndim != 2:
            self._error(f"/matrix must be 2-D, but has shape {matrix.shape}")
            return None
        if np.dtype(matrix.dtype).name not in fmt.MATRIX_DTYPES:
            self._error(f"/matrix has dtype {matrix.dtype}, which is not a Loom matrix type")
        self.summary.append(f"main matrix {matrix.shape} {matrix.dtype}")
        return (int(matrix.shape[0]), int(matrix.shape[1]))

    def _check_layers(self, h5: h5py.File, shape: tuple[int, int] | None) -> None:
        if fmt.LAYERS_GROUP not in h5:
            return
        for name, layer in h5[fmt.LAYERS_GROUP].items():
            if not isinstance(layer, h5py.Dataset):
                self._warn(f"/layers/{name} is not a dataset and is ignored")
                continue
            if shape is not None and layer.shape != shape:
                self._error(f"layer {name!r} has shape {layer.shape}, but /matrix has shape {shape}")
            if np.dtype(layer.dtype).name not in fmt.MATRIX_DTYPES:
                self._error(f"layer {name!r} has dtype {layer.dtype}, which is not a Loom matrix type")
            self.summary.append(f"layer {name!r} {layer.dtype}")

    def _check_attrs(self, h5: h5py.File, axis: int, shape: tuple[int, int] | None) -> None:
        group = fmt.ATTR_GROUPS[axis]
        word = fmt.AXIS_NAMES[axis]
        if group not in h5:
            self._warn(f"the group {group} is missing (read as empty)")
            return
        for name, dset in h5[group].items():
            if not isinstance(dset, h5py.Dataset):
                self._warn(f"{group}/{name} is not a dataset and is ignored")
                continue
            if dset.ndim == 0:
                self._error(f"{word} attribute {name!r} is a scalar, not one value per {word}")
                continue
            if shape is not None and dset.shape[0] != shape[axis]:
                self._error(
                    f"{word} attribute {name!r} has {dset.shape[0]} values, but the matrix has {shape[axis]} {word}s"
                )
            dt = np.dtype(dset.dtype)
            if dt.kind == "V" and dt.names is not None:
                self._warn(f"{word} attribute {name!r} has a compound dtype (read as a structured array)")
            elif not (dt.kind in "iufb" or strings.is_string_dtype(dt)):
                self._warn(f"{word} attribute {name!r} has the unusual dtype {dt}")

    def _check_graphs(self, h5: h5py.File, axis: int) -> None:
        word = fmt.AXIS_NAMES[axis]
        groups = [g for g in (fmt.GRAPH_GROUPS[axis], fmt.LEGACY_GRAPH_GROUPS[axis]) if g in h5]
        if not groups:
            self._warn(f"the group {fmt.GRAPH_GROUPS[axis]} is missing (read as empty)")
        for group in groups:
            for name, graph in h5[group].items():
                if not isinstance(graph, h5py.Group):
                    self._warn(f"{group}/{name} is not a graph group and is ignored")
                    continue
                missing = [v for v in "abw" if not isinstance(graph.get(v), h5py.Dataset)]
                if missing:
                    self._error(f"{word} graph {name!r} lacks the vector(s) {', '.join(missing)}")
                    continue
                lengths = {graph[v].shape for v in "abw"}
                if len(lengths) != 1:
                    self._error(f"{word} graph {name!r} has vectors a, b, w of different lengths")
                for v in "ab":
                    if np.dtype(graph[v].dtype).kind not in _VERTEX_KINDS:
                        self._error(
                            f"{word} graph {name!r} vector {v} has dtype {graph[v].dtype}, not integer"
                        )
                if np.dtype(graph["w"].dtype).kind not in "iuf":
                    self._error(f"{word} graph {name!r} weights have dtype {graph['w'].dtype}, not numbers")


# --- reading everything (check_deep) ----------------------------------------------------------------


def problems_of(what: str, action: Callable[[], object]) -> list[str]:
    """No problem if ``action()`` runs; else the error that stopped it, naming ``what``."""
    try:
        action()
    except (LoomError, *_HDF5_ERRORS) as e:
        return [f"{what} cannot be read ({e})"]
    return []


def _collect_datasets(group: h5py.Group, into: list[h5py.Dataset], seen: set[int]) -> None:
    """The datasets under ``group``, each once (following hard links only). Not ``visititems``:
    HDF5's object visit measures each dataset's chunk index, and can crash on a damaged one."""
    for name in group:
        link = group.id.links.get_info(name.encode() if isinstance(name, str) else name)
        if link.type != h5py.h5l.TYPE_HARD or link.u in seen:
            continue
        seen.add(link.u)
        obj = group[name]
        if isinstance(obj, h5py.Dataset):
            into.append(obj)
        elif isinstance(obj, h5py.Group):
            _collect_datasets(obj, into, seen)


def dataset_problems(dset: h5py.Dataset) -> list[str]:
    """What is wrong with one dataset's chunk index, else with its data. The index is walked by
    loomfile's own parser first: HDF5 can crash walking a damaged one (a node that is its own child)."""
    try:
        if dset.chunks is not None and dset.file.driver == "sec2":
            chunk_records(dset, dset.file.id.get_vfd_handle())
        return index_problems(dset) or data_problems(dset)
    except (LoomError, *_HDF5_ERRORS) as e:
        return [f"{dset.name} cannot be read ({e})"]


def index_problems(dset: h5py.Dataset) -> list[str]:
    """What is wrong with a chunked dataset's chunk index as HDF5 iterates it: chunks off the chunk
    grid, listed twice, outside the file, or not where HDF5's own lookup finds them."""
    if dset.chunks is None or dset.ndim == 0:
        return []
    found: list[Any] = []
    dset.id.chunk_iter(found.append)
    chunks = np.array(dset.chunks, dtype=np.int64)
    grid = -(-np.array(dset.shape, dtype=np.int64) // chunks)
    fd = dset.file.id.get_vfd_handle() if dset.file.driver == "sec2" else None
    end = file_size(fd) if fd is not None else None
    problems, seen = [], set()
    for info in found:
        where = tuple(int(x) for x in info.chunk_offset)
        cell = tuple((np.array(where) // chunks).tolist())
        if any(w % c for w, c in zip(where, chunks.tolist(), strict=True)) or any(
            not 0 <= g < n for g, n in zip(cell, grid.tolist(), strict=True)
        ):
            problems.append(f"the chunk index of {dset.name} lists a chunk off the chunk grid at {where}")
        elif cell in seen:
            problems.append(f"the chunk index of {dset.name} lists chunk {cell} twice")
        elif end is not None and info.byte_offset + info.size > end:
            problems.append(f"chunk {cell} of {dset.name} lies beyond the end of the file: it is truncated")
        elif not _found_by_lookup(dset, where, info, fd):
            problems.append(
                f"the chunk index of {dset.name} is out of order: HDF5 does not find chunk {cell}"
            )
        seen.add(cell)
    return _first(problems)


def _found_by_lookup(dset: h5py.Dataset, where: tuple[int, ...], info: Any, fd: int | None) -> bool:
    """Whether HDF5's own lookup of the chunk at ``where`` (the B-tree descent every read makes)
    reaches the chunk the index lists there: the same stored bytes. (``get_chunk_info_by_coord``
    would say it directly, but HDF5 2.0 answers it by iterating the whole index: quadratic over a
    layer, 8 minutes for 160 MB.)"""
    try:
        _, data = dset.id.read_direct_chunk(where)
    except _HDF5_ERRORS:
        return False
    if len(data) != info.size:
        return False
    return fd is None or os.pread(fd, info.size, info.byte_offset) == bytes(data)


def data_problems(dset: h5py.Dataset) -> list[str]:
    """Chunks of ``dset`` that do not decode: through the engine when it reads the dataset (every
    chunk decoded, a row of chunks at a time), else through h5py."""
    layout = layout_of(dset) if dset.ndim in (1, 2) else None
    if layout is None:
        return _h5py_problems(dset)
    problems: list[str] = []
    every = np.arange(layout.grid[1])
    for row in range(layout.grid[0]):
        try:
            layout.decode_row(row, every)
        except LoomFormatError:
            problems += _chunk_problems(layout, row)
    return _first(problems)


def _chunk_problems(layout: ChunkLayout, row: int) -> list[str]:
    problems = []
    for col in range(layout.grid[1]):
        try:
            layout.decode_row(row, np.array([col]))
        except LoomFormatError as e:
            problems.append(str(e))
    return problems


def _h5py_problems(dset: h5py.Dataset) -> list[str]:
    """Bands of chunk rows h5py cannot read (or the whole dataset, unchunked)."""
    if dset.ndim == 0 or dset.chunks is None:
        return problems_of(dset.name, lambda: dset[()])
    step = int(dset.chunks[0])
    problems = []
    for lo in range(0, int(dset.shape[0]), step):
        band = slice(lo, lo + step)
        problems += problems_of(f"rows {lo}..{lo + step} of {dset.name}", partial(dset.__getitem__, band))
    return _first(problems)


def _first(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_REPORTED:
        return problems
    return [*problems[:MAX_REPORTED], f"... and {len(problems) - MAX_REPORTED} more like these"]
