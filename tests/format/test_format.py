"""String coding, legacy layouts, attribute value rules and timestamps, checked against raw HDF5.

Every expectation is computed here (numpy, h5py, a small independent decoder of XML numeric
character references), never taken from loomfile's own output.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile

UNICODE_TEXT = ["é", "日本", "🧬", "S6Kβ", "naïve–dash", "plain", "A&amp;B", "&#233; literal"]
STAMP_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")
_NUMERIC_REF = re.compile(r"&#(?:x([0-9a-fA-F]+)|([0-9]+));")


# --- independent helpers ---------------------------------------------------------------------------


def unescape_numeric_refs(text: str) -> str:
    """Decode XML numeric character references only, in a single pass (``&amp;`` is left alone)."""

    def one(match: re.Match[str]) -> str:
        hexa, dec = match.groups()
        return chr(int(hexa, 16) if hexa is not None else int(dec))

    return _NUMERIC_REF.sub(one, text)


def now_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def as_text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)


def assert_str_array(values: object, expected: list[str]) -> None:
    """``values`` is an object ndarray of Python ``str`` equal to ``expected``, element by element."""
    assert isinstance(values, np.ndarray)
    assert values.dtype == object
    assert all(type(v) is str for v in values.ravel())
    assert values.ravel().tolist() == expected


def cells(m: int) -> list[str]:
    return [UNICODE_TEXT[j % len(UNICODE_TEXT)] + f"_{j}" for j in range(m)]


@pytest.fixture
def unicode_path(tmp_path: Path) -> str:
    """A spec-3 file whose row and column attributes contain non-ASCII text."""
    n, m = len(UNICODE_TEXT), 12
    path = os.fspath(tmp_path / "unicode.loom")
    loomfile.create(
        path,
        np.arange(n * m, dtype=np.float32).reshape(n, m),
        {"Gene": np.array(UNICODE_TEXT, dtype=object)},
        {"CellID": np.array(cells(m), dtype=object)},
        file_attrs={"title": "日本 🧬 é S6Kβ"},
    )
    return path


LEGACY_GENES = [b"h&#233;llo", b"&#26085;", b"A&amp;B", b"&#x1f9ec; cell", b"plain", b"S6K&#946;"]
LEGACY_GENES_TEXT = ["héllo", "日", "A&amp;B", "🧬 cell", "plain", "S6Kβ"]
LEGACY_CELLS = [b"c&#xe9;0", b"c1", b"&#26085;&#26412;", b"c3"]
LEGACY_CELLS_TEXT = ["cé0", "c1", "日本", "c3"]


@pytest.fixture
def legacy_path(tmp_path: Path) -> str:
    """A spec-2 file as loompy 2 wrote it: no /attrs, root attributes, fixed-length ASCII strings."""
    path = os.fspath(tmp_path / "legacy.loom")
    n, m = len(LEGACY_GENES), len(LEGACY_CELLS)
    with h5py.File(path, "w") as h5:
        h5.create_dataset(
            "matrix", data=np.arange(n * m, dtype=np.float32).reshape(n, m), chunks=(n, m), maxshape=(n, None)
        )
        for group in ("layers", "row_attrs", "col_attrs", "row_graphs", "col_graphs"):
            h5.create_group(group)
        h5["row_attrs"].create_dataset("Gene", data=np.array(LEGACY_GENES))
        h5["col_attrs"].create_dataset("CellID", data=np.array(LEGACY_CELLS))
        h5["col_attrs"].create_dataset("Age", data=np.arange(m, dtype=np.float64))
        h5.attrs["LOOM_SPEC_VERSION"] = np.bytes_(b"2.0.1")
        h5.attrs["title"] = np.bytes_(b"h&#233;llo")
        h5.attrs["species"] = np.bytes_(b"&#26085;")
        h5.attrs["amp"] = np.bytes_(b"A&amp;B")
        h5.attrs["n_cells"] = np.int64(m)
    return path


# --- spec 3: UTF-8 ---------------------------------------------------------------------------------


def test_spec3_strings_are_stored_as_vlen_utf8(unicode_path: str) -> None:
    with h5py.File(unicode_path, "r") as h5:
        for path, expected in (("row_attrs/Gene", UNICODE_TEXT), ("col_attrs/CellID", cells(12))):
            info = h5py.check_string_dtype(h5[path].dtype)
            assert info is not None
            assert info.encoding == "utf-8"
            assert info.length is None
            assert h5[path].asstr()[()].tolist() == expected
        assert "attrs" in h5
        assert as_text(h5["attrs/title"][()]) == "日本 🧬 é S6Kβ"
        assert h5py.check_string_dtype(h5["attrs/title"].dtype).encoding == "utf-8"


def test_spec3_non_ascii_round_trips_exactly(unicode_path: str) -> None:
    with loomfile.connect(unicode_path, "r") as ds:
        assert_str_array(ds.ra.Gene, UNICODE_TEXT)
        assert_str_array(ds.ca["CellID"], cells(12))
        assert ds.attrs.title == "日本 🧬 é S6Kβ"
        assert isinstance(ds.attrs["title"], str)


def test_spec3_written_text_round_trips_after_reopen(unicode_path: str) -> None:
    n = len(UNICODE_TEXT)
    reversed_text = list(reversed(UNICODE_TEXT))
    names_2d = np.array([[t, t + "!"] for t in UNICODE_TEXT], dtype=object)
    with loomfile.connect(unicode_path) as ds:
        ds.ra.Reversed = np.array(reversed_text, dtype=object)
        ds.ra.Pairs = names_2d
        ds.attrs.note = "&#233; A&amp;B 🧬"
        ds.attrs.names = np.array(["é", "日本", "🧬"], dtype=object)
    with h5py.File(unicode_path, "r") as h5:
        assert h5["row_attrs/Reversed"].asstr()[()].tolist() == reversed_text
        assert h5["row_attrs/Pairs"].shape == (n, 2)
        assert as_text(h5["attrs/note"][()]) == "&#233; A&amp;B 🧬"
        assert "note" not in h5.attrs
    with loomfile.connect(unicode_path, "r") as ds:
        assert_str_array(ds.ra.Reversed, reversed_text)
        pairs = ds.ra.Pairs
        assert pairs.shape == (n, 2)
        assert_str_array(pairs, names_2d.ravel().tolist())
        assert ds.attrs.note == "&#233; A&amp;B 🧬"
        assert_str_array(np.asarray(ds.attrs.names), ["é", "日本", "🧬"])


# --- spec 2 (legacy) -------------------------------------------------------------------------------


def test_independent_decoder_sanity() -> None:
    """The decoder the legacy tests rely on behaves like XML numeric references do."""
    assert [unescape_numeric_refs(b.decode("ascii")) for b in LEGACY_GENES] == LEGACY_GENES_TEXT
    assert unescape_numeric_refs("&#38;#233;") == "&#233;"


def test_legacy_strings_decode_to_text(legacy_path: str) -> None:
    with loomfile.connect(legacy_path, "r") as ds:
        assert_str_array(ds.ra.Gene, LEGACY_GENES_TEXT)
        assert_str_array(ds.ca.CellID, LEGACY_CELLS_TEXT)
        assert ds.attrs.title == "héllo"
        assert ds.attrs["species"] == "日"
        assert int(ds.attrs.n_cells) == len(LEGACY_CELLS)
        np.testing.assert_array_equal(ds.ca.Age, np.arange(len(LEGACY_CELLS), dtype=np.float64))


def test_legacy_ampersand_entity_is_not_unescaped(legacy_path: str) -> None:
    """loompy runs html.unescape and turns the user's "A&amp;B" into "A&B"; only numeric refs are decoded."""
    with loomfile.connect(legacy_path, "r") as ds:
        assert ds.ra.Gene[2] == "A&amp;B"
        assert ds.attrs.amp == "A&amp;B"


