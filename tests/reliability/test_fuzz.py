"""Fuzzing: random sequences of public API calls against an in-memory model, and random damage to
the bytes of a few seed files.

The stateful test keeps a connection open and applies creates, layer writes, attribute writes and
deletions, add_columns, permute, reopening and views, in any order; after every step the file must
agree with a model made of numpy arrays and dicts (shapes, attribute lengths, every value). The byte
fuzz mutates seed files (several changed bytes, zeroed runs, cuts) and reads each copy in a worker
process (see ``test_corrupt``): a loomfile error or data, never a crash, hang or foreign exception.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from test_corrupt import WRITERS, run_attempts, seed_data

import loomfile

NAMES = st.sampled_from(["a", "b", "Clusters", "x_1", "Total"])
LAYER_DTYPES = st.sampled_from(["float32", "int32", "uint16", "float64"])


def _values(draw_seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(draw_seed)
    return rng.integers(0, 50, shape).astype(dtype)


def _attr(seed: int, n: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "str":
        return np.array([f"s{v}é" for v in rng.integers(0, 1000, n)], dtype=object)
    if kind == "int":
        return rng.integers(-5, 5, n).astype(np.int64)
    return rng.normal(size=n)


class LoomModel(RuleBasedStateMachine):
    """A Loom file and its model: ``layers`` (name -> 2-D array), ``ra``/``ca`` (name -> 1-D array)."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(os.environ.get("LOOMFILE_FUZZ_DIR", "/tmp"))
        self.path = self.dir / f"fuzz-{os.getpid()}-{id(self)}.loom"
        self.layers: dict[str, np.ndarray] = {}
        self.attrs: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
        self.ds: loomfile.LoomConnection | None = None

    @initialize(rows=st.integers(1, 30), cols=st.integers(1, 30), seed=st.integers(0, 2**16))
    def create(self, rows: int, cols: int, seed: int) -> None:
        matrix = _values(seed, (rows, cols), "float32")
        genes, cells = _attr(seed, rows, "str"), _attr(seed + 1, cols, "str")
        loomfile.create(self.path, matrix, {"Gene": genes}, {"CellID": cells})
        self.layers = {"": matrix}
        self.attrs = ({"Gene": genes}, {"CellID": cells})
        self.ds = loomfile.connect(self.path)

    @property
    def shape(self) -> tuple[int, int]:
        return self.layers[""].shape  # type: ignore[return-value]

    @rule(name=NAMES, dtype=LAYER_DTYPES, seed=st.integers(0, 2**16))
    def add_layer(self, name: str, dtype: str, seed: int) -> None:
        assert self.ds is not None
        values = _values(seed, self.shape, dtype)
        self.ds.layers[name] = values
        self.layers[name] = values

    @rule(data=st.data(), seed=st.integers(0, 2**16))
    def write_block(self, data: st.DataObject, seed: int) -> None:
        assert self.ds is not None
        name = data.draw(st.sampled_from(sorted(self.layers)))
        r0 = data.draw(st.integers(0, self.shape[0] - 1))
        r1 = data.draw(st.integers(r0 + 1, self.shape[0]))
        c0 = data.draw(st.integers(0, self.shape[1] - 1))
        c1 = data.draw(st.integers(c0 + 1, self.shape[1]))
        block = _values(seed, (r1 - r0, c1 - c0), str(self.layers[name].dtype))
        self.ds.layers[name][r0:r1, c0:c1] = block
        self.layers[name][r0:r1, c0:c1] = block

    @rule(
        axis=st.integers(0, 1), name=NAMES, kind=st.sampled_from(["str", "int", "float"]), seed=st.integers()
    )
    def set_attribute(self, axis: int, name: str, kind: str, seed: int) -> None:
        assert self.ds is not None
        values = _attr(seed % 2**32, self.shape[axis], kind)
        (self.ds.ra if axis == 0 else self.ds.ca)[name] = values
        self.attrs[axis][name] = values

    @precondition(lambda self: len(self.attrs[0]) + len(self.attrs[1]) > 2)
    @rule(data=st.data())
    def delete_attribute(self, data: st.DataObject) -> None:
        assert self.ds is not None
        axis = data.draw(st.sampled_from([a for a in (0, 1) if len(self.attrs[a]) > 1]))
        name = data.draw(st.sampled_from(sorted(self.attrs[axis])))
        del (self.ds.ra if axis == 0 else self.ds.ca)[name]
        del self.attrs[axis][name]

    @rule(n=st.integers(1, 8), seed=st.integers(0, 2**16))
    def add_columns(self, n: int, seed: int) -> None:
        assert self.ds is not None
        new = {
            name: _values(seed + i, (self.shape[0], n), str(m.dtype))
            for i, (name, m) in enumerate(self.layers.items())
        }
        col_attrs = {
            name: _attr(seed, n, "str" if v.dtype == object else "int" if v.dtype.kind == "i" else "float")
            for name, v in self.attrs[1].items()
        }
        self.ds.add_columns(new, col_attrs)
        self.layers = {name: np.concatenate([m, new[name]], axis=1) for name, m in self.layers.items()}
        self.attrs[1].update(
            {name: np.concatenate([v, col_attrs[name]]) for name, v in self.attrs[1].items()}
        )

    @rule(axis=st.integers(0, 1), seed=st.integers(0, 2**16))
    def permute(self, axis: int, seed: int) -> None:
        assert self.ds is not None
        order = np.random.default_rng(seed).permutation(self.shape[axis])
        self.ds.permute(order, axis=axis)
        self.layers = {name: np.take(m, order, axis=axis) for name, m in self.layers.items()}
        for name, values in self.attrs[axis].items():
            self.attrs[axis][name] = values[order]

    @rule()
    def reopen(self) -> None:
        assert self.ds is not None
        self.ds.close()
        self.ds = loomfile.connect(self.path, "r+")

    @rule(data=st.data())
    def view(self, data: st.DataObject) -> None:
        assert self.ds is not None
        rows = data.draw(st.lists(st.integers(0, self.shape[0] - 1), min_size=1, max_size=6))
        cols = data.draw(st.lists(st.integers(0, self.shape[1] - 1), min_size=1, max_size=6))
        view = self.ds.view[np.array(rows), np.array(cols)]
        assert view.shape == (len(rows), len(cols))
        for name, m in self.layers.items():
            np.testing.assert_array_equal(view.layers[name][:, :], m[np.ix_(rows, cols)])
        for name, values in self.attrs[1].items():
            np.testing.assert_array_equal(view.ca[name], values[cols])

    @invariant()
    def agrees_with_model(self) -> None:
        if self.ds is None:
            return
        ds = self.ds
        assert ds.shape == self.shape
        assert sorted(ds.layers.keys()) == sorted(self.layers)
        for name, m in self.layers.items():
            stored = ds.layers[name][:, :]
            assert stored.dtype == m.dtype
            np.testing.assert_array_equal(stored, m)
        for axis, manager in ((0, ds.ra), (1, ds.ca)):
            assert sorted(manager.keys()) == sorted(self.attrs[axis])
            for name, values in self.attrs[axis].items():
                stored = manager[name]
                assert stored.shape[0] == self.shape[axis]
                np.testing.assert_array_equal(stored, values)

    def teardown(self) -> None:
        if self.ds is not None:
            self.ds.close()
        self.path.unlink(missing_ok=True)


