"""combine_faster() against loompy 3.0.8 on the same input files: selections, key ordering,
layers missing from some files, skip_attrs; plus the checks loompy does not make."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import loompy
import numpy as np
import pytest

import loomfile
from loomfile._errors import LoomValueError

N_GENES = 90
WIDTHS = (70, 130, 45)  # offsets 70 and 200: not on chunk boundaries


def read_all(path: str) -> dict[str, Any]:
    with loomfile.connect(path, "r") as ds:
        out: dict[str, Any] = {f"layer {k}": ds.layers[k][:, :] for k in ds.layers.keys()}
        out.update({f"ra {k}": v for k, v in ds.ra.items()})
        out.update({f"ca {k}": v for k, v in ds.ca.items()})
        return out


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(8)
    genes = np.array([f"ENSG{i:05d}" for i in range(N_GENES)])
    paths = []
    for i, width in enumerate(WIDTHS):
        order = rng.permutation(N_GENES) if i else np.arange(N_GENES)  # rows shuffled in later files
        m = rng.negative_binomial(1, 0.4, (N_GENES, width)).astype(np.float32)
        layers: dict[str, Any] = {"": m}
        if i != 1:
            layers["spliced"] = (m * 3).astype(np.float32)  # missing from the second file
        ca: dict[str, Any] = {
            "CellID": np.array([f"f{i}_c{j}" for j in range(width)]),
            "Size": rng.random(width),
        }
        if i != 2:
            ca["Batch"] = np.full(width, i + 1, dtype=np.int64)  # missing from the third file
        path = os.fspath(tmp_path / f"in{i}.loom")
        loompy.create(path, layers, {"Accession": genes[order], "Gene": np.char.add("g", genes[order])}, ca)
        paths.append(path)
    return paths


@pytest.mark.parametrize("key", [None, "Accession"])
@pytest.mark.parametrize("select", [False, True], ids=["all columns", "selections"])
def test_combine_faster_matches_loompy(
    inputs: list[str], tmp_path: Path, key: str | None, select: bool
) -> None:
    rng = np.random.default_rng(2)
    selections = [rng.random(w) < 0.6 for w in WIDTHS] if select else None
    if selections is not None:
        selections[1] = None  # type: ignore[call-overload]
    outs = [os.fspath(tmp_path / f"{lib.__name__}.loom") for lib in (loompy, loomfile)]
    for lib, out in zip((loompy, loomfile), outs, strict=True):
        lib.combine_faster(inputs, out, {"title": "t"}, selections, key, skip_attrs=["Size"])
    expected, got = read_all(outs[0]), read_all(outs[1])
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    with loomfile.connect(outs[1], "r") as ds:
        assert ds.attrs["title"] == "t"


def test_combine_faster_refuses_what_does_not_line_up(inputs: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out.loom"
    with pytest.raises(LoomValueError, match="has shape"):
        loomfile.combine_faster(inputs, os.fspath(out), selections=[np.ones(3, bool), None, None])
    with pytest.raises(LoomValueError, match="boolean mask"):
        loomfile.combine_faster(inputs, os.fspath(out), selections=[np.arange(70), None, None])
    other = os.fspath(tmp_path / "other.loom")
    loomfile.create(
        other, np.ones((5, 5), dtype=np.float32), {"Accession": np.arange(5)}, {"C": np.arange(5)}
    )
    with pytest.raises(LoomValueError, match="same number of rows"):
        loomfile.combine_faster([inputs[0], other], os.fspath(out))
    assert not out.exists()


@pytest.mark.parametrize(
    ("theirs", "message"),
    [
        (
            ["a", "b", "c", "x"],
            r"1 values only in the target \(e.g. \['d'\]\), 1 only in \S*theirs.loom \(e.g. \['x'\]\)",
        ),
        (["a", "b", "c", "c"], "unique values"),
    ],
)
def test_add_loom_with_a_key_that_does_not_line_up(tmp_path: Path, theirs: list[str], message: str) -> None:
    paths = []
    for name, keys in (("mine", ["d", "c", "b", "a"]), ("theirs", theirs)):
        path = os.fspath(tmp_path / f"{name}.loom")
        loomfile.create(
            path, np.ones((4, 3), dtype=np.float32), {"Accession": np.array(keys)}, {"C": np.arange(3)}
        )
        paths.append(path)
    with loomfile.connect(paths[0]) as ds:
        with pytest.raises(LoomValueError, match=message):
            ds.add_loom(paths[1], key="Accession")
        assert ds.shape == (4, 3)


def test_add_loom_aligns_rows_on_the_key(tmp_path: Path) -> None:
    a, b = os.fspath(tmp_path / "a.loom"), os.fspath(tmp_path / "b.loom")
    loomfile.create(
        a, np.zeros((3, 2), dtype=np.float32), {"Accession": np.array(["x", "y", "z"])}, {"C": np.arange(2)}
    )
    m = np.array([[1, 1], [2, 2], [3, 3]], dtype=np.float32)  # rows z, x, y
    loomfile.create(b, m, {"Accession": np.array(["z", "x", "y"])}, {"C": np.arange(2)})
    with loomfile.connect(a) as ds:
        ds.add_loom(b, key="Accession")
        np.testing.assert_array_equal(ds[:, 2:], [[2, 2], [3, 3], [1, 1]])


@pytest.mark.parametrize("function", ["combine_faster", "combine"])
def test_a_renamed_gene_is_an_error_naming_it_not_shifted_rows(inputs: list[str], tmp_path: Path, function: str) -> None:
    """loompy's combine_faster sorts each file on its own key: with one gene renamed in the second
    file, every row after it in sorted order carries another gene's values. loomfile refuses and
    names the gene; combine (and add_loom) also name it when the files' row counts differ."""
    with loomfile.connect(inputs[1]) as ds:
        accession = ds.ra.Accession.copy()
        accession[accession == "ENSG00001"] = "ENSG99999"  # sorts last instead of second
        ds.ra.Accession = accession
    out = os.fspath(tmp_path / "out.loom")
    call = getattr(loomfile, function)
    with pytest.raises(LoomValueError, match=r"ENSG00001.*ENSG99999") as raised:
        call(inputs[:2], out, key="Accession")
    assert inputs[1] in str(raised.value)
    assert not os.path.exists(out)

    # one gene fewer in the second file: the message names it, not only the counts
    short = os.fspath(tmp_path / "short.loom")
    with loomfile.connect(inputs[2], "r") as ds:
        keep = ds.ra.Accession != "ENSG00007"
        loomfile.create(short, ds[keep, :], {k: v[keep] for k, v in ds.ra.items()}, dict(ds.ca.items()))
    with pytest.raises(LoomValueError, match=r"1 values only in the target \(e.g. \['ENSG00007'\]\)"):
        call([inputs[0], short], out, key="Accession")
    assert not os.path.exists(out)