def test_legacy_file_keeps_legacy_layout_when_written(legacy_path: str) -> None:
    notes = ["é", "&#233;", "A&amp;B", "日本", "🧬 x", "&#x41; and &#65;"]
    label = ["naïve", "&#26085;", "plain", "S6Kβ"]
    comment = "naïve &#233; 日本 A&amp;B"
    with loomfile.connect(legacy_path) as ds:
        ds.ra.Note = np.array(notes, dtype=object)
        ds.ca["Label"] = label
        ds.attrs.comment = comment
        ds.attrs.title = "tïtle &#252;"
    with h5py.File(legacy_path, "r") as h5:
        assert "attrs" not in h5, "a spec-2 file must not grow an /attrs group"
        assert as_text(h5.attrs["LOOM_SPEC_VERSION"]) == "2.0.1"
        for path, expected in (("row_attrs/Note", notes), ("col_attrs/Label", label)):
            dset = h5[path]
            assert dset.dtype.kind == "S", f"{path} should be fixed-length bytes, not {dset.dtype}"
            raw = dset[()].tolist()
            assert all(max(b, default=0) < 128 for b in raw), f"{path} is not pure ASCII: {raw}"
            assert [unescape_numeric_refs(b.decode("ascii")) for b in raw] == expected
        for name, expected in (("comment", comment), ("title", "tïtle &#252;")):
            assert name in h5.attrs, f"global {name!r} must be a root HDF5 attribute in a spec-2 file"
            assert h5.attrs.get_id(name).dtype.kind == "S"
            raw = bytes(h5.attrs[name])
            assert max(raw) < 128
            assert unescape_numeric_refs(raw.decode("ascii")) == expected
    with loomfile.connect(legacy_path, "r") as ds:
        assert_str_array(ds.ra.Note, notes)
        assert_str_array(ds.ca.Label, label)
        assert ds.attrs.comment == comment
        assert ds.attrs.title == "tïtle &#252;"
        # untouched legacy values still decode
        assert_str_array(ds.ra.Gene, LEGACY_GENES_TEXT)


