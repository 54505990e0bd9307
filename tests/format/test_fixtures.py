"""Interop fixtures (files written by loompy 2/3, anndata, and velocyto/loomR/SCENIC layouts).

Expectations come from the JSON manifests next to each file, and from raw h5py reads decoded
independently here; invalid fixtures must be refused with a loomfile error, not a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
from looms import FIXTURES

REPO = Path(__file__).resolve().parents[2]
_NUMERIC_REF = re.compile(r"&#(?:x([0-9a-fA-F]+)|([0-9]+));")


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    if not FIXTURES.is_dir():
        return []
    return [(p, json.loads(p.read_text())) for p in sorted(FIXTURES.glob("*.json"))]


def _params(valid: bool) -> list[Any]:
    """One pytest param per fixture."""
    found = [
        pytest.param(
            FIXTURES / m["file"],
            m,
            id=m["file"],
        )
        for _, m in _manifests()
        if m["valid"] is valid
    ]
    return found or [pytest.param(None, None, marks=pytest.mark.skip(reason=f"no fixtures in {FIXTURES}"))]


VALID = _params(True)
INVALID = _params(False)


# --- independent decoding --------------------------------------------------------------------------


def unescape_numeric_refs(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        hexa, dec = match.groups()
        return chr(int(hexa, 16) if hexa is not None else int(dec))

    return _NUMERIC_REF.sub(one, text)


def decode_raw(raw: Any, dtype: np.dtype) -> Any:
    """Raw h5py values as text: bytes are UTF-8; strings declared ASCII may carry numeric references."""
    info = h5py.check_string_dtype(dtype)
    if info is None and not isinstance(raw, bytes | np.bytes_):
        return raw
    ascii_declared = info is None or info.encoding == "ascii"

    def text(item: Any) -> str:
        s = bytes(item).decode("utf-8") if isinstance(item, bytes | np.bytes_) else str(item)
        return unescape_numeric_refs(s) if ascii_declared else s

    if isinstance(raw, np.ndarray):
        return np.array([text(x) for x in raw.ravel()], dtype=object).reshape(raw.shape)
    return text(raw)


def raw_globals(h5: h5py.File) -> dict[str, Any]:
    if "attrs" in h5:
        return {k: decode_raw(d[()], d.dtype) for k, d in h5["attrs"].items()}
    return {k: decode_raw(h5.attrs[k], h5.attrs.get_id(k).dtype) for k in h5.attrs if k != "last_modified"}


def strhash(values: Any) -> str:
    """The digest check.py computes for a string attribute."""
    return hashlib.sha1("\x1f".join(str(v) for v in values).encode()).hexdigest()


def close(a: float, b: float, tol: float = 1e-6) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def assert_same_value(got: Any, want: Any, what: str) -> None:
    if isinstance(want, np.ndarray) and want.dtype.names is not None:
        assert isinstance(got, np.ndarray) and got.dtype.names == want.dtype.names, what
        for field in want.dtype.names:
            np.testing.assert_array_equal(got[field], want[field], err_msg=f"{what}[{field}]")
    elif isinstance(want, np.ndarray) and want.ndim > 0:
        assert isinstance(got, np.ndarray), f"{what} is {type(got).__name__}"
        assert got.shape == want.shape, what
        if want.dtype == object:
            assert got.ravel().tolist() == want.ravel().tolist(), what
            assert all(type(v) is str for v in got.ravel()), f"{what} holds non-str values"
        else:
            np.testing.assert_array_equal(got, want, err_msg=what)
    elif isinstance(want, str):
        assert isinstance(got, str), f"{what} is {type(got).__name__}, not str"
        assert got == want, what
    else:
        assert np.asarray(got).tolist() == np.asarray(want).tolist(), what


# --- against the manifests -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "manifest"), VALID)
def test_fixture_matches_manifest(path: Path, manifest: dict[str, Any]) -> None:
    with loomfile.connect(path, "r") as ds:
        assert list(ds.shape) == manifest["shape"]
        assert set(manifest["layers"]) <= set(ds.layers.keys())
        for name, spec in manifest["layers"].items():
            values = np.asarray(ds.layers[name][:, :])
            assert str(values.dtype) == spec["dtype"], name
            assert values.shape == tuple(manifest["shape"])
            assert close(float(values.astype(np.float64).sum()), spec["sum"]), name
            np.testing.assert_allclose(values[:3, :3].astype(np.float64), np.array(spec["corner"]))
        for axis, manager in (("row_attrs", ds.ra), ("col_attrs", ds.ca)):
            for name, spec in manifest[axis].items():
                values = manager[name]
                assert isinstance(values, np.ndarray), f"{axis} {name}"
                assert list(values.shape) == spec["shape"], f"{axis} {name}"
                if spec["kind"] == "str":
                    assert all(type(v) is str for v in values), f"{axis} {name} holds non-str values"
                    assert [str(v) for v in values[:5]] == spec["head"], f"{axis} {name}"
                    assert strhash(values) == spec["sha1"], f"{axis} {name} differs beyond the head"
                else:
                    assert close(float(np.asarray(values, np.float64).sum()), spec["sum"]), f"{axis} {name}"
        for name, want in manifest["attrs"].items():
            got = ds.attrs[name]
            if isinstance(want, list):
                np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
            elif isinstance(want, str):
                assert got == want, name
            else:
                assert close(float(got), float(want)), name
        for axis, manager in (("row_graphs", ds.row_graphs), ("col_graphs", ds.col_graphs)):
            want_graphs = manifest["graphs"].get(axis, {})
            assert sorted(manager.keys()) == sorted(want_graphs)
            n = manifest["shape"][0 if axis == "row_graphs" else 1]
            for name, nnz in want_graphs.items():
                graph = manager[name]
                assert isinstance(graph, sparse.coo_matrix)
                assert graph.shape == (n, n)
                assert graph.nnz == nnz
        for name, spec in manifest.get("compound_col_attrs", {}).items():
            values = ds.ca[name]
            assert values.dtype.names is not None, name
            assert list(values.dtype.names) == spec["fields"]
            assert close(float(sum(values[f].sum() for f in spec["fields"])), spec["sum"]), name


# --- against raw h5py reads ------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "manifest"), VALID)
def test_fixture_matches_raw_hdf5(path: Path, manifest: dict[str, Any]) -> None:
    with h5py.File(path, "r") as h5:
        raw_layers = {"": h5["matrix"][()]}
        if "layers" in h5:
            raw_layers.update({k: d[()] for k, d in h5["layers"].items()})
        raw_attrs = [
            {k: decode_raw(d[()], d.dtype) for k, d in h5[group].items()} if group in h5 else {}
            for group in ("row_attrs", "col_attrs")
        ]
        raw_graphs = [
            {k: tuple(g[v][()] for v in "abw") for k, g in h5[group].items()} if group in h5 else {}
            for group in ("row_graphs", "col_graphs")
        ]
        globals_ = raw_globals(h5)
        shape = h5["matrix"].shape
    with loomfile.connect(path, "r") as ds:
        assert ds.shape == shape
        assert sorted(ds.layers.keys()) == sorted(raw_layers)
        for name, want in raw_layers.items():
            got = ds.layers[name][:, :]
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=f"layer {name!r}")
        for axis, manager in enumerate((ds.ra, ds.ca)):
            assert sorted(manager.keys()) == sorted(raw_attrs[axis])
            for name, want in raw_attrs[axis].items():
                assert_same_value(manager[name], want, f"axis {axis} attribute {name!r}")
        for axis, manager in enumerate((ds.row_graphs, ds.col_graphs)):
            assert sorted(manager.keys()) == sorted(raw_graphs[axis])
            for name, (a, b, w) in raw_graphs[axis].items():
                dense = np.zeros((shape[axis], shape[axis]))
                np.add.at(dense, (a, b), w)
                np.testing.assert_allclose(manager[name].toarray(), dense, err_msg=f"graph {name!r}")
        assert set(ds.attrs.keys()) - {"last_modified"} == set(globals_)
        for name, want in globals_.items():
            assert_same_value(ds.attrs[name], want, f"global attribute {name!r}")


# --- invalid fixtures ------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "manifest"), INVALID)
def test_invalid_fixture_is_refused_cleanly(path: Path, manifest: dict[str, Any]) -> None:
    with pytest.raises(loomfile.LoomError) as info, loomfile.connect(path, "r") as ds:
        ds[:, :]
    assert isinstance(info.value, OSError | ValueError), type(info.value).__mro__
    assert str(info.value).strip(), "the error has no message"
    assert path.name in str(info.value), "the message should name the file"


@pytest.mark.parametrize(("path", "manifest"), INVALID)
def test_invalid_fixture_without_validation_does_not_crash(path: Path, manifest: dict[str, Any]) -> None:
    """Even without the validator, reading must end in a loomfile error (checked in a child process)."""
    code = textwrap.dedent(
        f"""
        import sys, loomfile
        try:
            with loomfile.connect({os.fspath(path)!r}, "r", validate=False) as ds:
                ds[:, :]
        except loomfile.LoomError as e:
            print(type(e).__name__, e)
            sys.exit(3 if str(e) else 4)
        sys.exit(0)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr[-2000:])


@pytest.mark.parametrize(("path", "manifest"), INVALID)
def test_validator_rejects_invalid_fixture(path: Path, manifest: dict[str, Any]) -> None:
    validator = loomfile.LoomValidator()
    assert validator.validate(path) is False
    assert validator.errors


@pytest.mark.parametrize(("path", "manifest"), VALID)
def test_validator_accepts_valid_fixture(path: Path, manifest: dict[str, Any]) -> None:
    validator = loomfile.LoomValidator()
    assert validator.validate(path) is True, validator.errors
    assert validator.errors == []
