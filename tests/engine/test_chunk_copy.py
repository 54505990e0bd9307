"""add_loom/combine copy stored chunks as they are when the columns land on chunk boundaries and
the layouts match: the output holds the same bytes, and the same values as decoding would give."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import h5py
import numpy as np
import pytest

import loomfile
from loomfile._engine import stored as _hdf5chunks
from looms import counts_file

N_ROWS = 150


def make(path: Path, n_cols: int, seed: int, **layer_options: Any) -> np.ndarray:
    m = counts_file(path, N_ROWS, n_cols, seed, cell_prefix=f"s{seed}c", sizes=False)
    if layer_options:  # rewrite the main matrix with other storage options
        with h5py.File(path, "a") as f:
            del f["matrix"]
            f.create_dataset("matrix", data=m, chunks=(64, 64), maxshape=(N_ROWS, None), **layer_options)
    return m


@pytest.fixture
def copied() -> Iterator[set[str]]:
    """The datasets chunks were copied into, as stored, while the test runs."""
    names: set[str] = set()
    real = _hdf5chunks.copy_chunks

    def spy(source: Any, dst: h5py.Dataset, col: int) -> None:
        names.add(dst.name)
        real(source, dst, col)

    with mock.patch.object(_hdf5chunks, "copy_chunks", spy):
        yield names


def stored_chunks(path: Path, name: str, first_col: int, n_cols: int) -> list[bytes]:
    with h5py.File(path, "r") as f:
        d = f[name]
        return [
            d.id.read_direct_chunk((r, c))[1]
            for r in range(0, d.shape[0], 64)
            for c in range(first_col, first_col + n_cols, 64)
        ]


@pytest.mark.parametrize("n_other", [256, 200])
def test_aligned_columns_are_copied_as_stored(tmp_path: Path, n_other: int) -> None:
    a, b = tmp_path / "a.loom", tmp_path / "b.loom"
    ma, mb = make(a, 128, 1), make(b, n_other, 2)
    spy = mock.Mock(wraps=_hdf5chunks.copy_chunks)
    with mock.patch.object(_hdf5chunks, "copy_chunks", spy), loomfile.connect(a) as ds:
        ds.add_loom(os.fspath(b), batch_size=64)
        np.testing.assert_array_equal(ds[:, :], np.hstack([ma, mb]))
        np.testing.assert_array_equal(ds.layers["spliced"][:, :], np.hstack([ma, mb]).astype(np.uint16) * 2)
        assert list(ds.ca.CellID[126:130]) == ["s1c126", "s1c127", "s2c0", "s2c1"]
    assert spy.call_count == 2  # both layers, all whole chunk columns in one go
    whole = n_other // 64 * 64
    for name in ("matrix", "layers/spliced"):
        assert stored_chunks(a, name, 128, whole) == stored_chunks(b, name, 0, whole)
    with h5py.File(a, "r") as f:  # and plain HDF5 decodes them
        np.testing.assert_array_equal(f["matrix"][:, :], np.hstack([ma, mb]))


@pytest.mark.parametrize(
    ("n_before", "options", "key"),
    [
        (100, {}, None),  # not on a chunk boundary
        (128, {"compression": "gzip", "shuffle": True}, None),  # another filter pipeline
        (128, {"compression": "gzip", "fillvalue": 7.0}, None),  # another fill value
        (128, {}, "Gene"),  # rows aligned on a key: reordered, so decoded
    ],
    ids=["unaligned", "shuffle", "fill value", "key"],
)
def test_other_cases_are_decoded_and_give_the_same_values(
    tmp_path: Path, n_before: int, options: dict[str, Any], key: str | None, copied: set[str]
) -> None:
    a, b = tmp_path / "a.loom", tmp_path / "b.loom"
    ma, mb = make(a, n_before, 1), make(b, 192, 2, **options)
    if key is not None:  # the second file's rows in reverse order
        with loomfile.connect(b) as ds:
            ds.permute(np.arange(N_ROWS)[::-1], axis=0)
    with loomfile.connect(a) as ds:
        ds.add_loom(os.fspath(b), key=key)
        np.testing.assert_array_equal(ds[:, :], np.hstack([ma, mb]))
    if key is not None:
        assert copied == set()
    else:
        assert "/matrix" not in copied
    if n_before % 64 == 0 and key is None:
        assert copied == {"/layers/spliced"}  # the other layer still matches


def test_a_key_whose_rows_are_already_in_order_copies(tmp_path: Path, copied: set[str]) -> None:
    a, b = tmp_path / "a.loom", tmp_path / "b.loom"
    ma, mb = make(a, 128, 1), make(b, 192, 2)
    with loomfile.connect(a) as ds:
        ds.add_loom(os.fspath(b), key="Gene")
        np.testing.assert_array_equal(ds[:, :], np.hstack([ma, mb]))
    assert copied == {"/matrix", "/layers/spliced"}


def test_combine_of_aligned_files_copies_chunks(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.loom" for i in range(3)]
    parts = [make(p, w, i) for i, (p, w) in enumerate(zip(paths, (64, 128, 70), strict=True))]
    out = tmp_path / "out.loom"
    spy = mock.Mock(wraps=_hdf5chunks.copy_chunks)
    with mock.patch.object(_hdf5chunks, "copy_chunks", spy):
        loomfile.combine([os.fspath(p) for p in paths], os.fspath(out))
    assert spy.call_count >= 2
    with loomfile.connect(out, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], np.hstack(parts))


def test_a_layer_assigned_from_another_file_is_copied_as_stored(tmp_path: Path) -> None:
    a, b = tmp_path / "a.loom", tmp_path / "b.loom"
    ma, mb = make(a, 200, 1), make(b, 200, 2)
    with loomfile.connect(a) as ds, loomfile.connect(b, "r") as other:
        ds.layers["theirs"] = other.layers[""]
        np.testing.assert_array_equal(ds.layers["theirs"][:, :], mb)
        np.testing.assert_array_equal(ds[:, :], ma)
    assert stored_chunks(a, "layers/theirs", 0, 192) == stored_chunks(b, "matrix", 0, 192)
    with loomfile.connect(a) as ds:  # the partial last chunk column was written with fill padding
        ds.add_columns(
            {"": ma[:, :10], "spliced": ma[:, :10].astype(np.uint16), "theirs": ma[:, :10]},
            {"CellID": np.arange(10).astype(str)},
        )
        np.testing.assert_array_equal(ds.layers["theirs"][:, :], np.hstack([mb, ma[:, :10]]))


def test_combine_in_bands_narrower_than_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands are capped by BAND_BYTES (here to one chunk column), whatever batch_size asks for; the
    band buffers are shared by every file combine appends, so each file's bands overwrite them."""
    from loomfile._ops import columns as _ops

    monkeypatch.setattr(_ops, "BAND_BYTES", 1)
    paths = [tmp_path / f"{i}.loom" for i in range(3)]
    parts = [make(p, w, i) for i, (p, w) in enumerate(zip(paths, (100, 150, 70), strict=True))]
    order = np.random.default_rng(0).permutation(N_ROWS)
    with loomfile.connect(paths[1]) as ds:  # rows reordered: decoded, band by band
        ds.permute(order, axis=0)
    reads = mock.Mock(wraps=_ops._memory.Recycler.get)
    out = tmp_path / "out.loom"
    with mock.patch.object(_ops._memory.Recycler, "get", autospec=True, side_effect=reads):
        loomfile.combine([os.fspath(p) for p in paths], os.fspath(out), key="Gene", batch_size=1000)
    # one chunk column wide, after a first band that fills the partial chunk column before it
    assert max(call.args[2][1] for call in reads.call_args_list) < 2 * 64
    with loomfile.connect(out, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], np.hstack(parts))