# --- foreign string layouts ------------------------------------------------------------------------


def test_loomr_vlen_ascii_and_fixed_utf8_attributes_read_as_str(unicode_path: str) -> None:
    ascii_values = ["RNA0", "RNA1", "cl-2", "x y", "", "RNA5", "a&amp;b", "z"]
    utf8_values = ["héllo", "日本", "🧬", "S6Kβ", "plain", "ü", "Ω", "–"]
    with h5py.File(unicode_path, "a") as h5:
        h5["row_attrs"].create_dataset(
            "loomR", data=[s.encode("ascii") for s in ascii_values], dtype=h5py.string_dtype("ascii")
        )
        h5["row_attrs"].create_dataset(
            "fixed_utf8",
            data=np.array([s.encode("utf-8") for s in utf8_values], dtype=h5py.string_dtype("utf-8", 20)),
        )
    with h5py.File(unicode_path, "r") as h5:  # the layouts really are what the test claims
        assert tuple(h5py.check_string_dtype(h5["row_attrs/loomR"].dtype)) == ("ascii", None)
        assert tuple(h5py.check_string_dtype(h5["row_attrs/fixed_utf8"].dtype)) == ("utf-8", 20)
    with loomfile.connect(unicode_path, "r") as ds:
        assert_str_array(ds.ra.loomR, ascii_values)
        assert_str_array(ds.ra["fixed_utf8"], utf8_values)


def test_scenic_compound_column_attributes_read_as_structured_arrays(unicode_path: str, rng) -> None:
    m = 12
    auc_dtype = np.dtype([("Reg0(+)", "<f8"), ("Reg1(+)", "<f8"), ("Reg2(+)", "<f8")])
    auc = np.zeros(m, dtype=auc_dtype)
    for field in auc_dtype.names:
        auc[field] = rng.random(m)
    emb = np.zeros(m, dtype=[("_X", "<f8"), ("_Y", "<f8")])
    emb["_X"], emb["_Y"] = rng.normal(size=m), rng.normal(size=m)
    with h5py.File(unicode_path, "a") as h5:
        h5["col_attrs"].create_dataset("RegulonsAUC", data=auc)
        h5["col_attrs"].create_dataset("Embedding", data=emb)
    with loomfile.connect(unicode_path, "r") as ds:
        got = ds.ca.RegulonsAUC
        assert isinstance(got, np.ndarray)
        assert got.dtype.names == ("Reg0(+)", "Reg1(+)", "Reg2(+)")
        for field in auc_dtype.names:
            np.testing.assert_array_equal(got[field], auc[field])
        got_emb = ds.ca["Embedding"]
        assert got_emb.dtype.names == ("_X", "_Y")
        np.testing.assert_array_equal(got_emb["_X"], emb["_X"])
        np.testing.assert_array_equal(got_emb["_Y"], emb["_Y"])


def test_compound_attribute_written_by_loomfile_is_stored_compound(unicode_path: str, rng) -> None:
    m = 12
    values = np.zeros(m, dtype=[("a(+)", "<f8"), ("b", "<i4")])
    values["a(+)"], values["b"] = rng.random(m), np.arange(m)
    with loomfile.connect(unicode_path) as ds:
        ds.ca.AUC = values
    with h5py.File(unicode_path, "r") as h5:
        stored = h5["col_attrs/AUC"][()]
        assert stored.dtype.names == ("a(+)", "b")
        np.testing.assert_array_equal(stored["a(+)"], values["a(+)"])
        np.testing.assert_array_equal(stored["b"], values["b"])


# --- attribute value rules -------------------------------------------------------------------------


