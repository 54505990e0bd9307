"""The Loom layout: paths, spec versions, dtype rules, string coding, timestamps.

This is the only module that knows how a Loom file is laid out in HDF5. Everything else asks it for
paths and for the encoded/decoded form of values. It imports neither h5py nor any other layer of
loomfile: the rules that depend on how HDF5 declares a string (its dtype) are in ``_store.strings``.
"""

from __future__ import annotations

import datetime
import html
import numbers
import re
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .._errors import LoomValueError
from .._warn import warn_caller

Axis = Literal[0, 1]

SPEC_VERSION = "3.0.0"
MATRIX_PATH = "/matrix"
LAYERS_GROUP = "/layers"
GLOBALS_GROUP = "/attrs"
ATTR_GROUPS = ("/row_attrs", "/col_attrs")
GRAPH_GROUPS = ("/row_graphs", "/col_graphs")
LEGACY_GRAPH_GROUPS = ("/row_edges", "/col_edges")
REQUIRED_GROUPS = (GLOBALS_GROUP, LAYERS_GROUP, *ATTR_GROUPS, *GRAPH_GROUPS)
TIMESTAMP_ATTR = "last_modified"
SPEC_VERSION_NAME = "LOOM_SPEC_VERSION"

MATRIX_DTYPES = frozenset(
    [
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    ]
)
CHUNK_EDGE = 64
COMPRESSION = "gzip"
COMPRESSION_LEVEL = 2
AXIS_NAMES = ("row", "column")


# --- paths ---------------------------------------------------------------------------------------


def layer_path(name: str) -> str:
    """HDF5 path of a layer; the main matrix is the layer named ""."""
    return MATRIX_PATH if name == "" else f"{LAYERS_GROUP}/{name}"


def attr_path(axis: int, name: str) -> str:
    return f"{ATTR_GROUPS[axis]}/{name}"


def graph_path(axis: int, name: str) -> str:
    return f"{GRAPH_GROUPS[axis]}/{name}"


def check_name(kind: str, name: object, *, allow_empty: bool = False) -> str:
    """Return ``name`` if it can name an HDF5 object, else raise naming the problem."""
    if not isinstance(name, str):
        msg = f"{kind} names must be strings, not {type(name).__name__} ({name!r})"
        raise LoomValueError(msg)
    if name == "" and not allow_empty:
        msg = f"{kind} name cannot be empty"
        raise LoomValueError(msg)
    if "/" in name:
        msg = f"{kind} name {name!r} cannot contain '/'"
        raise LoomValueError(msg)
    if "\x00" in name:
        msg = f"{kind} name {name!r} cannot contain a NUL character"
        raise LoomValueError(msg)
    if name in (".", ".."):
        msg = f"{kind} name {name!r} is not allowed"
        raise LoomValueError(msg)
    return name


# --- timestamps and versions ---------------------------------------------------------------------


def timestamp() -> str:
    """Compact ISO 8601 UTC timestamp, as loompy writes it (``20241107T101530.123456Z``)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


_TIMESTAMP = re.compile(r"\d{8}T\d{6}(\.\d{1,6})?Z?")


def check_timestamp(value: object) -> str:
    """``value`` if it is a timestamp in the form :func:`timestamp` writes, else raise."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        msg = (
            f"timestamp must be a string like {timestamp()!r} (compact ISO 8601, UTC), "
            f"not {type(value).__name__} {value!r}"
        )
        raise LoomValueError(msg)
    return value


def parse_spec_version(raw: object) -> tuple[int, ...]:
    """Parse a LOOM_SPEC_VERSION value (str, bytes, scalar or array) into a comparable tuple.

    Unparseable or missing versions count as ``(0, 0, 0)`` (an old file).
    """
    value = raw
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", "replace")
    parts = re.findall(r"\d+", str(value))
    if not parts:
        return (0, 0, 0)
    return tuple(int(p) for p in parts[:3])


def work_chunks(chunks: tuple[int, ...] | None) -> tuple[int, int]:
    """The chunk shape to read and write a layer in: its own, or CHUNK_EDGE square for a layer
    stored contiguously (by another tool), which has none."""
    return (int(chunks[0]), int(chunks[1])) if chunks else (CHUNK_EDGE, CHUNK_EDGE)


def matrix_chunks(shape: tuple[int, int]) -> tuple[int, int]:
    """loompy's chunk shape: 64 x 64, clipped to the matrix (HDF5 needs non-zero chunk edges)."""
    return (max(1, min(CHUNK_EDGE, shape[0])), max(1, min(CHUNK_EDGE, shape[1])))