def test_public_api_agrees_with_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOMFILE_FUZZ_DIR", os.fspath(tmp_path))
    run_state_machine_as_test(
        LoomModel,
        settings=settings(
            max_examples=50,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            derandomize=True,
        ),
    )


# --- byte fuzz ------------------------------------------------------------------------------------------


def _mutations(size: int, rng: np.random.Generator, count: int) -> list[dict[str, Any]]:
    """Random damage: several changed bytes, a zeroed or randomised run, or a cut."""
    attempts: list[dict[str, Any]] = []
    for i in range(count):
        style = i % 4
        if style == 3:
            attempts.append({"id": i, "truncate": int(rng.integers(size))})
            continue
        if style == 0:
            where = rng.integers(0, size, int(rng.integers(2, 9)))
        else:
            start = int(rng.integers(0, size - 1))
            where = np.arange(start, min(size, start + int(rng.integers(4, 256))))
        masks = rng.integers(1, 256, where.size)
        if style == 1:
            masks = np.zeros(where.size, dtype=np.int64)  # xor 0: set to zero below
        attempts.append({"id": i, "flips": [[int(w), int(m)] for w, m in zip(where, masks, strict=True)]})
    return attempts


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_random_damage_to_seed_files(tmp_path: Path, writer: str) -> None:
    seed = tmp_path / "seed.loom"
    WRITERS[writer](seed, seed_data(11))
    blob = seed.read_bytes()
    attempts = _mutations(len(blob), np.random.default_rng(8), 200)
    for attempt in attempts:  # zeroed runs: xor with the byte itself
        for flip in attempt.get("flips", []):
            if flip[1] == 0:
                flip[1] = blob[flip[0]] or 0xFF
    report = run_attempts(seed, attempts)
    assert not report.crashes, list(report.crashes.items())[:3]
    foreign = [a for a in report.answers.values() if a["result"] == "foreign"]
    assert not foreign, foreign[:5]
    results = {a["result"] for a in report.answers.values()}
    assert "error" in results
