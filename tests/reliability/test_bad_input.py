"""Bad input, across the public API: every case raises a loomfile error naming the problem, and
leaves every file in the folder byte for byte as it was (issue 6, "Bad input").

Each row of ``CASES`` is an operation on a fresh copy of the folder the ``workdir`` fixture
provides (see conftest.py), the loomfile error class it must raise and a regex its message must
match. ``ACCEPTED`` lists the inputs loomfile converts explicitly instead of refusing (see
docs/input-rules.md); those must round-trip.

The same operations are run against loompy 3.0.8 (``import loompy``) and recorded in the session's
loompy report, never failing the suite: a case counts as handled cleanly by loompy when it raises
an exception of a builtin class the loomfile error also derives from (so ``except ValueError``
code would catch it), not a NoneType crash, and leaves the folder unchanged; an accepted input
counts when loompy reads back exactly what was written.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import os
import re
import signal
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import loompy
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
from loomfile import (
    LoomClosedError,
    LoomError,
    LoomFormatError,
    LoomKeyError,
    LoomNotFoundError,
    LoomReadOnlyError,
    LoomValueError,
    SelectionError,
)

N_ROWS, N_COLS = 12, 10
SUITE = "bad input"
LOOMPY_SECONDS = (
    5  # a loompy case still running after this counts as not handled (scan with batch_size=0 loops forever)
)


@dataclass(frozen=True)
class Env:
    """Where a case runs: the library under test and the folder of files (see conftest.py)."""

    lib: Any
    dir: Path

    def path(self, name: str = "main.loom") -> str:
        return os.fspath(self.dir / name)

    @property
    def out(self) -> str:
        """A file that does not exist yet (a new file must not appear when an operation fails)."""
        return self.path("made.loom")


Act = Callable[[Env], object]


@dataclass(frozen=True)
class Case:
    id: str
    act: Act
    error: type[LoomError]
    match: str


# --- building blocks ----------------------------------------------------------------------------------


def rw(fn: Callable[[Any], object], name: str = "main.loom") -> Act:
    """``fn(ds)`` on a read/write connection."""

    def act(env: Env) -> None:
        with env.lib.connect(env.path(name), "r+") as ds:
            fn(ds)

    return act


def ro(fn: Callable[[Any], object]) -> Act:
    """``fn(ds)`` on a read-only connection."""

    def act(env: Env) -> None:
        with env.lib.connect(env.path(), "r") as ds:
            fn(ds)

    return act


def closed(fn: Callable[[Any], object]) -> Act:
    """``fn(ds)`` on a connection already closed."""

    def act(env: Env) -> None:
        ds = env.lib.connect(env.path())
        ds.close()
        fn(ds)

    return act


def matrix(n_rows: int = N_ROWS, n_cols: int = N_COLS, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).poisson(2.0, (n_rows, n_cols)).astype(np.float32)


def with_value(value: float, n_rows: int = N_ROWS, n_cols: int = N_COLS) -> np.ndarray:
    m = matrix(n_rows, n_cols)
    m[3, 4] = value
    return m


def row_attrs(n: int = N_ROWS) -> dict[str, Any]:
    return {"Gene": np.array([f"g{i}" for i in range(n)], dtype=object)}


def col_attrs(n: int = N_COLS) -> dict[str, Any]:
    return {"CellID": np.array([f"new{j}" for j in range(n)], dtype=object)}


def create(
    layers: Any = None, ra: Any = None, ca: Any = None, *, target: str | None = None, **kw: Any
) -> Act:
    """``lib.create`` of a new file (or over ``target`` in the folder, which must stay as it was)."""

    def act(env: Env) -> None:
        path = env.out if target is None else env.path(target)
        env.lib.create(
            path,
            matrix() if layers is None else layers,
            row_attrs() if ra is None else ra,
            col_attrs() if ca is None else ca,
            **kw,
        )

    return act


def ragged() -> list[list[float]]:
    return [[1.0, 2.0], [3.0]]


def mixed(n: int, *values: Any) -> list[Any]:
    """A list of ``n`` strings whose first items are ``values``."""
    return [*values, *[f"v{i}" for i in range(n - len(values))]]


def coo(a: list[int], b: list[int], n: int) -> sparse.coo_matrix:
    return sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))


def ones_graph(n: int) -> sparse.coo_matrix:
    return coo(list(range(n)), list(range(n)), n)


def mask(n: int) -> np.ndarray:
    return np.ones(n, dtype=bool)


setitem, delitem = operator.setitem, operator.delitem


def scan(ds: Any, **kw: Any) -> None:
    for _ in ds.scan(**kw):
        pass


def permute(ordering: Any, axis: int) -> Callable[[Any], object]:
    return lambda ds: ds.permute(ordering, axis=axis)


def view_then(fn: Callable[[Any], object]) -> Callable[[Any], object]:
    """``fn`` on a 2 x 2 view of the file."""
    return lambda ds: fn(ds.view[0:2, 0:2])


def closed_layer_write(env: Env) -> None:
    ds = env.lib.connect(env.path())
    layer = ds.layers["spliced"]
    ds.close()
    layer[0, 0] = 1


def closed_view_manager(env: Env) -> None:
    ds = env.lib.connect(env.path())
    views = ds.view
    ds.close()
    views[0:2, 0:2]


def new_left_empty(env: Env) -> None:
    with env.lib.new(env.out):
        pass


def new_with_bad_attr(env: Env) -> None:
    env.lib.new(env.out, file_attrs={"a/b": "x"}).close()


def export_to(layer: str | None = None, fmt: str = "tab", target: str = "out.tsv") -> Act:
    def act(env: Env) -> None:
        with env.lib.connect(env.path()) as ds:
            ds.export(env.path(target), layer=layer, format=fmt)

    return act


def add_loom(name: str, **kw: Any) -> Act:
    def act(env: Env) -> None:
        with env.lib.connect(env.path()) as ds:
            ds.add_loom(env.path(name), **kw)

    return act


def combine(names: list[str], *, faster: bool = False, out: str = "made.loom", **kw: Any) -> Act:
    def act(env: Env) -> None:
        function = env.lib.combine_faster if faster else env.lib.combine
        function([env.path(n) for n in names], env.path(out), **kw)

    return act


def create_append(layers: Any, ra: Any, ca: Any, target: str = "main.loom") -> Act:
    def act(env: Env) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            env.lib.create_append(env.path(target), layers, ra, ca)

    return act


def connect(name: str, mode: str = "r+", **kw: Any) -> Act:
    def act(env: Env) -> None:
        env.lib.connect(env.path(name), mode, **kw).close()

    return act


def quietly(method: Callable[..., object], *args: Any, **kw: Any) -> None:
    """A deprecated loompy method, its DeprecationWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        method(*args, **kw)