def matrix_dataset_options(shape: tuple[int, int], dtype: np.dtype[Any]) -> dict[str, Any]:
    """h5py ``create_dataset`` keywords for a layer, matching loompy's layout."""
    return {
        "shape": shape,
        "dtype": dtype,
        "maxshape": (shape[0], None),
        "chunks": matrix_chunks(shape),
        "compression": COMPRESSION,
        "compression_opts": COMPRESSION_LEVEL,
        "shuffle": False,
        "fletcher32": False,
        "fillvalue": 0,
    }


def attr_dataset_options(values: np.ndarray[Any, Any]) -> dict[str, Any]:
    """h5py ``create_dataset`` keywords for a row/column attribute."""
    maxshape = (values.shape[0], *([None] * (values.ndim - 1)))
    options: dict[str, Any] = {"maxshape": maxshape}
    if values.size > 0:
        options.update(compression=COMPRESSION, compression_opts=COMPRESSION_LEVEL, shuffle=False)
    return options


# --- matrices ------------------------------------------------------------------------------------


def check_matrix_dtype(dtype: npt.DTypeLike, what: str) -> np.dtype[Any]:
    """Return the dtype if Loom allows it for a matrix, else raise."""
    dt = np.dtype(dtype)
    if dt.name not in MATRIX_DTYPES:
        msg = (
            f"{what} has dtype {dt}; Loom matrices must be integer or float (one of {sorted(MATRIX_DTYPES)})"
        )
        raise LoomValueError(msg)
    return dt


def check_finite(values: np.ndarray[Any, Any], what: str) -> None:
    """Loom (like loompy) does not allow NaN or infinity in layers.

    A finite sum proves every value finite (NaN and infinities make any sum NaN or infinite), at
    no memory; only a sum that overflowed needs the value-by-value check.
    """
    if values.dtype.kind != "f" or not values.size:
        return
    with np.errstate(all="ignore"):
        if np.isfinite(values.sum()):
            return
    if not np.isfinite(values).all():
        msg = f"{what} contains NaN or infinite values, which Loom layers cannot hold"
        raise LoomValueError(msg)


def cast_for_layer(values: np.ndarray[Any, Any], dtype: np.dtype[Any], what: str) -> np.ndarray[Any, Any]:
    """Values in the layer's dtype, refusing what the cast would change (HDF5 would clip, numpy wrap)."""
    if dtype.kind in "iu" and values.size and not np.can_cast(values.dtype, dtype, "safe"):
        if values.dtype.kind == "f" and not np.array_equal(values, np.trunc(values)):
            msg = f"{what} has dtype {dtype}, but the values assigned have fractional parts"
            raise LoomValueError(msg)
        info = np.iinfo(dtype)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            msg = (
                f"{what} has dtype {dtype}; values from {low} to {high} do not fit in {info.min}..{info.max}"
            )
            raise LoomValueError(msg)
    cast = values.astype(dtype, copy=False)
    if dtype.kind == "f" and values.dtype != dtype:
        check_finite(cast, f"{what} (after conversion to {dtype})")
    return cast


# --- strings -------------------------------------------------------------------------------------

_CHAR_REF = re.compile(r"&#(?:x([0-9a-fA-F]+)|([0-9]+));")


def _unescape_char_ref(match: re.Match[str]) -> str:
    hexa, dec = match.groups()
    code = int(hexa, 16) if hexa is not None else int(dec)
    try:
        return chr(code)
    except (ValueError, OverflowError):
        return match.group(0)


def unescape_char_refs(text: str) -> str:
    """Undo the XML character references loompy 2 wrote for non-ASCII text (``&#233;`` -> ``é``).

    Only numeric references are decoded: ``&amp;`` in the text stays as it is (loompy's
    ``html.unescape`` turned it into ``&``, changing the user's data).
    """
    return _CHAR_REF.sub(_unescape_char_ref, text) if "&#" in text else text


def escape_legacy(text: str) -> bytes:
    """Encode text for a spec-2 (fixed-length ASCII) file, reversibly.

    ``&#`` is escaped first so that text which already looks like a character reference survives
    :func:`unescape_char_refs`; non-ASCII characters become numeric references, as loompy 2 wrote.
    """
    return text.replace("&#", "&#38;#").encode("ascii", "xmlcharrefreplace")


