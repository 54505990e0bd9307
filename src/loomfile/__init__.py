"""loomfile: fast, safe, loompy-compatible Loom files.

Use it as a drop-in for loompy::

    import loomfile as loompy

    with loompy.connect("data.loom") as ds:
        ds[:, ds.ca.ClusterID == 3]
"""

from __future__ import annotations

# loompy's submodules, importable as attributes as in loompy (``loompy.utils.timestamp()``)
from . import (  # noqa: F401  (modules, not names: kept out of __all__)
    attribute_manager,
    bus_file,
    cell_calling,
    global_attribute_manager,
    graph_manager,
    layer_manager,
    loom_layer,
    loom_validator,
    loom_view,
    loompy,
    metadata_loaders,
    normalize,
    utils,
    view_manager,
)
from ._api.connection import LoomConnection, LoomView, connect, new
from ._api.loompy_aliases import create_append
from ._core.attributes import AttributeManager, GlobalAttributeManager
from ._core.connection import create
from ._core.graphs import GraphManager
from ._core.layers import LayerManager, LoomLayer, MemoryLoomLayer
from ._core.validate import LoomValidator
from ._core.view import ViewManager
from ._errors import (
    LoomClosedError,
    LoomError,
    LoomFormatError,
    LoomKeyError,
    LoomLockedError,
    LoomNotFoundError,
    LoomReadOnlyError,
    LoomValueError,
    SelectionError,
)
from ._format.loompy_api import (
    compare_loom_spec_version,
    deprecated,
    get_loom_spec_version,
    materialize_attr_values,
    normalize_attr_values,
)
from ._format.spec import SPEC_VERSION as loom_spec_version
from ._format.spec import timestamp
from ._ops.combine import combine, combine_faster
from .io import create_from_cellranger, create_from_matrix_market, create_from_tsv, from_anndata
from .io._cell_calling import call_cells
from .io.fastq import create_from_fastq
from .io.metadata import (
    load_gene_metadata,
    load_sample_metadata,
    make_row_attrs_from_gene_annotations,
    make_row_attrs_from_gene_metadata,
)
from .io.star import create_from_star
from .to_html import to_html

__version__ = "0.1.0"

__all__ = [
    "AttributeManager",
    "GlobalAttributeManager",
    "GraphManager",
    "LayerManager",
    "LoomClosedError",
    "LoomConnection",
    "LoomError",
    "LoomFormatError",
    "LoomKeyError",
    "LoomLayer",
    "LoomLockedError",
    "LoomNotFoundError",
    "LoomReadOnlyError",
    "LoomValidator",
    "LoomValueError",
    "LoomView",
    "MemoryLoomLayer",
    "SelectionError",
    "ViewManager",
    "__version__",
    "call_cells",
    "combine",
    "combine_faster",
    "compare_loom_spec_version",
    "connect",
    "create",
    "create_append",
    "create_from_cellranger",
    "create_from_fastq",
    "create_from_matrix_market",
    "create_from_star",
    "create_from_tsv",
    "deprecated",
    "from_anndata",
    "get_loom_spec_version",
    "load_gene_metadata",
    "load_sample_metadata",
    "loom_spec_version",
    "make_row_attrs_from_gene_annotations",
    "make_row_attrs_from_gene_metadata",
    "materialize_attr_values",
    "new",
    "normalize_attr_values",
    "timestamp",
    "to_html",
]