def set_edges(a: list[int], b: list[int], w: list[float]) -> Callable[[Any], object]:
    return lambda ds: quietly(ds.set_edges, "E", np.array(a), np.array(b), np.array(w), axis=1)


# --- the cases ------------------------------------------------------------------------------------------

V, K, F, S = LoomValueError, LoomKeyError, LoomFormatError, SelectionError
RO, CL, NF = LoomReadOnlyError, LoomClosedError, LoomNotFoundError
NAN, INF = float("nan"), float("inf")

OPENING = [
    Case("connect missing file", connect("nope.loom"), NF, r"nope\.loom.*not found"),
    Case("connect missing file read-only", connect("nope.loom", "r"), NF, r"nope\.loom.*not found"),
    Case("connect missing file unvalidated", connect("nope.loom", validate=False), NF, r"nope\.loom"),
    Case("connect directory", connect("folder.loom"), F, r"folder\.loom.*directory"),
    Case("connect text file", connect("notes.txt"), F, r"notes\.txt.*not an HDF5"),
    Case("connect empty file", connect("empty.loom"), F, r"empty\.loom.*not an HDF5"),
    Case("connect HDF5 without matrix", connect("plain.h5"), F, r"plain\.h5.*matrix"),
    Case("connect truncated file", connect("truncated.loom", "r"), F, r"truncated\.loom"),
    Case("connect attribute of wrong length", connect("bad_attr.loom"), F, r"Score.*9"),
    Case("connect mode w", connect("main.loom", "w"), V, r"'r' or 'r\+'.*'w'"),
    Case("connect mode a", connect("main.loom", "a"), V, r"'r' or 'r\+'.*'a'"),
]

CREATION = [
    Case("create NaN", create(with_value(NAN)), V, r"main matrix.*NaN"),
    Case("create +Inf", create(with_value(INF)), V, r"main matrix.*infinite"),
    Case("create -Inf", create(with_value(-INF)), V, r"main matrix.*infinite"),
    Case("create sparse NaN", create(sparse.csr_matrix(with_value(NAN))), V, r"main matrix.*NaN"),
    Case("create NaN in layer", create({"": matrix(), "x": with_value(NAN)}), V, r"'x'.*NaN"),
    Case("create NaN over existing file", create(with_value(NAN), target="main.loom"), V, r"NaN"),
    Case("create no rows", create(np.zeros((0, N_COLS)), row_attrs(0)), V, r"empty.*\(0, 10\)"),
    Case("create no columns", create(np.zeros((N_ROWS, 0)), ca=col_attrs(0)), V, r"empty.*\(12, 0\)"),
    Case("create 0 x 0", create(np.zeros((0, 0)), row_attrs(0), col_attrs(0)), V, r"empty.*\(0, 0\)"),
    Case("create 1-D matrix", create(np.arange(10.0)), V, r"2-D.*\(10,\)"),
    Case("create 3-D matrix", create(np.zeros((N_ROWS, N_COLS, 2))), V, r"2-D.*\(12, 10, 2\)"),
    Case(
        "create None matrix",
        lambda env: env.lib.create(env.out, None, row_attrs(), col_attrs()),
        V,
        r"main matrix.*None",
    ),
    Case("create string matrix", create(matrix().astype(str)), V, r"main matrix.*dtype <U"),
    Case("create object matrix", create(matrix().astype(object)), V, r"main matrix.*dtype object"),
    Case("create bool matrix", create(matrix() > 1), V, r"main matrix.*dtype bool"),
    Case("create complex matrix", create(matrix() + 1j), V, r"main matrix.*complex"),
    Case("create ragged matrix", create(ragged()), V, r"main matrix.*ragged"),
    Case("create layer of other shape", create({"": matrix(), "x": matrix(3, 3)}), V, r"'x'.*\(3, 3\)"),
    Case("create without main matrix", create({"x": matrix()}), V, r"main matrix"),
    Case("create row attribute too short", create(ra={"Gene": np.arange(11)}), V, r"'Gene'.*11.*12 rows"),
    Case("create column attribute too long", create(ca={"C": np.arange(11)}), V, r"'C'.*11.*10 columns"),
    Case("create attribute name with /", create(ra={"a/b": np.arange(12)}), V, r"'a/b'.*'/'"),
    Case("create empty attribute name", create(ca={"": np.arange(10)}), V, r"name cannot be empty"),
    Case("create attribute name with NUL", create(ca={"a\x00": np.arange(10)}), V, r"NUL"),
    Case("create layer name with /", create({"": matrix(), "a/b": matrix()}), V, r"'a/b'.*'/'"),
    Case("create layer name with NUL", create({"": matrix(), "a\x00b": matrix()}), V, r"NUL"),
    Case("create ragged attribute", create(ra={"R": [[1], [1, 2]] * 6}), V, r"'R'.*ragged"),
    Case("create attribute with NUL string", create(ca={"C": mixed(10, "a\x00b")}), V, r"'C'.*NUL"),
    Case("create complex attribute", create(ca={"C": np.ones(10) * 1j}), V, r"'C'.*complex"),
    Case("create attribute of dicts", create(ca={"C": [{"a": 1}] * 10}), V, r"'C'.*dict"),
    Case("create global attribute with /", create(file_attrs={"a/b": 1}), V, r"'a/b'.*'/'"),
    Case("create global attribute None", create(file_attrs={"t": None}), V, r"'t'.*None"),
    Case("create into a directory", create(target="folder.loom"), F, r"folder\.loom.*directory"),
    Case("create in a missing folder", create(target="nowhere/made.loom"), NF, r"nowhere.*does not exist"),
    Case("new left empty", new_left_empty, V, r"made\.loom.*empty"),
    Case("new global attribute with /", new_with_bad_attr, V, r"'a/b'.*'/'"),
    Case(
        "create_append rows mismatch",
        create_append(matrix(5, 3), row_attrs(5), col_attrs(3)),
        V,
        r"5 rows.*12",
    ),
    Case(
        "create_append NaN",
        create_append(with_value(NAN, N_ROWS, 5), row_attrs(), col_attrs(5), target="made.loom"),
        V,
        r"NaN",
    ),
]