def test_loompy_misaligns_where_loomfile_refuses(inputs: list[str], tmp_path: Path) -> None:
    """The oracle's behaviour, so the test above documents a real difference: loompy writes the file,
    and the second file's values sit under the wrong gene names."""
    with loomfile.connect(inputs[1]) as ds:
        accession = ds.ra.Accession.copy()
        accession[accession == "ENSG00001"] = "ENSG99999"
        ds.ra.Accession = accession
        truth = ds[np.flatnonzero(ds.ra.Accession == "ENSG00002")[0], :]
    out = os.fspath(tmp_path / "lp.loom")
    loompy.combine_faster(inputs[:2], out, key="Accession")
    with loompy.connect(out, "r") as ds:
        row = np.flatnonzero(ds.ra.Accession == "ENSG00002")[0]
        assert not np.array_equal(ds[row, WIDTHS[0] :], truth)


def test_combine_warns_at_the_callers_line_and_fill_values_keeps_attributes(inputs: list[str], tmp_path: Path) -> None:
    """The third input lacks "Batch": combine drops it with a warning that points at this file
    (not into loomfile), and fill_values keeps it, as add_loom's fill_values does."""
    out = os.fspath(tmp_path / "out.loom")
    with pytest.warns(UserWarning, match=r"\['Batch'\].*fill_values") as caught:
        loomfile.combine([inputs[0], inputs[2]], out, key="Accession")
    assert [w.filename for w in caught if "Batch" in str(w.message)] == [__file__]
    with loomfile.connect(out, "r") as ds:
        assert "Batch" not in ds.ca
    os.remove(out)
    loomfile.combine([inputs[0], inputs[2]], out, key="Accession", fill_values="auto")
    with loomfile.connect(out, "r") as ds:
        np.testing.assert_array_equal(ds.ca.Batch, np.r_[np.ones(WIDTHS[0]), np.zeros(WIDTHS[2])])
    os.remove(out)
    loomfile.combine([inputs[0], inputs[2]], out, key="Accession", fill_values={"Batch": 9})
    with loomfile.connect(out, "r") as ds:
        np.testing.assert_array_equal(ds.ca.Batch, np.r_[np.ones(WIDTHS[0]), np.full(WIDTHS[2], 9)])
    with loomfile.connect(out) as ds, pytest.warns(UserWarning) as caught:
        ds.add_loom(inputs[2], key="Accession")  # the same warning from add_loom, at this line too
    assert {w.filename for w in caught} == {__file__}
