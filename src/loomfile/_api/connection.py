"""The public classes: :class:`LoomConnection` and :class:`LoomView` are the object model
(``_core``) with the operations (``_ops``, ``io``) as methods, and ``connect``/``new`` return them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np

from .. import _progress
from .._core import connection as _connection
from .._core.connection import Connection, Mode
from .._core.view import Sliceable, View
from .._format import spec as fmt
from .._ops import aggregate as _aggregate
from .._ops import columns as _columns
from .._ops import export as _export
from .._ops import scan as _scan
from .._ops import subset as _subset
from .._ops.scan import SCAN_WHAT
from .._store.journal import Durability
from ..io.anndata import to_anndata
from .loompy_aliases import LoompyAliases

__all__ = ["LoomConnection", "LoomView", "connect", "new"]


class AnnDataExport:
    """``to_anndata()`` for connections and views (one signature, for ``help()``; the work is in
    :mod:`loomfile.io.anndata`)."""

    def to_anndata(
        self,
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
        """The file (or view) as an ``anndata.AnnData`` (cells x genes), mapped as ``anndata.io.read_loom`` does.

        ``X`` is "spliced" when present (else the main matrix; ``X_name`` picks another layer),
        sparse CSR unless ``sparse=False``, cast to ``dtype``; ``obs_names``/``var_names`` name the
        attributes holding cell and gene names; ``layers`` picks the layers; ``obsm_mapping`` /
        ``varm_mapping`` stack 1-D attributes into ``obsm``/``varm``; ``cleanup`` moves constant
        columns into ``uns``. Every parameter: :func:`loomfile.io.anndata.to_anndata`; the mapping:
        docs/anndata.md.

        Examples
        --------
        >>> adata = ds.to_anndata(X_name="", obs_names="Barcode")
        """
        source: Sliceable = self  # type: ignore[assignment]  # (only Sliceable classes mix this in)
        return to_anndata(
            source,
            layers=layers,
            sparse=sparse,
            X_name=X_name,
            obs_names=obs_names,
            var_names=var_names,
            dtype=dtype,
            obsm_mapping=obsm_mapping,
            varm_mapping=varm_mapping,
            cleanup=cleanup,
        )


class LoomView(View, AnnDataExport):
    """An in-memory slice of a Loom file, with the same read interface as a connection.

    Created by ``ds.view[rows, cols]`` or yielded by ``ds.scan(...)``; it keeps working after the
    file is closed.
    """


LoomView._view_class = LoomView


class LoomConnection(Connection, AnnDataExport, LoompyAliases):
    """A connection to a Loom file: layers, attributes, graphs and views, like loompy's.

    Use it as a context manager::

        with loomfile.connect("data.loom") as ds:
            print(ds.shape, ds.ca.keys())
    """

    _view_class = LoomView

    def scan(
        self,
        *,
        items: Any = None,
        axis: int | None = None,
        layers: Iterable[str] | str | None = None,
        key: str | None = None,
        batch_size: int = 8 * 64,
        what: Sequence[str] = SCAN_WHAT,
        progress: bool | None = None,
    ) -> Iterator[tuple[int, np.ndarray, LoomView]]:
        """Visit the file in bands of ``batch_size`` rows (axis 0) or columns (axis 1).

        Yields ``(ix, selection, view)``: the start of the band, the indices (into the whole file)
        in this view, and a :class:`LoomView` of those rows/columns. ``items`` restricts the scan
        (indices, a mask, or an int to start from); ``key`` sorts the other axis by that attribute.
        """
        views = _scan.scan(
            self, items=items, axis=axis, layers=layers, key=key, batch_size=batch_size, what=what, progress=progress
        )
        return cast("Iterator[tuple[int, np.ndarray, LoomView]]", views)

    def aggregate(
        self,
        out_file: str | None = None,
        select: Any = None,
        group_by: str | np.ndarray = "Clusters",
        aggr_by: str | Callable[..., Any] = "mean",
        aggr_ca_by: Mapping[str, str] | None = None,
        layer: str = "",
        aggr_ca_if_equal: bool = False,
    ) -> np.ndarray:
        """Collapse the columns into groups: one column per distinct label of ``group_by`` (a column
        attribute, or an array of integer labels), each row reduced with ``aggr_by`` ("mean", "sum",
        "max", "min", "first", "last", "std", "var", "median", "prod", "count" or a function).

        ``aggr_ca_by`` maps column attributes to "mean", "first", "mode" or "tally" (one count
        attribute per value); with ``aggr_ca_if_equal``, other attributes constant within every
        group are kept. Returns the (rows x groups) float64 matrix, and writes it with the row
        attributes and the aggregated column attributes to ``out_file`` if given.
        """
        return _aggregate.aggregate(
            self, out_file, select, group_by, aggr_by, aggr_ca_by, layer, aggr_ca_if_equal
        )

    def subset(
        self, out: str | os.PathLike[str], rows: Any = slice(None), cols: Any = slice(None), *, progress: bool | None = None
    ) -> None:
        """Write the selected rows x columns (every layer, attribute and graph) to a new Loom file.

        Streams band by band (memory stays at a few bands), copies stored chunks as they are where
        whole chunk columns are kept, and cuts graphs to the selected vertices. ``rows``/``cols``
        take what ``ds[rows, cols]`` takes. ``out`` appears only once complete.

        Examples
        --------
        >>> ds.subset("cluster3.loom", cols=ds.ca.ClusterID == 3)
        """
        _subset.subset(self, os.path.expanduser(os.fspath(out)), rows, cols, progress=progress)

    def export(
        self, out_file: str, layer: str | None = None, format: str = "tab", *, progress: bool | None = None
    ) -> None:
        """Write a layer (the main matrix by default) with its row and column attributes.

        ``format="tab"``: a tab-separated text file in loompy's layout. ``format="mtx"``: a folder
        ``out_file`` laid out as 10x's ``filtered_feature_bc_matrix/`` (``matrix.mtx.gz``,
        ``features.tsv.gz`` from Accession/Gene/FeatureType, ``barcodes.tsv.gz`` from CellID),
        which Seurat's ``Read10X``, scanpy's ``read_10x_mtx`` and ``create_from_cellranger`` read.
        """
        axis = 1 if format == "mtx" else 0  # (mtx is written a band of columns at a time)
        with _progress.bar(self.shape[axis], "export", progress, fmt.AXIS_NAMES[axis] + "s") as tick:
            _export.export(self, out_file, layer, format, tick)

    def add_columns(
        self,
        layers: Any,
        col_attrs: Mapping[str, Any],
        *,
        row_attrs: Mapping[str, Any] | None = None,
        fill_values: Any = None,
    ) -> None:
        """Append columns: a matrix (or dict of layers) and their column attributes."""
        with self._store.transaction():
            _columns.add_columns(self, layers, col_attrs, row_attrs=row_attrs, fill_values=fill_values)

    def add_loom(
        self,
        other_file: str,
        key: str | None = None,
        fill_values: Any = None,
        batch_size: int = 1000,
        convert_attrs: bool = False,
        include_graphs: bool = False,
        *,
        progress: bool | None = None,
    ) -> None:
        """Append the columns of another Loom file, aligning rows on the row attribute ``key``."""
        with self._store.transaction():
            _columns.add_loom(
                self, other_file, key, fill_values, batch_size, convert_attrs, include_graphs, progress=progress
            )


def connect(
    filename: str | os.PathLike[str],
    mode: Mode | None = None,
    *,
    validate: bool | Literal["full"] = True,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float = 0,
    durability: Durability | None = None,
    spec_version: str = fmt.SPEC_VERSION,
) -> LoomConnection:
    """Open a Loom file.

    Parameters
    ----------
    filename
        Path of the file, or a URL (``s3://bucket/key.loom``, ``https://...``: any fsspec URL) of
        one to read (mode ``"r"`` only; needs ``pip install 'loomfile[remote]'``).
    mode
        By default the file is opened for reading, and reopened for writing (taking the write lock)
        at the first write: until then other processes can read it, and a file this process may
        not write to opens too. ``"r+"`` takes the write lock at once, as loompy's default does;
        ``"r"`` never writes.
    validate
        Check the file's structure first (metadata only, no data reads) and raise a
        :class:`LoomFormatError` that lists the problems. Files written by loompy 2/3, loomR, SCENIC,
        velocyto and anndata pass. ``"full"``: also read every chunk of every dataset first and
        raise if any is damaged (``LoomValidator.check_deep``; costs about a read of every layer).
    storage_options
        For URLs: options of the fsspec file system (e.g. ``{"anon": True}`` or an S3
        ``endpoint_url``).
    timeout
        Seconds to keep trying while another process holds the file's lock (a writer; for mode
        ``"r+"``, also readers) before raising :class:`LoomLockedError`; 0: raise at once. (Without
        a mode, a first write while another process reads fails at once.) See docs/concurrency.md.
    durability
        ``"full"`` (the default): every write call is on the disk when it returns, and a power cut
        at any moment leaves the file as it was before the call or after it (the journal and the
        file are synced in SQLite's order; a few fsyncs per call). ``"none"``: no fsync at all, for
        scratch files; a killed process still leaves the old or the new file, a power cut may not.
        Default: ``$LOOMFILE_DURABILITY``, else ``"full"``. See docs/reliability.md.
    spec_version
        Accepted as loompy accepts it (the version its validator checked against); loomfile's
        validation accepts every version it can read (spec 2 and 3), so it changes nothing.

    Examples
    --------
    >>> with loomfile.connect("data.loom", "r") as ds:
    ...     genes = ds.ra.Gene
    """
    ds = _connection.connect(
        filename,
        mode,
        validate=validate,
        storage_options=storage_options,
        timeout=timeout,
        durability=durability,
        cls=LoomConnection,
    )
    return cast(LoomConnection, ds)


def new(
    filename: str | os.PathLike[str],
    *,
    file_attrs: Mapping[str, Any] | None = None,
    durability: Durability | None = None,
) -> LoomConnection:
    """Create an empty Loom file and return a read/write connection to it.

    The file is built under a temporary name in the same folder and moved to ``filename`` when the
    connection is closed, so an existing file there is never half-overwritten. ``durability``: as
    in :func:`connect`; with ``"full"`` the file is fsynced before it is renamed into place and the
    folder after, so a power cut leaves the old file (or none) or the complete new one.
    """
    ds = _connection.new(filename, file_attrs=file_attrs, durability=durability, cls=LoomConnection)
    return cast(LoomConnection, ds)