FILE_OPERATIONS = [
    Case("combine missing input", combine(["main.loom", "nope.loom"]), NF, r"nope\.loom"),
    Case("combine rows mismatch", combine(["main.loom", "fewer_rows.loom"]), V, r"5 rows.*12"),
    Case("combine non-HDF5 input", combine(["main.loom", "notes.txt"]), F, r"notes\.txt"),
    Case(
        "combine into a directory",
        combine(["main.loom", "same_rows.loom"], out="folder.loom"),
        F,
        r"directory",
    ),
    Case("combine empty list", combine([]), V, r"empty"),
    Case("combine missing key", combine(["main.loom", "same_rows.loom"], key="Nope"), K, r"'Nope'"),
    Case("combine missing layer", combine(["main.loom", "no_spliced.loom"]), V, r"spliced"),
    Case("combine_faster rows mismatch", combine(["main.loom", "fewer_rows.loom"], faster=True), V, r"5"),
    Case(
        "combine_faster selection length",
        combine(["main.loom", "same_rows.loom"], faster=True, selections=[mask(10), mask(3)]),
        V,
        r"selection.*\(3,\).*4 columns",
    ),
    Case("add_loom missing file", add_loom("nope.loom"), NF, r"nope\.loom"),
    Case("add_loom rows mismatch", add_loom("fewer_rows.loom"), V, r"5 rows.*12"),
    Case("add_loom missing layer", add_loom("no_spliced.loom"), V, r"spliced"),
    Case("add_loom missing key", add_loom("same_rows.loom", key="Nope"), K, r"'Nope'"),
    Case("add_loom text file", add_loom("notes.txt"), F, r"notes\.txt"),
    Case("add_loom directory", add_loom("folder.loom"), F, r"folder\.loom"),
    Case(
        "add_columns rows mismatch",
        rw(lambda ds: ds.add_columns({"": matrix(5, 3), "spliced": matrix(5, 3)}, col_attrs(3))),
        V,
        r"5 rows.*12",
    ),
    Case(
        "add_columns NaN",
        rw(lambda ds: ds.add_columns({"": with_value(NAN, 12, 5), "spliced": matrix(12, 5)}, col_attrs(5))),
        V,
        r"main matrix.*NaN",
    ),
    Case(
        "add_columns attribute length",
        rw(lambda ds: ds.add_columns({"": matrix(12, 3), "spliced": matrix(12, 3)}, col_attrs(4))),
        V,
        r"'CellID'.*4.*3",
    ),
    Case(
        "add_columns missing layer",
        rw(lambda ds: ds.add_columns({"": matrix(12, 3)}, col_attrs(3))),
        V,
        r"spliced",
    ),
    Case(
        "add_columns unknown layer",
        rw(lambda ds: ds.add_columns({"": matrix(12, 3), "spliced": matrix(12, 3), "z": matrix(12, 3)}, {})),
        V,
        r"'z'",
    ),
    Case(
        "add_columns complex",
        rw(lambda ds: ds.add_columns({"": matrix(12, 3) + 1j, "spliced": matrix(12, 3)}, col_attrs(3))),
        V,
        r"main matrix.*complex",
    ),
    Case(
        "add_columns bool",
        rw(lambda ds: ds.add_columns({"": matrix(12, 3) > 0, "spliced": matrix(12, 3)}, col_attrs(3))),
        V,
        r"main matrix.*bool",
    ),
    Case(
        "add_columns no columns",
        rw(lambda ds: ds.add_columns({"": matrix(12, 0), "spliced": matrix(12, 0)}, col_attrs(0))),
        V,
        r"empty",
    ),
    Case(
        "add_columns layers disagree",
        rw(lambda ds: ds.add_columns({"": matrix(12, 3), "spliced": matrix(12, 4)}, col_attrs(3))),
        V,
        r"'spliced'.*4 columns",
    ),
    Case(
        "add_columns negative into uint16",
        rw(lambda ds: ds.add_columns({"": matrix(12, 3), "spliced": -matrix(12, 3) - 1}, col_attrs(3))),
        V,
        r"'spliced'.*uint16",
    ),
]

MATRIX_READS = [
    Case("read row out of range", rw(lambda ds: ds[12, :]), S, r"row index 12.*12 rows"),
    Case("read column out of range", rw(lambda ds: ds[:, -11]), S, r"column index -11.*10 columns"),
    Case("read list out of range", rw(lambda ds: ds[[0, 99], :]), S, r"row index 99"),
    Case("read short row mask", rw(lambda ds: ds[mask(11), :]), S, r"row mask has 11.*12 rows"),
    Case("read long column mask", rw(lambda ds: ds[:, mask(11)]), S, r"column mask has 11.*10 columns"),
    Case("read float index", rw(lambda ds: ds[1.5, :]), S, r"row ind.*float"),
    Case("read float array index", rw(lambda ds: ds[np.array([0.5]), :]), S, r"row ind.*float"),
    Case("read three axes", rw(lambda ds: ds[0, 0, 0]), S, r"two axes.*3"),
    Case("read 2-D index", rw(lambda ds: ds[np.array([[0, 1]]), :]), S, r"row.*one-dimensional"),
    Case("read string column index", rw(lambda ds: ds[:, "c1"]), S, r"column.*string.*'c1'"),
    Case("read missing layer", rw(lambda ds: ds["nope"]), K, r"layer.*'nope'"),
    Case("read layer out of range", rw(lambda ds: ds.layers["spliced"][:, 10]), S, r"column index 10"),
    Case("read layer short mask", rw(lambda ds: ds.layers["spliced"][mask(3), :]), S, r"row mask has 3"),
]

MATRIX_WRITES = [
    Case("write NaN", rw(lambda ds: setitem(ds, (0, 0), NAN)), V, r"main matrix.*NaN"),
    Case("write Inf block", rw(lambda ds: setitem(ds, (slice(0, 2), slice(0, 2)), INF)), V, r"infinite"),
    Case(
        "write wrong shape",
        rw(lambda ds: setitem(ds, (slice(0, 2), slice(0, 2)), np.ones((3, 3)))),
        V,
        r"shape \(3, 3\).*\(2, 2\)",
    ),
    Case("write string", rw(lambda ds: setitem(ds, (0, 0), "a")), V, r"main matrix.*numbers.*<U1"),
    Case("write complex", rw(lambda ds: setitem(ds, (0, 0), 1j)), V, r"main matrix.*numbers.*complex"),
    Case("write None", rw(lambda ds: setitem(ds, (0, 0), None)), V, r"main matrix.*numbers.*object"),
    Case("write ragged", rw(lambda ds: setitem(ds, (slice(0, 2), 0), ragged())), V, r"main matrix.*ragged"),
    Case("write row out of range", rw(lambda ds: setitem(ds, (12, 0), 1)), S, r"row index 12"),
    Case("write short column mask", rw(lambda ds: setitem(ds, (0, mask(9)), 1)), S, r"column mask has 9"),
    Case(
        "write overflow into uint16",
        rw(lambda ds: setitem(ds.layers["spliced"], (0, 0), 70000)),
        V,
        r"'spliced'.*uint16.*70000",
    ),
    Case(
        "write negative into uint16",
        rw(lambda ds: setitem(ds.layers["spliced"], (0, 0), -1)),
        V,
        r"'spliced'.*uint16.*-1",
    ),
    Case(
        "write fraction into uint16",
        rw(lambda ds: setitem(ds.layers["spliced"], (0, 0), 0.5)),
        V,
        r"'spliced'.*fractional",
    ),
    Case(
        "write NaN into layer",
        rw(lambda ds: setitem(ds.layers["spliced"], (0, slice(None)), NAN)),
        V,
        r"'spliced'.*NaN",
    ),
]

