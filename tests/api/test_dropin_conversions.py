"""The lossy conversions loompy 3.0.8 makes and real callers depend on: loomfile stores exactly what
loompy stores, and says so with one UserWarning naming the attribute, the count and the conversion.

loompy 3.0.8 is the oracle: both libraries write the same input, h5py reads both files back.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import h5py
import loompy
import numpy as np
import pandas as pd
import pytest

import loomfile
from loomfile import LoomValueError

N_COLS = 4

# (input, how many values are not text, a conversion the warning must show)
MIXTURES: dict[str, tuple[Any, int, str]] = {
    "geneformer_none": (["ENSG1", None, "ENSG3", None], 2, 'None -> "None"'),
    "numbers_and_none": ([1, None, 3, 4], 4, 'None -> "None"'),
    "only_none": ([None] * N_COLS, 4, 'None -> "None"'),
    "scenic_categorical_nan": (np.array(pd.Categorical(["B", np.nan, "T", "B"])), 1, 'nan -> "nan"'),
    "str_and_float_nan": (np.array(["a", np.nan, "b", float("nan")], dtype=object), 2, 'nan -> "nan"'),
    "text_and_numbers_list": (["a", 1, 2.5, "b"], 2, '1 -> "1"'),
    "text_numbers_object": (np.array(["a", np.int64(7), np.float32(0.5), True], dtype=object), 3, '7 -> "7"'),
    "boolean_with_na": (np.array(pd.array([True, None, False, True], dtype="boolean")), 4, '<NA> -> "<NA>"'),
    "string_with_na": (np.array(pd.array(["x", None, "z", "w"], dtype="string")), 1, '<NA> -> "<NA>"'),
    "int_with_na_as_anndata_passes_it": (
        np.array(pd.Series([1, None, 3, 4], dtype="Int64").to_list()),
        4,
        '<NA> -> "<NA>"',
    ),
}

# pandas input: loompy refuses a Series, so its oracle is np.asarray(values), as a caller would pass.
PANDAS: dict[str, Any] = {
    "series_str": pd.Series(["a", "b", "c", "d"]),
    "series_int": pd.Series([1, 2, 3, 4]),
    "series_float_nan": pd.Series([1.5, np.nan, 3.0, 4.0]),
    "index": pd.Index(["w", "x", "y", "z"]),
    "categorical": pd.Categorical(["T", "B", "T", "NK"]),
    "categorical_series": pd.Series(["T", "B", "T", "NK"], dtype="category"),
    "categorical_int": pd.Categorical([3, 1, 3, 2]),
    "boolean": pd.Series([True, False, True, False], dtype="boolean"),
    "Int64": pd.Series([1, 2, 3, 4], dtype="Int64"),
    "Int64_na": pd.Series([1, None, 3, 4], dtype="Int64"),
    "string": pd.Series(["a", "b", "c", "d"], dtype="string"),
    "string_na": pd.Series(["a", None, "c", "d"], dtype="string"),
    "boolean_na": pd.Series([True, None, False, True], dtype="boolean"),
    "categorical_nan": pd.Series(pd.Categorical(["B", np.nan, "T", "B"])),
}


def stored(path: str, name: str) -> tuple[str, list[Any]]:
    """(kind, values) of a stored column attribute, text decoded, as h5py reads it."""
    with h5py.File(path, "r") as f:
        raw = f["col_attrs"][name][()]
    if raw.dtype.kind in "OS":
        return "text", [v.decode() if isinstance(v, bytes) else v for v in raw.tolist()]
    return raw.dtype.kind, raw.tolist()


def assert_same_values(a: tuple[str, list[Any]], b: tuple[str, list[Any]]) -> None:
    assert a[0] == b[0]
    if a[0] == "text":
        assert a[1] == b[1]
    else:
        np.testing.assert_array_equal(np.array(a[1]), np.array(b[1]))


def loompy_file(tmp_path, values: Any) -> str:
    path = os.fspath(tmp_path / "loompy.loom")
    loompy.create(path, np.zeros((2, N_COLS), np.float32), {"g": np.arange(2)}, {"x": values})
    return path


def loomfile_create(tmp_path, values: Any) -> str:
    path = os.fspath(tmp_path / "loomfile.loom")
    loomfile.create(path, np.zeros((2, N_COLS), np.float32), {"g": np.arange(2)}, {"x": values})
    return path


def one_conversion_warning(record: list[warnings.WarningMessage], count: int, shown: str) -> None:
    ours = [w for w in record if "converted to text" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in record]
    message = str(ours[0].message)
    assert issubclass(ours[0].category, UserWarning)
    assert message.startswith(f"Column attribute 'x': {count} value")
    assert shown in message
    assert ours[0].filename == __file__  # stacklevel points at the caller's line


@pytest.mark.parametrize("case", list(MIXTURES))
def test_create_stores_what_loompy_stores_and_warns(tmp_path, case: str) -> None:
    values, count, shown = MIXTURES[case]
    expected = stored(loompy_file(tmp_path, values), "x")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        path = loomfile_create(tmp_path, values)
    one_conversion_warning(record, count, shown)
    assert_same_values(stored(path, "x"), expected)
    with loomfile.connect(path, "r") as ds, loompy.connect(loompy_file(tmp_path, values), "r") as lp:
        np.testing.assert_array_equal(ds.ca.x, lp.ca.x)


@pytest.mark.parametrize("case", list(MIXTURES))
@pytest.mark.parametrize("how", ["item", "attribute"])
def test_setting_an_attribute_stores_what_loompy_stores_and_warns(tmp_path, case: str, how: str) -> None:
    values, count, shown = MIXTURES[case]
    path = loomfile_create(tmp_path, np.arange(N_COLS))
    lp_path = loompy_file(tmp_path, np.arange(N_COLS))
    with loompy.connect(lp_path) as lp:
        lp.ca["x"] = values
    with loomfile.connect(path) as ds, warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if how == "item":
            ds.ca["x"] = values
        else:
            ds.ca.x = values
    one_conversion_warning(record, count, shown)
    assert_same_values(stored(path, "x"), stored(lp_path, "x"))


def test_geneformer_filters_on_the_text_none(tmp_path) -> None:
    """Geneformer's tokenizer sets ids with None and keeps the rows whose id is not the text "None"."""
    path = loomfile_create(tmp_path, np.arange(N_COLS))
    with loomfile.connect(path) as ds:
        with pytest.warns(UserWarning, match=r"Row attribute 'gene_ids_collapsed': 1 value converted"):
            ds.ra["gene_ids_collapsed"] = ["ENSG1", None]
        keep = np.where(ds.ra["gene_ids_collapsed"] != "None")[0]
    assert keep.tolist() == [0]


