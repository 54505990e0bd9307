"""Structural validation of Loom files, from metadata only (no matrix data is read).

Lenient by design: what real tools write (loomR's variable-length ASCII, SCENIC's compound column
attributes, fixed-length bytes in spec-3 files, extra groups, odd version attributes) is accepted,
at most with a warning. Errors are reserved for files no reader can use correctly.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from . import _format as fmt
from ._errors import LoomError, LoomFormatError
from ._store import open_h5

_VERTEX_KINDS = "iu"


class LoomValidator:
    """Check a file against the Loom format; collect ``errors`` and ``warnings`` (lists of str).

    Examples
    --------
    >>> v = LoomValidator()
    >>> v.validate("data.loom")
    True
    >>> v.warnings
    []
    """

    def __init__(self, version: str | None = None) -> None:
        self.version = version
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.summary: list[str] = []

    def validate(self, path: str | os.PathLike[str], strictness: str = "speconly") -> bool:
        """True if the file has no errors (see ``errors`` and ``warnings`` afterwards)."""
        self.errors, self.warnings, self.summary = [], [], []
        try:
            h5 = open_h5(os.fspath(path), "r")
        except (OSError, ValueError, LoomError) as e:
            self.errors.append(str(e))
            return False
        with h5:
            try:
                self.validate_spec(h5)
            except (OSError, RuntimeError, KeyError, ValueError) as e:
                self.errors.append(f"the file's HDF5 metadata cannot be read ({e})")
        return not self.errors

    def check(self, path: str | os.PathLike[str]) -> None:
        """Raise :class:`LoomFormatError` listing the errors if the file is not a usable Loom file."""
        if not self.validate(path):
            if len(self.errors) == 1 and not os.path.exists(os.fspath(path)):
                from ._errors import LoomNotFoundError

                raise LoomNotFoundError(self.errors[0])
            problems = "; ".join(self.errors)
            msg = f"'{os.fspath(path)}' is not a valid Loom file: {problems}"
            raise LoomFormatError(msg)

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
            elif not (dt.kind in "iufb" or fmt.is_string_dtype(dt)):
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
                missing = [v for v in "abw" if v not in graph]
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