LAYERS = [
    Case("layer of other shape", rw(lambda ds: setitem(ds.layers, "x", matrix(3, 3))), V, r"'x'.*\(3, 3\)"),
    Case("layer NaN", rw(lambda ds: setitem(ds.layers, "x", with_value(NAN))), V, r"'x'.*NaN"),
    Case(
        "layer sparse Inf",
        rw(lambda ds: setitem(ds.layers, "x", sparse.csc_matrix(with_value(INF)))),
        V,
        r"'x'.*infinite",
    ),
    Case("layer bool", rw(lambda ds: setitem(ds.layers, "x", matrix() > 1)), V, r"'x'.*bool"),
    Case("layer complex", rw(lambda ds: setitem(ds.layers, "x", matrix() * 1j)), V, r"'x'.*complex"),
    Case("layer strings", rw(lambda ds: setitem(ds.layers, "x", matrix().astype(str))), V, r"'x'.*<U"),
    Case("layer objects", rw(lambda ds: setitem(ds.layers, "x", matrix().astype(object))), V, r"'x'.*object"),
    Case("layer empty", rw(lambda ds: setitem(ds.layers, "x", np.zeros((0, 0)))), V, r"'x'.*empty"),
    Case("layer 1-D", rw(lambda ds: setitem(ds.layers, "x", np.zeros(N_COLS))), V, r"'x'.*2-D"),
    Case("layer ragged", rw(lambda ds: setitem(ds.layers, "x", ragged())), V, r"'x'.*ragged"),
    Case("layer name with /", rw(lambda ds: setitem(ds.layers, "a/b", matrix())), V, r"'a/b'.*'/'"),
    Case("layer name with NUL", rw(lambda ds: setitem(ds.layers, "a\x00", matrix())), V, r"NUL"),
    Case("layer name ..", rw(lambda ds: setitem(ds.layers, "..", matrix())), V, r"'\.\.'.*not allowed"),
    Case("layer name not a string", rw(lambda ds: setitem(ds.layers, 3, matrix())), V, r"strings.*int"),
    Case("layer bad dtype name", rw(lambda ds: setitem(ds.layers, "x", "notadtype")), V, r"'notadtype'"),
    Case("layer bool dtype name", rw(lambda ds: setitem(ds.layers, "x", "bool")), V, r"'x'.*bool"),
    Case("set_layer NaN", rw(lambda ds: quietly(ds.set_layer, "x", with_value(NAN))), V, r"'x'.*NaN"),
    Case("layer get missing", rw(lambda ds: ds.layers["nope"]), K, r"layer.*'nope'"),
    Case("layer attribute missing", rw(lambda ds: ds.layers.nope), K, r"layer.*'nope'"),
    Case("layer delete missing", rw(lambda ds: delitem(ds.layers, "nope")), K, r"layer.*'nope'"),
    Case("layer delete main matrix", rw(lambda ds: delitem(ds.layers, "")), V, r"main matrix.*deleted"),
    Case("layer replace main with other shape", rw(lambda ds: setitem(ds, "", matrix(3, 3))), V, r"\(3, 3\)"),
]

ATTRIBUTES = [
    Case("ra too short", rw(lambda ds: setitem(ds.ra, "X", np.arange(11))), V, r"'X'.*11 values.*12 rows"),
    Case("ca too long", rw(lambda ds: setitem(ds.ca, "X", np.arange(11))), V, r"'X'.*11 values.*10 col"),
    Case("ca 2-D too short", rw(lambda ds: setitem(ds.ca, "X", np.ones((9, 2)))), V, r"'X'.*9 values"),
    Case("ca mixes str and bytes", rw(lambda ds: setitem(ds.ca, "X", mixed(10, b"b"))), V, r"'X'.*bytes"),
    Case("ca bytes not UTF-8", rw(lambda ds: setitem(ds.ca, "X", [b"\xff"] * 10)), V, r"'X'.*UTF-8"),
    Case("ra ragged", rw(lambda ds: setitem(ds.ra, "X", [[1], [1, 2]] * 6)), V, r"'X'.*ragged"),
    Case("ra NUL in string", rw(lambda ds: setitem(ds.ra, "X", mixed(12, "a\x00"))), V, r"'X'.*NUL"),
    Case("ca NUL in bytes", rw(lambda ds: setitem(ds.ca, "X", [b"a\x00b"] * 10)), V, r"'X'.*NUL"),
    Case("ra name with /", rw(lambda ds: setitem(ds.ra, "a/b", np.arange(12))), V, r"'a/b'.*'/'"),
    Case("ca empty name", rw(lambda ds: setitem(ds.ca, "", np.arange(10))), V, r"name cannot be empty"),
    Case("ca name with NUL", rw(lambda ds: setitem(ds.ca, "a\x00", np.arange(10))), V, r"NUL"),
    Case("ra name not a string", rw(lambda ds: setitem(ds.ra, 5, np.arange(12))), V, r"strings.*int"),
    Case("ra scalar", rw(lambda ds: setattr(ds.ra, "X", 5)), V, r"'X'.*scalar"),
    Case("ca complex", rw(lambda ds: setattr(ds.ca, "X", np.ones(10) * 1j)), V, r"'X'.*complex"),
    Case(
        "ca datetimes",
        rw(lambda ds: setitem(ds.ca, "X", np.arange(10).astype("datetime64[D]"))),
        V,
        r"'X'.*datetime64",
    ),
    Case("attrs bytes not UTF-8", rw(lambda ds: setitem(ds.attrs, "t", b"\xfe\xff")), V, r"'t'.*UTF-8"),
    Case(
        "set_attr of wrong length",
        rw(lambda ds: quietly(ds.set_attr, "X", np.arange(3), axis=1)),
        V,
        r"'X'.*3 values",
    ),
    Case("set_attr axis 2", rw(lambda ds: quietly(ds.set_attr, "X", np.arange(10), axis=2)), V, r"axis.*2"),
    Case("ra objects", rw(lambda ds: setitem(ds.ra, "X", [object()] * 12)), V, r"'X'.*object"),
    Case("ra set", rw(lambda ds: setitem(ds.ra, "X", set(range(12)))), V, r"'X'"),
    Case("ra get missing", rw(lambda ds: ds.ra["nope"]), K, r"row attribute.*'nope'"),
    Case("ca attribute missing", rw(lambda ds: ds.ca.nope), K, r"column attribute.*'nope'"),
    Case("ca delete missing", rw(lambda ds: delitem(ds.ca, "nope")), K, r"column attribute.*'nope'"),
    Case("ra delattr missing", rw(lambda ds: delattr(ds.ra, "nope")), K, r"row attribute.*'nope'"),
    Case("ra stack missing", rw(lambda ds: ds.ra["nope", "nada"]), K, r"'nope'.*'nada'"),
    Case("ra index out of range", rw(lambda ds: ds.ra[99]), S, r"row index 99"),
    Case("ca short mask", rw(lambda ds: ds.ca[mask(3)]), S, r"column mask has 3"),
    Case("ca default of wrong length", rw(lambda ds: ds.ca.get("nope", np.zeros(3))), V, r"'nope'.*10"),
    Case("attrs None", rw(lambda ds: setitem(ds.attrs, "t", None)), V, r"'t'.*None"),
    Case("attrs name with /", rw(lambda ds: setitem(ds.attrs, "a/b", 1)), V, r"'a/b'.*'/'"),
    Case("attrs empty name", rw(lambda ds: setitem(ds.attrs, "", 1)), V, r"name cannot be empty"),
    Case("attrs NUL in value", rw(lambda ds: setitem(ds.attrs, "t", "a\x00b")), V, r"'t'.*NUL"),
    Case("attrs ragged", rw(lambda ds: setitem(ds.attrs, "t", [[1], [1, 2]])), V, r"'t'.*ragged"),
    Case("attrs dict", rw(lambda ds: setitem(ds.attrs, "t", {"a": 1})), V, r"'t'.*dict"),
    Case("attrs complex", rw(lambda ds: setattr(ds.attrs, "t", 1j)), V, r"'t'.*complex"),
    Case("attrs get missing", rw(lambda ds: ds.attrs["nope"]), K, r"global attribute.*'nope'"),
    Case("attrs attribute missing", rw(lambda ds: ds.attrs.nope), K, r"global attribute.*'nope'"),
    Case("attrs delete missing", rw(lambda ds: delitem(ds.attrs, "nope")), K, r"global attribute.*'nope'"),
]

