"""loomfile.testing: ``axis_keys`` draws every kind of key it names, only those asked for, within
its bounds; and ``import loomfile`` leaves hypothesis (a test extra) unimported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

import loomfile
from loomfile.testing import AXIS_KEY_KINDS, AxisKeyKind, axis_keys

FIND = settings(database=None, max_examples=2000)


def kind_of(key: Any) -> str:
    if isinstance(key, bool):
        return "bool"
    if isinstance(key, int):
        return "int"
    if isinstance(key, slice):
        return "slice"
    if isinstance(key, list):
        return "list"
    assert isinstance(key, np.ndarray) and key.ndim == 1
    return "mask" if key.dtype == bool else "array"


@pytest.mark.parametrize("n", [1, 20])
@pytest.mark.parametrize("kind", AXIS_KEY_KINDS)
def test_each_kind_is_drawn(kind: AxisKeyKind, n: int) -> None:
    found = find(axis_keys(n), lambda key: kind_of(key) == kind, settings=FIND)
    assert kind_of(found) == kind


def test_the_interesting_cases_are_drawn() -> None:
    """Negative ints and steps, repeated list entries, empty and non-empty runs."""
    n = 20
    assert find(axis_keys(n), lambda k: kind_of(k) == "int" and k < 0, settings=FIND) < 0
    s = find(axis_keys(n), lambda k: kind_of(k) == "slice" and (k.step or 1) < 0, settings=FIND)
    assert s.step < 0
    lst = find(axis_keys(n), lambda k: kind_of(k) == "list" and len(set(k)) < len(k), settings=FIND)
    assert len(set(lst)) < len(lst)
    assert find(axis_keys(n), lambda k: kind_of(k) == "array" and k.size == 0, settings=FIND).size == 0
    assert find(axis_keys(n), lambda k: kind_of(k) == "array" and k.size > 1, settings=FIND).size > 1


def check_bounds(key: Any, n: int, max_list: int, max_step: int) -> None:
    kind = kind_of(key)
    if kind == "int":
        assert -n <= key < n
    elif kind == "slice":
        for bound in (key.start, key.stop):
            assert bound is None or -n - 3 <= bound <= n + 3
        assert key.step is None or (key.step != 0 and abs(key.step) <= max_step)
    elif kind == "list":
        assert len(key) <= max_list
        assert all(isinstance(i, int) and -n <= i < n for i in key)
    elif kind == "mask":
        assert key.shape == (n,)
    else:
        assert key.dtype.kind == "i"
        if key.size:
            assert 0 <= key[0] < n and key[-1] < n
            np.testing.assert_array_equal(key, np.arange(key[0], key[0] + key.size))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_only_the_kinds_asked_for_within_bounds(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 80), label="n")
    kinds = data.draw(st.lists(st.sampled_from(AXIS_KEY_KINDS), min_size=1, unique=True), label="kinds")
    if n == 0 and kinds == ["int"]:
        return
    max_list = data.draw(st.integers(0, 30), label="max_list")
    max_step = data.draw(st.integers(1, 12), label="max_step")
    key = data.draw(axis_keys(n, kinds=kinds, max_list=max_list, max_step=max_step), label="key")
    assert kind_of(key) in set(kinds) - ({"int"} if n == 0 else set())
    check_bounds(key, n, max_list, max_step)
    np.atleast_1d(np.arange(n)[key])  # numpy accepts every key


def test_keys_select_from_a_loom_file(tmp_path: Path) -> None:
    m = np.arange(12 * 9, dtype=np.float32).reshape(12, 9)
    path = os.fspath(tmp_path / "m.loom")
    loomfile.create(path, m, {"Gene": np.arange(12)}, {"CellID": np.arange(9)})

    @settings(max_examples=60, deadline=None)
    @given(rows=axis_keys(12), cols=axis_keys(9))
    def check(rows: Any, cols: Any) -> None:
        r = np.atleast_1d(np.arange(12)[rows])
        c = np.atleast_1d(np.arange(9)[cols])
        expected = m[np.ix_(r, c)]
        if isinstance(rows, int):
            expected = expected[0]
        if isinstance(cols, int):
            expected = expected[..., 0]
        with loomfile.connect(path, "r") as ds:
            np.testing.assert_array_equal(ds[rows, cols], expected)

    check()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1}, "at least 0, not -1"),
        ({"n": 3, "kinds": ()}, "non-empty"),
        ({"n": 3, "kinds": ("int", "range")}, "'range'"),
        ({"n": 0, "kinds": ("int",)}, "length 0 has no int key"),
        ({"n": 3, "max_list": -1}, "max_list is at least 0"),
        ({"n": 3, "max_step": 0}, "max_step is at least 1"),
    ],
)
def test_bad_arguments_are_refused_when_the_strategy_is_made(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        axis_keys(**kwargs)


def test_an_empty_axis_has_keys_too() -> None:
    for kind in ("slice", "list", "mask", "array"):
        found = find(axis_keys(0), lambda key, kind=kind: kind_of(key) == kind, settings=FIND)
        assert np.arange(0)[found].size == 0


def test_import_loomfile_does_not_import_hypothesis() -> None:
    src = str(Path(loomfile.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    code = "import sys, loomfile; assert 'hypothesis' not in sys.modules, 'hypothesis imported'"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