def test_add_columns_converts_as_create_does(tmp_path) -> None:
    path = loomfile_create(tmp_path, np.array(["a", "b", "c", "d"]))
    lp_path = loompy_file(tmp_path, np.array(["a", "b", "c", "d"]))
    new = {"x": ["e", None]}
    with loompy.connect(lp_path) as lp:
        lp.add_columns(np.ones((2, 2), np.float32), new)
    with loomfile.connect(path) as ds, pytest.warns(UserWarning, match=r"'x': 1 value converted to text"):
        ds.add_columns(np.ones((2, 2), np.float32), new)
    assert_same_values(stored(path, "x"), stored(lp_path, "x"))


@pytest.mark.parametrize("case", list(PANDAS))
def test_pandas_input_stores_what_loompy_stores_for_the_array(tmp_path, case: str) -> None:
    values = PANDAS[case]
    expected = stored(loompy_file(tmp_path, np.asarray(values)), "x")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        path = loomfile_create(tmp_path, values)
    lossy = expected[0] == "text" and any(not isinstance(v, str) for v in np.asarray(values, dtype=object))
    assert len([w for w in record if "converted to text" in str(w.message)]) == (1 if lossy else 0)
    got = stored(path, "x")
    if case == "categorical_int":  # loomfile keeps the integer labels; so does loompy
        assert got[0] == expected[0] == "i"
    assert_same_values(got, expected)