GRAPHS = [
    Case(
        "graph vertex out of range",
        rw(lambda ds: setitem(ds.col_graphs, "G", coo([0], [10], 11))),
        V,
        r"\(10, 10\).*\(11, 11\)",
    ),
    Case("set_edges vertex out of range", rw(set_edges([0, 1], [1, 10], [1.0, 1.0])), V, r"'E'.*10"),
    Case("set_edges negative vertex", rw(set_edges([0, -1], [1, 2], [1.0, 1.0])), V, r"'E'.*-1"),
    Case("set_edges lengths differ", rw(set_edges([0, 1], [1], [1.0, 1.0])), V, r"'E'"),
    Case(
        "graph not square", rw(lambda ds: setitem(ds.col_graphs, "G", np.ones((10, 9)))), V, r"'G'.*\(10, 9\)"
    ),
    Case(
        "graph NaN weight", rw(lambda ds: setitem(ds.row_graphs, "G", ones_graph(12) * NAN)), V, r"'G'.*NaN"
    ),
    Case(
        "graph complex weights",
        rw(lambda ds: setitem(ds.col_graphs, "G", np.eye(10) * 1j)),
        V,
        r"'G'.*complex",
    ),
    Case("graph strings", rw(lambda ds: setitem(ds.col_graphs, "G", np.eye(10).astype(str))), V, r"'G'.*<U"),
    Case("graph ragged", rw(lambda ds: setitem(ds.col_graphs, "G", ragged())), V, r"'G'.*ragged"),
    Case("graph 1-D", rw(lambda ds: setitem(ds.col_graphs, "G", np.ones(10))), V, r"'G'.*2-D"),
    Case("graph name with /", rw(lambda ds: setitem(ds.col_graphs, "a/b", ones_graph(10))), V, r"'a/b'.*'/'"),
    Case(
        "graph empty name", rw(lambda ds: setitem(ds.row_graphs, "", ones_graph(12))), V, r"cannot be empty"
    ),
    Case("graph get missing", rw(lambda ds: ds.col_graphs["nope"]), K, r"column graph.*'nope'"),
    Case("graph attribute missing", rw(lambda ds: ds.row_graphs.nope), K, r"row graph.*'nope'"),
    Case("graph delete missing", rw(lambda ds: delitem(ds.col_graphs, "nope")), K, r"column graph.*'nope'"),
    Case("graph index out of range", rw(lambda ds: ds.col_graphs[99]), S, r"column index 99"),
    Case(
        "graph stored out of range",
        rw(lambda ds: ds.col_graphs["KNN"], "bad_graph.loom"),
        F,
        r"'KNN'.*0\.\.9",
    ),
    Case("graph stored out of range in view", rw(lambda ds: ds.view[:, 0:2], "bad_graph.loom"), F, r"'KNN'"),
]

VIEWS = [
    Case("view row out of range", rw(lambda ds: ds.view[99, :]), S, r"row index 99"),
    Case("view short column mask", rw(lambda ds: ds.view[:, mask(3)]), S, r"column mask has 3"),
    Case("view one axis", rw(lambda ds: ds.view[0:2]), S, r"both axes"),
    Case(
        "view layer of other shape",
        rw(view_then(lambda v: setitem(v.layers, "x", np.ones((3, 3))))),
        V,
        r"'x'.*\(3, 3\)",
    ),
    Case(
        "view layer strings",
        rw(view_then(lambda v: setitem(v.layers, "x", np.full((2, 2), "a")))),
        V,
        r"'x'.*<U1",
    ),
    Case(
        "view layer NaN",
        rw(view_then(lambda v: setitem(v.layers, "x", np.full((2, 2), NAN)))),
        V,
        r"'x'.*NaN",
    ),
    Case("view write NaN", rw(view_then(lambda v: setitem(v.layers[""], (0, 0), NAN))), V, r"NaN"),
    Case("view permute duplicate", rw(view_then(lambda v: v.permute([0, 0], axis=0))), V, r"permutation"),
    Case("view read out of range", rw(view_then(lambda v: v[5, 0])), S, r"row index 5.*2 rows"),
    Case("view missing attribute", rw(view_then(lambda v: v.ca.nope)), K, r"'nope'"),
]

