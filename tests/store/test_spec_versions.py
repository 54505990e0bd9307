"""Spec versions as entries of ``_format.versions.VERSIONS``: the store writes and reads each
version's layout through ``_store.elements``, and loompy 3.0.8 reads what it writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import loompy
import numpy as np
import pytest

import loomfile
from loomfile._format import versions
from loomfile._store.store import LoomStore

GENES = np.array(["Actb", "Gapdh", "Säure"], dtype=object)  # a non-ASCII name: escaped in spec 2


def _fill(path: Path, spec: versions.SpecVersion) -> None:
    """An empty file of version ``spec``, filled through the public API."""
    LoomStore.create_empty(str(path), spec)
    with loomfile.connect(path, "r+", validate=False) as ds:  # (no main matrix yet)
        ds.layers[""] = np.arange(12, dtype=np.float32).reshape(3, 4)
        ds.ra.Gene = GENES
        ds.ca.CellID = np.array([f"c{i}" for i in range(4)], dtype=object)
        ds.attrs.title = "Tëst"


@pytest.mark.parametrize("version", sorted(versions.VERSIONS))
def test_each_version_round_trips(tmp_path: Path, version: str) -> None:
    spec = versions.VERSIONS[version]
    path = tmp_path / "v.loom"
    _fill(path, spec)
    with loomfile.connect(path, "r") as ds:
        assert list(ds.ra.Gene) == list(GENES)
        assert ds.attrs.title == "Tëst"
        assert ds.attrs["LOOM_SPEC_VERSION"] == version
        assert ds._store.spec == spec
        np.testing.assert_array_equal(ds[:, :], np.arange(12, dtype=np.float32).reshape(3, 4))
    with h5py.File(path, "r") as h5:  # the layout the entry names, as HDF5 tools see it
        assert ("attrs" in h5) == (spec.globals == "datasets")
        gene_dtype = h5["row_attrs/Gene"].dtype
        assert (gene_dtype.kind == "S") == (spec.strings == "ascii")


def _ascii(text: str) -> str:
    return text.encode("ascii", "ignore").decode()


@pytest.mark.parametrize("version", sorted(versions.VERSIONS))
def test_loompy_reads_each_version(tmp_path: Path, version: str) -> None:
    """loompy 3.0.8 decodes spec 2's character references; it strips non-ASCII characters from
    spec 3's UTF-8 (a loompy loss the README's differences table names)."""
    spec = versions.VERSIONS[version]
    path = tmp_path / "v.loom"
    _fill(path, spec)
    as_loompy_reads = (lambda text: text) if spec.strings == "ascii" else _ascii
    with loompy.connect(str(path), "r", validate=False) as ds:
        assert list(ds.ra.Gene) == [as_loompy_reads(g) for g in GENES]
        assert ds.attrs.title == as_loompy_reads("Tëst")
        np.testing.assert_array_equal(ds[:, :], np.arange(12, dtype=np.float32).reshape(3, 4))


def test_a_new_version_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version laid out like an existing one needs nothing but its entry."""
    spec = dataclasses.replace(versions.LEGACY, version="2.0.2")
    monkeypatch.setitem(versions.VERSIONS, "2.0.2", spec)
    path = tmp_path / "v.loom"
    _fill(path, versions.named("2.0.2"))
    with loomfile.connect(path, "r") as ds:
        assert ds.attrs["LOOM_SPEC_VERSION"] == "2.0.2"
        assert ds._store.spec_version == (2, 0, 2)
        assert list(ds.ra.Gene) == list(GENES)


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(loomfile.LoomValueError, match=r"'9\.9\.9'.*writes 2\.0\.1, 3\.0\.0"):
        versions.named("9.9.9")
