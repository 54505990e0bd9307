"""``ds.layers.create(name, shape, dtype, fill)``: the streaming writer importers use, public."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import loomfile


def test_create_writes_bands_in_any_order(tmp_path: Path) -> None:
    expected = np.arange(300 * 200, dtype=np.int32).reshape(300, 200)

    def fill(writer) -> None:
        for lo in (128, 0, 64, 192):  # out of order; the last band is partial
            writer.write(0, lo, expected[:, lo : lo + 64])

    path = tmp_path / "big.loom"
    with loomfile.new(path) as ds:
        ds.layers.create("", expected.shape, "int32", fill)
        ds.ca.CellID = np.arange(200)
        ds.layers.create("partly", expected.shape, np.float32, lambda w: w.write(10, 20, np.ones((5, 6), np.float32)))
    with loomfile.connect(path, "r") as ds:
        np.testing.assert_array_equal(ds[:, :], expected)
        assert ds.layers[""].dtype == np.int32
        partly = np.zeros((300, 200), np.float32)
        partly[10:15, 20:26] = 1
        np.testing.assert_array_equal(ds.layers["partly"][:, :], partly)


def test_a_failing_fill_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    loomfile.create(path, np.ones((4, 3), np.float32), {"Gene": np.arange(4)}, {"CellID": np.arange(3)})

    def fill(writer) -> None:
        writer.write(0, 0, np.full((4, 3), 7, np.float32))
        raise RuntimeError("the source ran dry")

    with loomfile.connect(path) as ds:
        with pytest.raises(RuntimeError, match="ran dry"):
            ds.layers.create("", (4, 3), "float32", fill)
        with pytest.raises(RuntimeError, match="ran dry"):
            ds.layers.create("new", (4, 3), "float32", fill)
        assert ds.layers.keys() == [""]
        np.testing.assert_array_equal(ds[:, :], np.ones((4, 3), np.float32))


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "message"),
    [
        ("x", (4, 4), "float32", r"Layer 'x' would be 4 x 4; the file is 4 x 3"),
        ("x", (4, -1), "float32", r"Layer 'x' needs a shape of two non-negative ints"),
        ("x", (4,), "float32", r"needs a shape of two non-negative ints"),
        ("x", (4, 3), "complex64", r"complex64"),
        ("a/b", (4, 3), "float32", r"a/b"),
    ],
)
def test_bad_arguments_are_refused_naming_what_is_wrong(
    tmp_path: Path, name: str, shape: tuple[int, ...], dtype: str, message: str
) -> None:
    path = tmp_path / "f.loom"
    loomfile.create(path, np.ones((4, 3), np.float32), {"Gene": np.arange(4)}, {"CellID": np.arange(3)})
    with loomfile.connect(path) as ds, pytest.raises(loomfile.LoomValueError, match=message):
        ds.layers.create(name, shape, dtype)  # type: ignore[arg-type]


def test_other_layers_wait_for_the_main_matrix_and_views_refuse(tmp_path: Path) -> None:
    with loomfile.new(tmp_path / "n.loom") as ds:
        with pytest.raises(loomfile.LoomValueError, match="before the main matrix"):
            ds.layers.create("spliced", (3, 2), "float32")
        ds.layers.create("", (3, 2), "float32")
        ds.ca.CellID = np.arange(2)
        view = ds.view[:, :]
        with pytest.raises(loomfile.LoomValueError, match="live in memory"):
            view.layers.create("x", (3, 2), "float32")


def test_a_read_only_connection_refuses(tmp_path: Path) -> None:
    path = tmp_path / "f.loom"
    loomfile.create(path, np.ones((4, 3), np.float32), {"Gene": np.arange(4)}, {"CellID": np.arange(3)})
    with loomfile.connect(path, "r") as ds, pytest.raises(loomfile.LoomReadOnlyError):
        ds.layers.create("x", (4, 3), "float32")