OPERATIONS = [
    Case("scan axis 2", rw(lambda ds: scan(ds, axis=2)), V, r"axis"),
    Case("scan items out of range", rw(lambda ds: scan(ds, axis=1, items=[99])), S, r"column index 99"),
    Case("scan short mask", rw(lambda ds: scan(ds, axis=0, items=mask(3))), S, r"row mask has 3"),
    Case("scan float items", rw(lambda ds: scan(ds, axis=0, items=np.array([0.5]))), S, r"row ind.*float"),
    Case("scan batch size 0", rw(lambda ds: scan(ds, axis=0, batch_size=0)), V, r"batch_size.*0"),
    Case("scan missing key", rw(lambda ds: scan(ds, axis=0, key="nope")), S, r"'nope'"),
    Case("scan missing layer", rw(lambda ds: scan(ds, axis=0, layers=["nope"])), K, r"layer.*'nope'"),
    Case("scan without layers", rw(lambda ds: scan(ds, axis=0, what=["col_attrs"])), V, r"'layers'"),
    Case("map axis 2", rw(lambda ds: ds.map([np.mean], axis=2)), V, r"axis.*2"),
    Case("map a function", rw(lambda ds: ds.map(np.mean)), V, r"list of functions"),
    Case("map selection out of range", rw(lambda ds: ds.map([np.mean], axis=0, selection=[99])), S, r"99"),
    Case("permute duplicate", rw(permute([0] * N_COLS, 1)), V, r"permutation.*10 column"),
    Case("permute too short", rw(permute(np.arange(5), 0)), V, r"permutation.*12 row"),
    Case("permute floats", rw(permute(np.arange(10.0), 1)), V, r"integers.*float"),
    Case("permute axis 2", rw(permute(np.arange(10), 2)), V, r"axis.*2"),
    Case("permute out of range", rw(permute(np.arange(1, 11), 1)), V, r"permutation.*0\.\.9"),
    Case("aggregate missing attribute", rw(lambda ds: ds.aggregate(group_by="nope")), K, r"'nope'"),
    Case(
        "aggregate unknown function",
        rw(lambda ds: ds.aggregate(group_by="Cluster", aggr_by="avg")),
        V,
        r"'avg'",
    ),
    Case(
        "aggregate missing layer", rw(lambda ds: ds.aggregate(group_by="Cluster", layer="nope")), K, r"'nope'"
    ),
    Case(
        "aggregate labels of wrong length",
        rw(lambda ds: ds.aggregate(group_by=np.zeros(3, int))),
        V,
        r"\(3,\)",
    ),
    Case("export into a directory", export_to(target="folder.loom"), F, r"folder\.loom.*directory"),
    Case("export into a missing folder", export_to(target="nowhere/out.tsv"), NF, r"nowhere.*does not exist"),
    Case(
        "aggregate into a directory",
        lambda env: rw(lambda ds: ds.aggregate(env.path("folder.loom"), group_by="Cluster"))(env),
        F,
        r"folder\.loom.*directory",
    ),
    Case("export missing layer", export_to(layer="nope"), K, r"'nope'"),
    Case("export unknown format", export_to(fmt="csv"), V, r"'csv'"),
    Case("sparse rows out of range", rw(lambda ds: ds.sparse(rows=np.array([99]))), S, r"row index 99"),
    Case("sparse short mask", rw(lambda ds: ds.sparse(cols=mask(3))), S, r"column mask has 3"),
    Case("sparse missing layer", rw(lambda ds: ds.sparse(layer="nope")), K, r"'nope'"),
    Case("changes since None", rw(lambda ds: ds.get_changes_since(None)), V, r"timestamp.*None"),
    Case("changes since a number", rw(lambda ds: ds.get_changes_since(20240101)), V, r"timestamp.*20240101"),
    Case("changes since garbage", rw(lambda ds: ds.get_changes_since("yesterday")), V, r"'yesterday'"),
]

READ_ONLY = [
    Case("read-only matrix write", ro(lambda ds: setitem(ds, (0, 0), 1)), RO, r"main\.loom.*read-only"),
    Case("read-only layer write", ro(lambda ds: setitem(ds.layers["spliced"], (0, 0), 1)), RO, r"read-only"),
    Case("read-only new layer", ro(lambda ds: setitem(ds.layers, "x", matrix())), RO, r"'x'.*read-only"),
    Case("read-only delete layer", ro(lambda ds: delitem(ds.layers, "spliced")), RO, r"'spliced'.*read-only"),
    Case("read-only ra", ro(lambda ds: setitem(ds.ra, "X", np.arange(12))), RO, r"'X'.*read-only"),
    Case("read-only ca attribute", ro(lambda ds: setattr(ds.ca, "X", np.arange(10))), RO, r"'X'.*read-only"),
    Case("read-only delete ca", ro(lambda ds: delitem(ds.ca, "CellID")), RO, r"'CellID'.*read-only"),
    Case("read-only attrs", ro(lambda ds: setitem(ds.attrs, "t", "x")), RO, r"'t'.*read-only"),
    Case("read-only delete attrs", ro(lambda ds: delitem(ds.attrs, "title")), RO, r"'title'.*read-only"),
    Case(
        "read-only graph", ro(lambda ds: setitem(ds.col_graphs, "G", ones_graph(10))), RO, r"'G'.*read-only"
    ),
    Case("read-only delete graph", ro(lambda ds: delitem(ds.col_graphs, "KNN")), RO, r"'KNN'.*read-only"),
    Case("read-only permute", ro(permute(np.arange(10)[::-1], 1)), RO, r"permute.*read-only"),
    Case(
        "read-only add_columns",
        ro(lambda ds: ds.add_columns({"": matrix(12, 2), "spliced": matrix(12, 2)}, col_attrs(2))),
        RO,
        r"read-only",
    ),
    Case("read-only add_loom", ro(lambda ds: ds.add_loom(ds.filename)), RO, r"read-only"),
]

CLOSED = [
    Case("closed read", closed(lambda ds: ds[0, 0]), CL, r"main\.loom.*closed"),
    Case("closed write", closed(lambda ds: setitem(ds, (0, 0), 1)), CL, r"closed"),
    Case("closed shape", closed(lambda ds: ds.shape), CL, r"closed"),
    Case("closed ra", closed(lambda ds: ds.ra["Gene"]), CL, r"closed"),
    Case("closed ca attribute", closed(lambda ds: ds.ca.CellID), CL, r"closed"),
    Case("closed ra write", closed(lambda ds: setitem(ds.ra, "X", np.arange(12))), CL, r"closed"),
    Case("closed ca delete", closed(lambda ds: delitem(ds.ca, "CellID")), CL, r"closed"),
    Case("closed ca length", closed(lambda ds: len(ds.ca)), CL, r"closed"),
    Case("closed ra contains", closed(lambda ds: "Gene" in ds.ra), CL, r"closed"),
    Case("closed layers keys", closed(lambda ds: ds.layers.keys()), CL, r"closed"),
    Case("closed layer", closed(lambda ds: ds.layers["spliced"]), CL, r"closed"),
    Case("closed layer object", closed_layer_write, CL, r"closed"),
    Case("closed attrs", closed(lambda ds: ds.attrs["title"]), CL, r"closed"),
    Case("closed attrs write", closed(lambda ds: setitem(ds.attrs, "t", "x")), CL, r"closed"),
    Case("closed graph", closed(lambda ds: ds.col_graphs["KNN"]), CL, r"closed"),
    Case("closed view", closed(lambda ds: ds.view[0:2, 0:2]), CL, r"closed"),
    Case("closed view manager", closed_view_manager, CL, r"closed"),
    Case("closed scan", closed(lambda ds: scan(ds, axis=0)), CL, r"closed"),
    Case("closed map", closed(lambda ds: ds.map([np.mean])), CL, r"closed"),
    Case("closed sparse", closed(lambda ds: ds.sparse()), CL, r"closed"),
    Case("closed permute", closed(permute(np.arange(10), 1)), CL, r"closed"),
    Case(
        "closed add_columns",
        closed(lambda ds: ds.add_columns({"": matrix(12, 2), "spliced": matrix(12, 2)}, col_attrs(2))),
        CL,
        r"closed",
    ),
    Case("closed changes", closed(lambda ds: ds.get_changes_since("20000101T000000.000000Z")), CL, r"closed"),
    Case("closed last_modified", closed(lambda ds: ds.last_modified()), CL, r"closed"),
    Case("closed aggregate", closed(lambda ds: ds.aggregate(group_by="Cluster")), CL, r"closed"),
    Case("closed export", closed(lambda ds: ds.export(ds.filename + ".tsv")), CL, r"closed"),
]