def decode_bytes(raw: bytes) -> str:
    """Bytes from a file as text: UTF-8 (ASCII is a subset); undecodable bytes are kept as escapes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape")


def decode_text(value: object) -> str:
    """Text read from a file whose string dtype is not known (loompy's ``materialize_attr_values``):
    bytes decoded as UTF-8 (see :func:`decode_bytes`), then any XML character references spec-2
    files hold (see :func:`unescape_char_refs`)."""
    text = decode_bytes(bytes(value)) if isinstance(value, bytes | np.bytes_) else str(value)
    return unescape_char_refs(text)


# --- attribute values ------------------------------------------------------------------------------


def _decode_given_bytes(items: Any, what: str) -> list[str]:
    """Bytes given by the user as text: UTF-8 (ASCII is a subset), strictly (no guessing)."""
    try:
        return [bytes(v).decode("utf-8") for v in items]
    except UnicodeDecodeError as e:
        msg = f"{what} holds bytes that are not valid UTF-8 ({e.object[e.start : e.end]!r}); decode them to str first"
        raise LoomValueError(msg) from None


def _is_missing(value: object) -> bool:
    """None, pandas' NA, or a float NaN: the missing values loompy stores as text."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return isinstance(value, float | np.floating) and value != value


def _is_text_like(value: object) -> bool:
    """What loompy 3.0.8 stringifies in a mixture and a caller can mean: text, real numbers, bools
    and missing values (not bytes, complex numbers, dicts or other objects)."""
    return isinstance(value, str | numbers.Real | np.bool_) or _is_missing(value)


def _check_no_nul(texts: np.ndarray[Any, Any], what: str) -> None:
    if any("\x00" in v for v in texts.ravel()):
        msg = f"{what} contains a string with a NUL character, which HDF5 strings cannot hold"
        raise LoomValueError(msg)


def _to_text(values: np.ndarray[Any, Any], what: str) -> np.ndarray[Any, Any]:
    """Every value as ``str(value)``, as loompy 3.0.8 stores a mixture, with one warning saying how
    many values were converted and to what."""
    flat = values.ravel()
    out = np.empty(values.shape, dtype=object)
    out.ravel()[:] = [str(v) for v in flat]
    _check_no_nul(out, what)
    converted = [v for v in flat if not isinstance(v, str)]
    first: dict[str, object] = {}  # one example per missing value and per type, in order
    for v in converted:
        first.setdefault(str(v) if _is_missing(v) else type(v).__name__, v)
    shown = [f'{v!s} -> "{v!s}"' for v in list(first.values())[:3]]
    more = ", ..." if len(first) > len(shown) else ""
    warn_caller(
        f"{what}: {len(converted)} value{'s' if len(converted) != 1 else ''} converted to text "
        f"({', '.join(shown)}{more})"
    )
    return out


def _object_to_array(values: np.ndarray[Any, Any], what: str) -> np.ndarray[Any, Any]:
    """Resolve an object array into strings or numbers; a mixture with text or missing values
    becomes text (warned), anything else is refused."""
    flat = values.ravel()
    if all(isinstance(v, str) for v in flat):
        return values
    if all(isinstance(v, bytes | np.bytes_) for v in flat):
        out = np.empty(values.shape, dtype=object)
        out.ravel()[:] = _decode_given_bytes(flat, what)
        return out
    if all(isinstance(v, numbers.Number | np.bool_) and not _is_missing(v) for v in flat):
        return np.asarray(flat.tolist()).reshape(values.shape)
    if values.ndim == 1 and all(_is_text_like(v) for v in flat):
        return _to_text(values, what)
    kinds = sorted({type(v).__name__ for v in flat})
    bad = sorted({type(v).__name__ for v in flat if not _is_text_like(v)})
    if len(kinds) == 1:
        msg = f"{what} holds {kinds[0]} values; Loom attributes hold numbers or strings"
    elif bad:
        msg = (
            f"{what} mixes value types ({', '.join(kinds)}); {', '.join(bad)} values have no text form "
            "a reader could rely on: convert them first"
        )
    else:
        msg = f"{what} is a {values.ndim}-D array mixing value types ({', '.join(kinds)}); convert it to one type first"
    raise LoomValueError(msg)


def _as_array(values: Any, what: str) -> np.ndarray[Any, Any]:
    if hasattr(values, "toarray") and callable(values.toarray):  # scipy.sparse
        values = values.toarray()
    if isinstance(values, np.matrix):
        values = np.asarray(values)
        if 1 in values.shape:
            values = values.ravel()
    arr = dense_array(values, what)
    if arr.dtype.kind in "US" and isinstance(values, list | tuple):
        # numpy would quietly turn ["a", 1] into ["a", "1"]: check the items themselves.
        return _object_to_array(np.array(values, dtype=object), what)
    return arr


def from_pandas(value: Any) -> Any:
    """A pandas object (DataFrame, Series, Index, Categorical, extension array) as the numpy array
    ``np.asarray`` makes of it (what loompy stores when a caller passes ``np.asarray(value)``);
    anything else unchanged.

    A DataFrame of numeric columns (nullable ``Int64``/``boolean`` included) becomes a matrix of
    their common numpy type; missing values become NaN (which layers then refuse, naming them).
    """
    if type(value).__module__.partition(".")[0] != "pandas":
        return value
    if value.ndim == 2:
        try:
            dtypes = [np.dtype(getattr(dt, "numpy_dtype", dt)) for dt in value.dtypes]
        except TypeError:  # categorical or other non-numpy columns: numpy's own conversion
            return np.asarray(value)
        if dtypes and all(dt.kind in "biuf" for dt in dtypes):
            if bool(value.isna().to_numpy().any()):
                return value.to_numpy(dtype=np.result_type(np.float64, *dtypes), na_value=np.nan)
            return value.to_numpy(dtype=np.result_type(*dtypes))
    return np.asarray(value)


def dense_array(values: Any, what: str) -> np.ndarray[Any, Any]:
    """``np.asarray(values)``, refusing ragged nested lists with a message naming ``what``."""
    try:
        return np.asarray(from_pandas(values))
    except ValueError as e:
        msg = f"{what} could not be turned into an array ({e}); ragged lists are not allowed"
        raise LoomValueError(msg) from None


def normalize_values(values: Any, what: str, *, allow_scalar: bool = False) -> np.ndarray[Any, Any]:
    """Validate and convert user values for a row, column or global attribute into a storable array.

    The rules (docs/input-rules.md compares them with what loompy 3.0.8 does):

    - ``str`` is stored as UTF-8 text and read back as an object array of ``str``.
    - ``bytes`` (every value bytes) are decoded as UTF-8, explicitly and strictly: bytes that are
      not valid UTF-8 are refused, not escaped or replaced.
    - ``bool`` becomes uint8 (Loom has no bool type): True/False read back as 1/0.
    - Integers and floats keep their dtype; a list mixing them becomes float64 (numpy's rule). NaN
      and infinity are allowed in attributes (only layers refuse them).
    - A 1-D mixture of text, numbers, bools and missing values (None, NaN, pandas' NA), or only
      missing values, is stored as ``str()`` of each value, exactly as loompy 3.0.8 stores it
      (callers filter on the text "None"), with one UserWarning saying what was converted.
    - Mixtures with bytes, complex numbers, dicts or other objects are refused, never stringified.
    - pandas input (Series, Index, Categorical, nullable columns) is taken as ``np.asarray``.
    - Ragged lists, complex numbers, dicts and other objects are refused, and so are strings
      containing NUL (HDF5 strings end at the first NUL).
    - Structured (compound) arrays of numbers and bytes are kept (SCENIC writes them).

    Every refusal is a :class:`LoomValueError` whose message names ``what``.
    """
    arr = _as_array(values, what)
    if arr.ndim == 0 and not allow_scalar:
        msg = f"{what} must be an array with one value per row/column, not a scalar ({values!r})"
        raise LoomValueError(msg)
    kind = arr.dtype.kind
    if kind == "O":
        arr = _object_to_array(arr, what)
        kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.uint8)
    if kind in "iuf":
        return arr
    if kind == "U":
        out = np.empty(arr.shape, dtype=object)
        out.ravel()[:] = [str(v) for v in arr.ravel()]
        arr = out
    elif kind == "S":
        out = np.empty(arr.shape, dtype=object)
        out.ravel()[:] = _decode_given_bytes(arr.ravel(), what)
        arr = out
    elif kind == "V" and arr.dtype.names is not None:
        for field in arr.dtype.names:
            if arr.dtype.fields is not None and arr.dtype.fields[field][0].kind not in "iufbS":
                msg = (
                    f"{what} has a compound field {field!r} of unsupported dtype {arr.dtype.fields[field][0]}"
                )
                raise LoomValueError(msg)
        return arr
    if arr.dtype.kind == "O":
        _check_no_nul(arr, what)
        return arr
    msg = f"{what} has dtype {arr.dtype}; Loom attributes hold integers, floats or strings"
    raise LoomValueError(msg)


def escape_html(text: object) -> str:
    return html.escape(str(text))