def test_bool_attributes_are_stored_as_uint8(tmp_path: Path, rng) -> None:
    n, m = 9, 7
    row_flags = rng.random(n) < 0.5
    col_flags = rng.random(m) < 0.5
    path = os.fspath(tmp_path / "bool.loom")
    loomfile.create(path, np.ones((n, m), np.float32), {"Flag": row_flags}, {})
    with loomfile.connect(path) as ds:
        ds.ca.Valid = col_flags
    with h5py.File(path, "r") as h5:
        for dset, expected in ((h5["row_attrs/Flag"], row_flags), (h5["col_attrs/Valid"], col_flags)):
            assert dset.dtype == np.uint8
            np.testing.assert_array_equal(dset[()], expected.astype(np.uint8))
    with loomfile.connect(path, "r") as ds:
        np.testing.assert_array_equal(ds.ca.Valid.astype(bool), col_flags)


def test_lists_and_tuples_are_accepted(tmp_path: Path) -> None:
    n, m = 4, 3
    path = os.fspath(tmp_path / "lists.loom")
    loomfile.create(path, np.ones((n, m), np.float32), {"Gene": ["a", "é", "日", "d"]}, {"Num": (1, 2, 3)})
    with loomfile.connect(path) as ds:
        ds.ra.Score = [0.5, 1.5, 2.5, 3.5]
        ds.ca.Name = ("x", "ÿ", "z")
    with h5py.File(path, "r") as h5:
        assert h5["row_attrs/Gene"].asstr()[()].tolist() == ["a", "é", "日", "d"]
        np.testing.assert_array_equal(h5["col_attrs/Num"][()], [1, 2, 3])
        assert h5["col_attrs/Num"].dtype.kind in "iu"
        np.testing.assert_array_equal(h5["row_attrs/Score"][()], [0.5, 1.5, 2.5, 3.5])
        assert h5["col_attrs/Name"].asstr()[()].tolist() == ["x", "ÿ", "z"]


def test_length_mismatch_raises_naming_the_attribute(loom_path: str, small_data: dict) -> None:
    n = small_data["matrix"].shape[0]
    with loomfile.connect(loom_path) as ds, pytest.raises(ValueError, match="TooLong") as info:
        ds.ra.TooLong = np.arange(n + 1)
    assert isinstance(info.value, loomfile.LoomError)
    with h5py.File(loom_path, "r") as h5:
        assert "TooLong" not in h5["row_attrs"]