CASES: list[Case] = [
    *OPENING,
    *CREATION,
    *FILE_OPERATIONS,
    *MATRIX_READS,
    *MATRIX_WRITES,
    *LAYERS,
    *ATTRIBUTES,
    *GRAPHS,
    *VIEWS,
    *OPERATIONS,
    *READ_ONLY,
    *CLOSED,
]


# --- accepted inputs: converted explicitly, and read back as documented ------------------------------------

MEGABYTE = "é" * (1 << 19) + "x" * (1 << 19)  # 1 MiB of text (1.5 MB in UTF-8)


@dataclass(frozen=True)
class Accepted:
    """``write(ds)`` must succeed; afterwards ``read(ds)`` (on a new connection) equals ``expected``."""

    id: str
    write: Callable[[Any], object]
    read: Callable[[Any], Any]
    expected: Any


ACCEPTED = [
    Accepted(
        "1 MB string in a row attribute",
        lambda ds: setitem(ds.ra, "Big", np.array([MEGABYTE] * N_ROWS, dtype=object)),
        lambda ds: ds.ra["Big"],
        np.array([MEGABYTE] * N_ROWS, dtype=object),
    ),
    Accepted(
        "1 MB string in a global attribute",
        lambda ds: setitem(ds.attrs, "big", MEGABYTE),
        lambda ds: ds.attrs["big"],
        MEGABYTE,
    ),
    Accepted(
        "bytes in a column attribute become str",
        lambda ds: setitem(ds.ca, "B", [f"b{j}é".encode() for j in range(N_COLS)]),
        lambda ds: ds.ca["B"],
        np.array([f"b{j}é" for j in range(N_COLS)], dtype=object),
    ),
    Accepted(
        "bool column attribute becomes uint8",
        lambda ds: setitem(ds.ca, "B", np.arange(N_COLS) % 2 == 0),
        lambda ds: (ds.ca["B"].dtype.kind, ds.ca["B"].tolist()),
        ("u", [1, 0] * (N_COLS // 2)),
    ),
    Accepted(
        "ints and floats in one attribute become float",
        lambda ds: setitem(ds.ra, "N", [1, 2.5, *range(N_ROWS - 2)]),
        lambda ds: (ds.ra["N"].dtype.kind, ds.ra["N"].tolist()),
        ("f", [1.0, 2.5, *map(float, range(N_ROWS - 2))]),
    ),
    Accepted(
        "NaN in a float attribute is kept",
        lambda ds: setitem(ds.ca, "F", np.r_[NAN, np.ones(N_COLS - 1)]),
        lambda ds: np.isnan(ds.ca["F"]).tolist(),
        [True] + [False] * (N_COLS - 1),
    ),
]


# --- converted inputs: stored as loompy 3.0.8 stores them, with one warning ----------------------------------


@dataclass(frozen=True)
class Converted:
    """``act`` must succeed with exactly one UserWarning matching ``warns``; the last values of the
    dataset ``where`` = (file, path) in the folder, read with h5py, are then ``expected`` (the text
    loompy 3.0.8 stores: ``str()`` of each value)."""

    id: str
    act: Act
    where: tuple[str, str]
    expected: list[str]
    warns: str


def texts(*values: str, n: int) -> list[str]:
    """``values`` followed by the text ``mixed`` fills in up to ``n`` values."""
    return [*values, *[f"v{i}" for i in range(n - len(values))]]


CONVERTED = [
    Converted(
        "create attribute with None",
        create(ca={"C": mixed(10, None)}),
        ("made.loom", "col_attrs/C"),
        texts("None", n=10),
        r"^Column attribute 'C': 1 value converted to text \(None -> \"None\"\)$",
    ),
    Converted(
        "create attribute mixing str and int",
        create(ca={"C": mixed(10, 1)}),
        ("made.loom", "col_attrs/C"),
        texts("1", n=10),
        r"^Column attribute 'C': 1 value converted to text \(1 -> \"1\"\)$",
    ),
    Converted(
        "add_columns None attribute",
        rw(
            lambda ds: ds.add_columns(
                {"": matrix(12, 3), "spliced": matrix(12, 3)},
                {"CellID": ["n0", None, "n2"], "Cluster": np.arange(3), "Score": np.ones(3)},
            )
        ),
        ("main.loom", "col_attrs/CellID"),
        ["n0", "None", "n2"],
        r"'CellID': 1 value converted to text \(None -> \"None\"\)$",
    ),
    Converted(
        "ra None",
        rw(lambda ds: setitem(ds.ra, "X", mixed(12, None))),
        ("main.loom", "row_attrs/X"),
        texts("None", n=12),
        r"^Row attribute 'X': 1 value converted to text \(None -> \"None\"\)$",
    ),
    Converted(
        "ca all None",
        rw(lambda ds: setitem(ds.ca, "X", [None] * 10)),
        ("main.loom", "col_attrs/X"),
        ["None"] * 10,
        r"^Column attribute 'X': 10 values converted to text \(None -> \"None\"\)$",
    ),
    Converted(
        "ca None in object array",
        rw(lambda ds: setitem(ds.ca, "X", np.array(mixed(10, None)))),
        ("main.loom", "col_attrs/X"),
        texts("None", n=10),
        r"^Column attribute 'X': 1 value converted to text \(None -> \"None\"\)$",
    ),
    Converted(
        "ca mixes str and int",
        rw(lambda ds: setitem(ds.ca, "X", mixed(10, 1))),
        ("main.loom", "col_attrs/X"),
        texts("1", n=10),
        r"^Column attribute 'X': 1 value converted to text \(1 -> \"1\"\)$",
    ),
    Converted(
        "ca mixes str and float",
        rw(lambda ds: setitem(ds.ca, "X", mixed(10, 2.5, NAN))),
        ("main.loom", "col_attrs/X"),
        texts("2.5", "nan", n=10),
        r"^Column attribute 'X': 2 values converted to text \(2.5 -> \"2.5\", nan -> \"nan\"\)$",
    ),
    Converted(
        "attrs mixed list",
        rw(lambda ds: setitem(ds.attrs, "t", ["a", 1])),
        ("main.loom", "attrs/t"),
        ["a", "1"],
        r"^Global attribute 't': 1 value converted to text \(1 -> \"1\"\)$",
    ),
]


def stored_text(folder: Path, where: tuple[str, str], n: int) -> list[Any]:
    """The last ``n`` values of a dataset, bytes decoded, as h5py reads them."""
    with h5py.File(folder / where[0], "r") as h5:
        values = h5[where[1]][()].tolist()
    return [v.decode() if isinstance(v, bytes) else v for v in values][-n:]


# --- running a case -------------------------------------------------------------------------------------


class Overtime(BaseException):
    """A loompy case ran past LOOMPY_SECONDS (a BaseException, so no ``except Exception`` eats it)."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise Overtime

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_quietly(act: Act, env: Env) -> Exception | None:
    """The exception ``act`` raised (None if none), loompy's warnings silenced, within the time limit."""
    with time_limit(LOOMPY_SECONDS), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            act(env)
        except Exception as e:
            return e
        finally:
            gc.collect()  # closes what loompy left open before the folder is read
    return None


def builtin_bases(error: type[Exception]) -> tuple[type[BaseException], ...]:
    """The builtin exception classes ``error`` derives from (what code written for loompy catches)."""
    skip = (Exception, BaseException, object)
    return tuple(c for c in error.__mro__ if c.__module__ == "builtins" and c not in skip)


def loompy_outcome(case: Case, folder: Path, snapshot: Callable[[Path], dict[str, str]]) -> str:
    """The outcome of a case for loompy: "clean", or what went wrong."""
    before = snapshot(folder)
    try:
        error = run_quietly(case.act, Env(loompy, folder))
    except Overtime:
        return f"still running after {LOOMPY_SECONDS} s"
    problems = []
    if error is None:
        problems.append("no error")
    elif not isinstance(error, builtin_bases(case.error)) or "NoneType" in str(error):
        problems.append(f"{type(error).__name__}: {str(error).splitlines()[0][:100] if str(error) else ''}")
    if snapshot(folder) != before:
        problems.append("files changed")
    return "; ".join(problems) or "clean"


@pytest.fixture(scope="module", autouse=True)
def quick_gc() -> Iterator[None]:
    """Every case collects garbage (closing files a library left open) before the folder is read;
    objects alive before the module's first test (loompy, numba, scipy...) are left out of those
    collections, which then take microseconds instead of ~70 ms."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# --- the tests --------------------------------------------------------------------------------------------


def test_case_table() -> None:
    ids = [c.id for c in CASES] + [a.id for a in ACCEPTED] + [c.id for c in CONVERTED]
    assert len(set(ids)) == len(ids), "case ids must be distinct"
    assert len(CASES) >= 120


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case,
    workdir_factory: Callable[[str], Path],
    snapshot: Callable[[Path], dict[str, str]],
    loompy_report: Any,
) -> None:
    loompy_report.record(SUITE, case.id, loompy_outcome(case, workdir_factory("loompy"), snapshot))

    folder = workdir_factory("loomfile")
    before = snapshot(folder)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(case.error, match=case.match):
        warnings.simplefilter("always")
        case.act(Env(loomfile, folder))
    gc.collect()
    assert snapshot(folder) == before
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []


def same_values(actual: Any, expected: Any) -> bool:
    """Equal values (arrays compared item by item, whatever their dtype)."""
    if isinstance(expected, np.ndarray):
        return isinstance(actual, np.ndarray) and actual.tolist() == expected.tolist()
    return bool(actual == expected)


def same(actual: Any, expected: Any) -> bool:
    """Equal values, and arrays of the same dtype (strings come back as object arrays of str)."""
    dtype_ok = not isinstance(expected, np.ndarray) or actual.dtype == expected.dtype
    return same_values(actual, expected) and dtype_ok


def round_trip(lib: Any, case: Accepted, folder: Path) -> Any:
    path = os.fspath(folder / "main.loom")
    with lib.connect(path) as ds:
        case.write(ds)
    with lib.connect(path, "r") as ds:
        return case.read(ds)


@pytest.mark.parametrize("case", ACCEPTED, ids=[a.id for a in ACCEPTED])
def test_accepted_input_round_trips(
    case: Accepted, workdir_factory: Callable[[str], Path], loompy_report: Any
) -> None:
    try:
        with time_limit(LOOMPY_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = round_trip(loompy, case, workdir_factory("loompy"))
        outcome = "clean" if same_values(back, case.expected) else f"read back {str(back)[:60]!r}"
    except Overtime:
        outcome = f"still running after {LOOMPY_SECONDS} s"
    except Exception as e:
        outcome = f"{type(e).__name__}: {str(e)[:100]}"
    loompy_report.record(SUITE, case.id, outcome)

    assert same(round_trip(loomfile, case, workdir_factory("loomfile")), case.expected)


@pytest.mark.parametrize("case", CONVERTED, ids=[c.id for c in CONVERTED])
def test_converted_input_is_stored_as_loompy_stores_it_and_warned_once(
    case: Converted, workdir_factory: Callable[[str], Path], loompy_report: Any
) -> None:
    folder = workdir_factory("loompy")
    try:
        error = run_quietly(case.act, Env(loompy, folder))
        back = None if error is not None else stored_text(folder, case.where, len(case.expected))
        outcome = f"{type(error).__name__}: {error}"[:100] if error else "clean"
        if back is not None and back != case.expected:
            outcome = f"stored {str(back)[:60]}"
    except Overtime:
        outcome = f"still running after {LOOMPY_SECONDS} s"
    loompy_report.record(SUITE, case.id, outcome)

    folder = workdir_factory("loomfile")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        case.act(Env(loomfile, folder))
    user = [w for w in caught if issubclass(w.category, UserWarning)]
    assert len(user) == 1, [str(w.message) for w in user]
    assert re.search(case.warns, str(user[0].message)), str(user[0].message)
    assert user[0].filename == __file__  # the warning points at the caller's line, not at loomfile
    assert stored_text(folder, case.where, len(case.expected)) == case.expected


def test_add_columns_warns_of_dropped_attributes_when_it_drops_them(workdir: Path) -> None:
    """The other half of the "no warning" check in test_bad_input: a call that succeeds without
    some column attributes warns, and they are gone."""
    path = os.fspath(workdir / "main.loom")
    with loomfile.connect(path) as ds, pytest.warns(UserWarning, match=r"dropped.*'Cluster', 'Score'"):
        ds.add_columns({"": matrix(N_ROWS, 2), "spliced": matrix(N_ROWS, 2)}, col_attrs(2))
    with h5py.File(path, "r") as h5:
        assert sorted(h5["col_attrs"]) == ["CellID"]
        assert h5["matrix"].shape == (N_ROWS, N_COLS + 2)
