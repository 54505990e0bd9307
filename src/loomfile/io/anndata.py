"""The AnnData bridge: a Loom file (or a view of one) as an ``anndata.AnnData``, and back.

The mapping is anndata's own (``anndata.io.read_loom`` and ``write_loom``): the AnnData is the
Loom file transposed, cells x genes. Layers become ``X`` and ``layers``, column attributes ``obs``
(multi-dimensional ones ``obsm``), row attributes ``var``/``varm``. loomfile keeps what anndata
drops: graphs become ``obsp``/``varp`` and global attributes ``uns``, both ways, and ``obsm``/``varm``
are written by default. docs/anndata.md has the table, item by item, and every difference.

anndata is an optional dependency (``pip install 'loomfile[anndata]'``), imported only when these
functions run. The matrices never go through a dense copy when they are sparse: layers are read
with the chunk engine's sparse extraction, and a sparse ``X`` is written band by band.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sparse

from .._core.graphs import to_coo
from .._core.layers import check_layer_value
from .._errors import LoomError, LoomFormatError, LoomKeyError, LoomNotFoundError, LoomValueError
from .._format import spec as fmt
from .._format.names import CELL_IDS, GENE_NAMES, name_attribute
from .._warn import warn_caller
from . import _uns

if TYPE_CHECKING:
    from types import ModuleType

    from .._core.attributes import AttributeManager
    from .._core.view import Sliceable

__all__ = ["AnnDataImportError", "from_anndata", "to_anndata"]

# read_loom's conventions: the layer used for X when there is one, the name the main matrix gets
# among the layers then, and the uns entries its ``cleanup`` fills with constant obs/var columns.
DEFAULT_X_LAYER = "spliced"
MAIN_LAYER_NAME = "matrix"
CLEANUP_KEYS = ("loom-var", "loom-obs")
# read_loom's default names, and where other tools keep them when a file lacks those
DEFAULT_NAMES = {"Gene": GENE_NAMES, "CellID": CELL_IDS}  # by axis: rows (var), columns (obs)


class AnnDataImportError(LoomError, ImportError):
    """The AnnData bridge was used without anndata installed."""


def _import_anndata(what: str) -> ModuleType:
    try:
        import anndata
    except ImportError as e:
        msg = f"{what} needs anndata: pip install 'loomfile[anndata]'"
        raise AnnDataImportError(msg) from e
    return anndata


def read_h5ad(path: str | os.PathLike[str]) -> Any:
    """``anndata.read_h5ad(path)``, with errors that say what is wrong with the file."""
    anndata = _import_anndata("reading .h5ad files")
    path = os.fspath(path)
    if not os.path.isfile(path):
        msg = f"No such file: '{path}'"
        raise LoomNotFoundError(msg)
    with warnings.catch_warnings(record=True) as seen:  # on a file that is no .h5ad, anndata
        warnings.simplefilter("always")  # warns about every element before it fails
        try:
            adata = anndata.read_h5ad(path)
        except (OSError, TypeError, KeyError, ValueError, AttributeError) as e:
            detail = " ".join(str(e).split())[:200]
            msg = f"'{path}' is not an AnnData .h5ad file anndata can read ({type(e).__name__}: {detail})"
            raise LoomFormatError(msg) from e
    for w in seen:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return adata


def _pandas() -> ModuleType:
    """pandas, which anndata depends on (imported once anndata is known to be there)."""
    import pandas

    return pandas


# --- Loom -> AnnData ----------------------------------------------------------------------------------


def to_anndata(
    source: Sliceable,
    *,
    layers: Iterable[str] | None = None,
    sparse: bool = True,
    X_name: str | None = None,
    obs_names: str | None = "CellID",
    var_names: str | None = "Gene",
    dtype: Any = "float32",
    obsm_mapping: Mapping[str, Iterable[str]] | None = None,
    varm_mapping: Mapping[str, Iterable[str]] | None = None,
    cleanup: bool = False,
) -> Any:
    """A Loom file or view as an ``anndata.AnnData`` (cells x genes), like ``anndata.io.read_loom``.

    Parameters
    ----------
    source
        A :class:`LoomConnection` or :class:`LoomView` (``ds.to_anndata()`` and
        ``view.to_anndata()`` call this).
    layers
        Names of the Loom layers to put in ``adata.layers`` ("" is the main matrix, stored as
        "matrix"). Default: every layer, the main matrix too when ``X`` is another layer.
    sparse
        ``X`` and the layers as ``scipy.sparse.csr_matrix`` (default) or dense arrays.
    X_name
        The layer to use as ``X``. Default: "spliced" when the file has it (velocyto's files),
        else the main matrix, as read_loom; a name given here must exist.
    obs_names, var_names
        The column/row attribute holding the cell/gene names (the index of ``obs``/``var``).
        When the file has no ``CellID``/``Gene`` (the defaults), the attribute other tools keep
        them in is used (loomR's ``cell_names``/``gene_names``, anndata's ``obs_names``/
        ``var_names``...; see ``loomfile._names``); with None, or none found, the names are
        "0", "1", ...
    dtype
        The dtype of ``X`` (read_loom's float32 by default; None keeps the layer's). The other
        layers keep their stored dtype.
    obsm_mapping, varm_mapping
        ``{"X_umap": ["umap_1", "umap_2"]}``: one-dimensional attributes stacked into an
        ``obsm``/``varm`` matrix instead of ``obs``/``var`` columns.
    cleanup
        Move ``obs``/``var`` columns holding one value into ``uns["loom-obs"]``/``uns["loom-var"]``
        (read_loom's option; :func:`from_anndata` puts them back as attributes).

    Examples
    --------
    >>> with loomfile.connect("data.loom", "r") as ds:
    ...     adata = ds.to_anndata()
    """
    anndata = _import_anndata("to_anndata")
    x_layer = _x_layer(source, X_name)
    layer_keys = _layer_keys(source, layers, x_layer)
    n_rows, n_cols = source.shape
    var, varm = _axis_frames(source.ra, var_names, varm_mapping or {}, n_rows)
    obs, obsm = _axis_frames(source.ca, obs_names, obsm_mapping or {}, n_cols)
    uns = {name: _uns.decode(source.attrs[name]) for name in source.attrs.keys() if name != fmt.SPEC_VERSION_NAME}
    categories = uns.pop(_uns.CATEGORIES, None)
    _as_categoricals(obs, categories, "obs")
    _as_categoricals(var, categories, "var")
    if cleanup:
        uns.update(_constant_columns(obs, "loom-obs"))
        uns.update(_constant_columns(var, "loom-var"))
    return anndata.AnnData(
        _read_layer(source, x_layer, sparse, None if dtype is None else np.dtype(dtype)),
        obs=obs,
        var=var,
        layers={key: _read_layer(source, name, sparse, None) for key, name in layer_keys},
        obsm=obsm or None,
        varm=varm or None,
        obsp={name: _graph_csr(source.col_graphs[name], f"obsp[{name!r}]") for name in source.col_graphs.keys()}
        or None,
        varp={name: _graph_csr(source.row_graphs[name], f"varp[{name!r}]") for name in source.row_graphs.keys()}
        or None,
        uns=uns,
    )


def _graph_csr(graph: sparse.coo_matrix, what: str) -> sparse.csr_matrix:
    """A Loom graph (edges, repeats allowed) as the CSR matrix AnnData keeps, where an edge given
    twice becomes one with the weights summed: said in a warning, as it changes the graph."""
    csr = graph.tocsr()
    csr.sum_duplicates()
    if csr.nnz < graph.nnz:
        warn_caller(
            f"{what}: {graph.nnz - csr.nnz} repeated edges of the Loom graph merged into one each "
            "(weights summed), as a CSR matrix holds each edge once"
        )
    return csr


def _x_layer(source: Sliceable, X_name: str | None) -> str:
    names = source.layers.keys()
    if X_name is None:
        return DEFAULT_X_LAYER if DEFAULT_X_LAYER in names else ""
    if X_name not in names:
        msg = f"X_name {X_name!r} is not a layer of this file; its layers are {names}"
        raise LoomKeyError(msg)
    return X_name


def _layer_keys(source: Sliceable, layers: Iterable[str] | None, x_layer: str) -> list[tuple[str, str]]:
    """(AnnData layer key, Loom layer name) for each layer to read; "" is keyed "matrix"."""
    names = source.layers.keys()
    if layers is None:
        chosen = [name for name in names if name != "" or x_layer != ""]
    else:
        chosen = _picked(layers, names, "layers", "this file's layers")
    keys = [(MAIN_LAYER_NAME if name == "" else name, name) for name in chosen]
    if "" in chosen and MAIN_LAYER_NAME in chosen:
        msg = f"The main matrix and the layer {MAIN_LAYER_NAME!r} would both be layers[{MAIN_LAYER_NAME!r}]"
        raise LoomValueError(msg)
    return keys


def _picked(chosen: Iterable[str], available: list[str], what: str, where: str) -> list[str]:
    """The names in ``chosen`` (one name or several), each checked to be one of ``available``."""
    names = [chosen] if isinstance(chosen, str) else list(chosen)
    unknown = [name for name in names if name not in available]
    if unknown:
        msg = f"The {what} {unknown} do not exist; {where} are {available}"
        raise LoomKeyError(msg)
    return names


def _read_layer(source: Sliceable, name: str, as_sparse: bool, dtype: np.dtype[Any] | None) -> Any:
    """A layer transposed to cells x genes: CSR from the sparse extraction, or a dense array."""
    layer = source.layers[name]
    if as_sparse:
        return _transposed_csr(layer, np.dtype(layer.dtype) if dtype is None else dtype)
    dense = np.asarray(layer[:, :]).T
    return dense if dtype is None else dense.astype(dtype, copy=False)


def _transposed_csr(layer: Any, dtype: np.dtype[Any]) -> sparse.csr_matrix:
    """The layer as a cells x genes CSR matrix, built a band of cells at a time into arrays that
    grow in place (``ndarray.resize`` reallocates: large blocks are remapped, not copied), so the
    peak is the result plus one band: no whole COO copy beside the CSR (3.9x the CSR before)."""
    n_genes, n_cells = layer.shape
    width = max(64, CSR_BAND_BYTES // max(1, n_genes * dtype.itemsize) // 64 * 64)
    index_dtype = np.int32 if n_genes < 2**31 else np.int64
    data = np.empty(0, dtype=dtype)
    indices = np.empty(0, dtype=index_dtype)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    nnz = 0
    for lo in range(0, n_cells, width):
        hi = min(n_cells, lo + width)
        band = layer.sparse(cols=np.arange(lo, hi), dtype=dtype)  # genes x (hi - lo), COO
        part = sparse.csr_matrix((band.data, (band.col, band.row)), shape=(hi - lo, n_genes))
        del band
        part.sort_indices()
        end = nnz + part.nnz
        if end > data.size:  # room for the rest at the density seen so far (and 2% more)
            grown = max(end, int(end / hi * n_cells * 1.02))
            data.resize(grown, refcheck=False)
            indices.resize(grown, refcheck=False)
        data[nnz:end] = part.data
        indices[nnz:end] = part.indices
        indptr[lo + 1 : hi + 1] = nnz + part.indptr[1:]
        nnz = end
    data.resize(nnz, refcheck=False)
    indices.resize(nnz, refcheck=False)
    if nnz < 2**31:
        indptr = indptr.astype(np.int32)
    return sparse.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))


CSR_BAND_BYTES = 8 << 20  # a band of cells, counted dense, read at a time by _transposed_csr


def _axis_frames(
    attrs: AttributeManager, index_key: str | None, mapping: Mapping[str, Iterable[str]], n: int
) -> tuple[Any, dict[str, Any]]:
    """The obs (or var) DataFrame and obsm (varm) of one axis, as read_loom's _fmt_loom_axis_attrs.

    One-dimensional attributes (and (n, 1) ones) are columns, the one named ``index_key`` the
    index; wider ones are obsm/varm arrays, compound ones obsm/varm DataFrames.
    """
    pd = _pandas()

    values = {name: attrs[name] for name in attrs.keys()}
    matrices: dict[str, Any] = {}
    for key, names in mapping.items():
        names = list(names)
        missing = [name for name in names if name not in values]
        if missing:
            msg = f"The mapping for {key!r} names attributes that do not exist: {missing}"
            raise LoomKeyError(msg)
        matrices[key] = np.array([values.pop(name) for name in names]).T
    columns: dict[str, Any] = {}
    for name, value in values.items():
        if value.ndim == 1 and value.dtype.names is None:
            columns[name] = value
        elif value.ndim == 2 and value.shape[1] == 1:
            columns[name] = value[:, 0]
        else:
            matrices[name] = value
    index = pd.Index(np.arange(n).astype(str))
    if index_key in DEFAULT_NAMES and index_key not in columns:
        # the file keeps its names where another tool does (loomR's gene_names, anndata's obs_names)
        index_key = name_attribute(columns, DEFAULT_NAMES[index_key]) or index_key
    if index_key is not None and index_key in columns:
        index = pd.Index(columns.pop(index_key).astype(str), name=index_key)
    frame = pd.DataFrame(columns, index=index)
    for name, value in matrices.items():
        if value.dtype.names is not None and value.ndim == 1:
            matrices[name] = pd.DataFrame(value, index=frame.index.copy())
    return frame, matrices


def _constant_columns(frame: Any, key: str) -> dict[str, dict[str, Any]]:
    """read_loom's ``cleanup``: remove the columns holding one value; {key: {column: value}}."""
    constant = {name: frame[name].iloc[0] for name in frame.columns if frame[name].nunique(dropna=False) == 1}
    frame.drop(columns=list(constant), inplace=True)
    return {key: constant} if constant else {}


# --- AnnData -> Loom ----------------------------------------------------------------------------------


def from_anndata(
    adata: Any,
    filename: str | os.PathLike[str],
    *,
    obs_names: str | None = "CellID",
    var_names: str | None = "Gene",
    uns: bool | Iterable[str] = True,
) -> None:
    """Write an ``anndata.AnnData`` as a Loom file (genes x cells), like ``AnnData.write_loom``.

    ``X`` becomes the main matrix and every layer a layer, transposed, sparse ones written band
    by band (never dense in memory); ``obs``/``var`` columns become column/row attributes,
    ``obsm``/``varm`` multi-dimensional ones, ``obsp``/``varp`` column/row graphs and ``uns``
    global attributes. An existing file at ``filename`` is replaced once the new one is complete.

    Parameters
    ----------
    adata
        The AnnData. ``X`` must be set; layers hold numbers (Loom has no bool matrices).
    filename
        Where to write.
    obs_names, var_names
        The column/row attribute to store the cell/gene names in ("CellID" and "Gene", the names
        read_loom and :func:`to_anndata` read them from); None leaves them out.
    uns
        Which ``uns`` entries to write as global attributes: all (True), none (False) or those
        named. Numbers, strings and arrays of them are stored as they are; nested entries (dicts,
        DataFrames: scanpy's ``neighbors``, ``pca``, ``rank_genes_groups``) as one JSON text each,
        which :func:`to_anndata` turns back into the same dict (docs/anndata.md).

    Examples
    --------
    >>> loomfile.from_anndata(adata, "pbmc.loom")
    """
    anndata = _import_anndata("from_anndata")
    if not isinstance(adata, anndata.AnnData):
        msg = f"from_anndata needs an anndata.AnnData, not {type(adata).__name__}"
        raise LoomValueError(msg)
    layers = _layers_for_file(adata)
    uns_items = _uns_items(adata.uns, uns)
    if adata.raw is not None:
        warn_caller(
            f"adata.raw ({adata.raw.n_vars} genes) is not written: a Loom file has one set of genes. "
            "To keep it, write adata.raw.to_adata() to a Loom file of its own"
        )
    var_constants, obs_constants = (
        uns_items.pop(key) if isinstance(uns_items.get(key), Mapping) else {} for key in CLEANUP_KEYS
    )
    row_attrs = _attrs_for_file(adata.var, adata.varm, var_names, "var", var_constants)
    col_attrs = _attrs_for_file(adata.obs, adata.obsm, obs_names, "obs", obs_constants)
    if _uns.CATEGORIES in uns_items:
        msg = f"uns[{_uns.CATEGORIES!r}] is the name loomfile records categories under; rename the entry"
        raise LoomValueError(msg)
    categories = {
        axis: found for axis, frame in (("obs", adata.obs), ("var", adata.var)) if (found := _categories(frame))
    }
    if categories:
        uns_items[_uns.CATEGORIES] = categories
    file_attrs = {
        key: _uns.encode(value, f"uns[{key!r}]")
        if _uns.needs_json(value)
        else fmt.normalize_values(value, f"uns[{key!r}]", allow_scalar=True)
        for key, value in uns_items.items()
    }
    row_graphs = {name: to_coo(g, adata.n_vars, f"varp[{name!r}]") for name, g in adata.varp.items()}
    col_graphs = {name: to_coo(g, adata.n_obs, f"obsp[{name!r}]") for name, g in adata.obsp.items()}
    _write(os.fspath(filename), layers, (row_attrs, col_attrs), (row_graphs, col_graphs), file_attrs)


def _as_matrix(values: Any) -> Any:
    """An AnnData matrix (numpy, scipy.sparse, or anything numpy reads) transposed to genes x cells."""
    if sparse.issparse(values):
        return values.T
    return np.asarray(values).T


def _layers_for_file(adata: Any) -> dict[str, Any]:
    if adata.X is None:
        msg = "The AnnData has no X; the Loom main matrix needs one"
        raise LoomValueError(msg)
    if "" in adata.layers:
        msg = "The AnnData has a layer named ''; that is the Loom name of the main matrix (X)"
        raise LoomValueError(msg)
    main, others = adata.X, dict(adata.layers.items())
    if "matrix" in others and any(_same_values(main, v) for k, v in others.items() if k != "matrix"):
        # read_loom (and to_anndata) put the Loom main matrix in layers["matrix"] when X is another
        # layer ("spliced"), itself among the layers too: that file's main matrix comes back as
        # the main matrix, and X, a copy of a layer, is not stored twice
        main = others.pop("matrix")
    layers = {"": _as_matrix(main)}
    layers.update((name, _as_matrix(value)) for name, value in others.items())
    for name, value in layers.items():
        fmt.check_name("Layer", name, allow_empty=True)
        check_layer_value(value, name, (adata.n_vars, adata.n_obs))
    return layers


def _same_values(a: Any, b: Any) -> bool:
    """Whether two AnnData matrices hold the same numbers (their dtypes may differ: X is float32
    where the layer it was read from is stored as integers)."""
    if a.shape != b.shape:
        return False
    if sparse.issparse(a) and sparse.issparse(b):
        return bool((a != b).nnz == 0)
    a = a.toarray() if sparse.issparse(a) else np.asarray(a)
    b = b.toarray() if sparse.issparse(b) else np.asarray(b)
    return bool(np.array_equal(a, b))


def _uns_items(entries: Mapping[str, Any], chosen: bool | Iterable[str]) -> dict[str, Any]:
    """The uns entries to write (nested ones are written as JSON text, see loomfile.io._uns)."""
    if chosen is True:
        keys = list(entries)
    elif chosen is False:
        keys = []
    else:
        keys = _picked(chosen, list(entries), "uns entries", "the entries of uns")
    items = {key: entries[key] for key in keys}
    if fmt.SPEC_VERSION_NAME in items:
        msg = f"uns[{fmt.SPEC_VERSION_NAME!r}] would replace the file's spec version, which loomfile writes itself"
        raise LoomValueError(msg)
    return items


def _attrs_for_file(
    frame: Any, multi: Mapping[str, Any], index_key: str | None, axis_name: str, constants: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """The attributes of one axis: obs (var) columns, the index, obsm (varm) and cleanup constants."""
    n = frame.shape[0]
    attrs = {str(name): _column_values(frame[name], f"{axis_name}[{name!r}]") for name in frame.columns}
    sources = {name: f"{axis_name} column" for name in attrs}
    additions = [(f"{axis_name}m", str(key), _multi_values(value)) for key, value in multi.items()]
    additions += [
        (f"uns['loom-{axis_name}']", str(key), np.full(n, value)) for key, value in constants.items()
    ]
    if index_key is not None:
        additions.append((f"{axis_name}_names", index_key, np.asarray(frame.index.astype(str))))
    for origin, name, value in additions:
        if name in attrs:
            msg = f"{origin} {name!r} and the {sources[name]} {name!r} would both be the Loom attribute {name!r}"
            raise LoomValueError(msg)
        attrs[name] = value
        sources[name] = origin
    word = "Row" if axis_name == "var" else "Column"
    return {
        name: fmt.normalize_values(value, f"{word} attribute {name!r} ({sources[name]})")
        for name, value in attrs.items()
    }


def _categories(frame: Any) -> dict[str, dict[str, Any]]:
    """The categories (in order) and orderedness of each categorical column of obs or var: the
    attributes hold the labels (what loompy and read_loom read), this lets to_anndata rebuild the
    same pandas Categorical."""
    pd = _pandas()
    found = {}
    for name in frame.columns:
        dtype = frame[name].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            found[str(name)] = {"categories": np.asarray(dtype.categories), "ordered": bool(dtype.ordered)}
    return found


def _as_categoricals(frame: Any, recorded: Any, axis_name: str) -> None:
    """Turn the columns ``recorded`` (from :func:`_categories`) back into pandas Categoricals, when
    their values are still among the recorded categories (else they stay plain, with a warning:
    the attribute was changed since)."""
    pd = _pandas()
    if not isinstance(recorded, Mapping):
        return
    for name, entry in recorded.get(axis_name, {}).items():
        if name not in frame.columns or not isinstance(entry, Mapping) or "categories" not in entry:
            continue
        categories = np.asarray(entry["categories"])
        values = frame[name].to_numpy()
        if not np.isin(values, categories).all():
            warn_caller(
                f"{axis_name}[{name!r}] holds values that are not among the categories recorded when "
                "it was written; it stays a plain column"
            )
            continue
        frame[name] = pd.Categorical(values, categories=categories, ordered=bool(entry.get("ordered")))


def _column_values(series: Any, what: str) -> Any:
    """A DataFrame column as an array Loom can hold: categoricals as their category values,
    pandas' nullable numbers as numpy numbers; missing values only in float columns."""
    pd = _pandas()

    dtype = series.dtype
    values_dtype = dtype.categories.dtype if isinstance(dtype, pd.CategoricalDtype) else dtype
    if bool(series.isna().any()) and not pd.api.types.is_float_dtype(values_dtype):
        msg = f"{what} has missing values (NaN/None/NA); a Loom attribute holds them only as float NaN"
        raise LoomValueError(msg)
    numpy_dtype = getattr(values_dtype, "numpy_dtype", None)  # pandas' nullable Int64, Float32, boolean...
    if numpy_dtype is not None:
        return series.to_numpy(dtype=numpy_dtype, na_value=np.nan)
    return np.asarray(series)


def _multi_values(value: Any) -> Any:
    """An obsm/varm entry as an attribute: dense arrays; DataFrames as compound records."""
    if sparse.issparse(value):
        return value.toarray()
    if isinstance(value, _pandas().DataFrame):
        return value.to_records(index=False)
    return np.asarray(value)


def _write(
    filename: str,
    layers: Mapping[str, Any],
    attrs: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
    graphs: tuple[Mapping[str, sparse.coo_matrix], Mapping[str, sparse.coo_matrix]],
    file_attrs: Mapping[str, Any],
) -> None:
    """The checked items into a new file, put in place only once complete."""
    from .._core.connection import new

    with new(filename, file_attrs=file_attrs) as ds:
        for name, value in layers.items():
            ds.layers[name] = value
        for manager, values in ((ds.ra, attrs[0]), (ds.ca, attrs[1])):
            for name, value in values.items():
                manager[name] = value
        for graph_manager, adjacency in ((ds.row_graphs, graphs[0]), (ds.col_graphs, graphs[1])):
            for name, g in adjacency.items():
                graph_manager[name] = g