def test_categorical_is_stored_as_its_labels(tmp_path) -> None:
    values = pd.Categorical(["T", "B", "T", "NK"], categories=["NK", "T", "B"])
    path = loomfile_create(tmp_path, values)
    assert stored(path, "x") == ("text", ["T", "B", "T", "NK"])


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (np.array(["a", b"b", "c", "d"], dtype=object), "mixes value types.*bytes"),
        (np.array(["a", {"k": 1}, "c", "d"], dtype=object), "dict"),
        (np.array([1, 2j, 3, None], dtype=object), "mixes.*complex"),
        (np.array([1, 2j, 3, 4], dtype=object), "complex"),
        (np.array([["a", None]] * N_COLS, dtype=object), "2-D array mixing"),
        (["a\x00b", "c", "d", None], "NUL"),
    ],
    ids=["str_and_bytes", "dict", "complex_and_none", "complex", "2d_mixture", "nul"],
)
def test_what_no_caller_can_mean_is_still_refused(tmp_path, values: Any, problem: str) -> None:
    with pytest.raises(LoomValueError, match=f"Column attribute 'x'.*({problem})"):
        loomfile_create(tmp_path, values)
    assert not os.path.exists(tmp_path / "loomfile.loom")


def test_a_none_global_attribute_is_refused_as_loompy_refuses_it(tmp_path) -> None:
    path = loomfile_create(tmp_path, np.arange(N_COLS))
    with loomfile.connect(path) as ds, pytest.raises(LoomValueError, match="Global attribute 'title'"):
        ds.attrs["title"] = None


# --- pandas matrices: layers, create, add_columns, block writes --------------------------------------


def h5_matrix(path: str, name: str = "matrix") -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[name][()]


@pytest.mark.parametrize(
    ("frame", "dtype"),
    [
        (pd.DataFrame(np.arange(8, dtype=np.float32).reshape(2, N_COLS)), np.float32),
        (pd.DataFrame(np.arange(8).reshape(2, N_COLS)).astype("Int64"), np.int64),
        (pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": [3, 4], "d": [5, 6]}), np.float64),
        (pd.DataFrame(np.arange(8).reshape(2, N_COLS), dtype=np.uint16), np.uint16),
    ],
    ids=["float32", "Int64", "mixed-int-float", "uint16"],
)
def test_a_dataframe_is_a_matrix_of_its_numpy_type(tmp_path, frame: pd.DataFrame, dtype: type) -> None:
    path = os.fspath(tmp_path / "df.loom")
    loomfile.create(path, frame, {"g": pd.Series([1, 2])}, {"c": pd.Index(list("abcd"))})
    stored = h5_matrix(path)
    assert stored.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(stored, frame.to_numpy(dtype=dtype))
    with loomfile.connect(path) as ds:
        ds["again"] = frame
        ds[:, 1:3] = frame.iloc[:, :2] * 0
        ds.add_columns({"": frame.iloc[:, :1], "again": frame.iloc[:, :1]}, {"c": pd.Series(["e"])})
    expected = frame.to_numpy(dtype=dtype).copy()
    expected[:, 1:3] = 0
    np.testing.assert_array_equal(h5_matrix(path), np.c_[expected, frame.to_numpy(dtype=dtype)[:, :1]])
    np.testing.assert_array_equal(h5_matrix(path, "layers/again")[:, :N_COLS], frame.to_numpy(dtype=dtype))


def test_a_dataframe_with_missing_values_is_refused_as_nan_is(tmp_path) -> None:
    frame = pd.DataFrame(np.ones((2, N_COLS))).astype("Int64").mask(np.eye(2, N_COLS, dtype=bool))
    with pytest.raises(LoomValueError, match="main matrix contains NaN"):
        loomfile.create(os.fspath(tmp_path / "na.loom"), frame, {}, {})
    assert not os.path.exists(tmp_path / "na.loom")