def test_create_length_mismatch_raises_naming_the_attribute(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.loom"
    with pytest.raises(ValueError, match="Short"):
        loomfile.create(path, np.ones((5, 4), np.float32), {}, {"Short": np.arange(3)})
    assert not path.exists()


BAD_VALUES = [
    # None and text mixed with numbers are stored as text, as loompy does (tests/api/test_dropin_conversions.py)
    pytest.param(
        "MixedBytes",
        lambda m: np.array(["a", b"b"] + ["c"] * (m - 2), dtype=object),
        r"(?i)mix.*bytes",
        id="text-and-bytes",
    ),
    pytest.param(
        "MixedDict",
        lambda m: ["a", {"k": 1}] + ["b"] * (m - 2),
        r"(?i)mix.*dict",
        id="text-and-dict",
    ),
    pytest.param("Nul", lambda m: ["a\x00b"] + ["c"] * (m - 1), r"NUL|\\x00|null", id="nul-char"),
]


@pytest.mark.parametrize(("name", "make", "pattern"), BAD_VALUES)
def test_bad_attribute_values_raise_clear_errors(
    loom_path: str, small_data: dict, name, make, pattern
) -> None:
    m = small_data["matrix"].shape[1]
    with loomfile.connect(loom_path) as ds:
        with pytest.raises(ValueError, match=pattern) as info:
            ds.ca[name] = make(m)
        assert name in str(info.value)
        assert isinstance(info.value, loomfile.LoomError)
    with h5py.File(loom_path, "r") as h5:
        assert name not in h5["col_attrs"]


@pytest.mark.parametrize("name", ["a/b", "/lead", "nul\x00name"])
def test_bad_attribute_names_raise(loom_path: str, small_data: dict, name: str) -> None:
    m = small_data["matrix"].shape[1]
    with loomfile.connect(loom_path) as ds:
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            ds.ca[name] = np.arange(m)
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            ds.attrs[name] = "x"
    with h5py.File(loom_path, "r") as h5:
        assert sorted(h5["col_attrs"]) == sorted(small_data["col_attrs"])
        assert "a" not in h5["col_attrs"] and "lead" not in h5


def test_global_attribute_none_raises(loom_path: str) -> None:
    with loomfile.connect(loom_path) as ds, pytest.raises(ValueError, match="None"):
        ds.attrs.missing = None
    with h5py.File(loom_path, "r") as h5:
        assert "missing" not in h5["attrs"]


def test_create_rejects_bad_attribute_values(tmp_path: Path) -> None:
    path = tmp_path / "bad.loom"
    with pytest.raises(ValueError, match="CellID"):
        loomfile.create(path, np.ones((3, 2), np.float32), {}, {"CellID": ["a", 1j]})
    with pytest.raises(ValueError, match="a/b"):
        loomfile.create(path, np.ones((3, 2), np.float32), {"a/b": [1, 2, 3]}, {})
    assert not path.exists()


# --- timestamps ------------------------------------------------------------------------------------


def test_create_stamps_every_element(tmp_path: Path, small_data: dict) -> None:
    path = os.fspath(tmp_path / "stamps.loom")
    before = now_stamp()
    loomfile.create(path, small_data["matrix"], small_data["row_attrs"], small_data["col_attrs"])
    after = now_stamp()
    with h5py.File(path, "r") as h5:
        objects = ["/", "/matrix"] + [f"/row_attrs/{k}" for k in small_data["row_attrs"]]
        objects += [f"/col_attrs/{k}" for k in small_data["col_attrs"]]
        for obj in objects:
            assert "last_modified" in h5[obj].attrs, f"{obj} has no last_modified"
            stamp = as_text(h5[obj].attrs["last_modified"])
            assert STAMP_RE.match(stamp), stamp
            assert before <= stamp <= after, (obj, before, stamp, after)


def test_graph_and_layer_writes_are_stamped(loom_path: str, small_data: dict) -> None:
    m = small_data["matrix"].shape[1]
    before = now_stamp()
    with loomfile.connect(loom_path) as ds:
        ds.col_graphs.KNN = sparse.eye(m, format="coo")
        ds.layers["spliced"] = small_data["matrix"] * 2
    after = now_stamp()
    with h5py.File(loom_path, "r") as h5:
        for obj in ("/col_graphs/KNN", "/layers/spliced", "/"):
            stamp = as_text(h5[obj].attrs["last_modified"])
            assert STAMP_RE.match(stamp)
            assert before <= stamp <= after, (obj, before, stamp, after)


def test_last_modified_is_the_root_stamp(loom_path: str) -> None:
    with loomfile.connect(loom_path, "r") as ds:
        got = ds.last_modified()
    assert isinstance(got, str)
    with h5py.File(loom_path, "r") as h5:
        assert got == as_text(h5.attrs["last_modified"])


def test_reading_does_not_change_stamps(loom_path: str) -> None:
    with h5py.File(loom_path, "r") as h5:
        root_before = as_text(h5.attrs["last_modified"])
    with loomfile.connect(loom_path) as ds:
        _ = (ds[:, :], ds.ca.CellID, ds.attrs.keys(), ds.layers.keys(), ds.col_graphs.keys())
    with h5py.File(loom_path, "r") as h5:
        assert as_text(h5.attrs["last_modified"]) == root_before


def test_get_changes_since_lists_only_later_changes(loom_path: str, small_data: dict) -> None:
    n, m = small_data["matrix"].shape
    with loomfile.connect(loom_path) as ds:
        ds.layers["a"] = "float32"
        ds.layers["b"] = "float32"
        ds.ca.X = np.zeros(m)
        ds.ca.Y = np.zeros(m)
        ds.col_graphs.G = sparse.eye(m, format="coo")
        ds.col_graphs.H = sparse.eye(m, format="coo")
        ds.row_graphs.R = sparse.eye(n, format="coo")
    time.sleep(0.01)
    since = now_stamp()
    time.sleep(0.01)
    with loomfile.connect(loom_path) as ds:
        ds["a"][0, 0] = 1
        ds.ca.X = np.ones(m)
        ds.col_graphs.G = sparse.eye(m, k=1, format="coo")
    with loomfile.connect(loom_path, "r") as ds:
        changes = ds.get_changes_since(since)
        later = ds.get_changes_since(now_stamp())
    assert changes["layers"] == ["a"]
    assert changes["col_attrs"] == ["X"]
    assert changes["col_graphs"] == ["G"]
    assert changes["row_attrs"] == []
    assert changes["row_graphs"] == []
    assert all(v == [] for v in later.values()), later
