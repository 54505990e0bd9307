"""loomfile: fast, safe, loompy-compatible Loom files.

Use it as a drop-in for loompy::

    import loomfile as loompy

    with loompy.connect("data.loom") as ds:
        ds[:, ds.ca.ClusterID == 3]
"""

from __future__ import annotations

from ._combine import combine, combine_faster
from ._compat import create_append
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
from ._format import SPEC_VERSION as loom_spec_version
from ._format import timestamp
from ._validator import LoomValidator
from .attributes import AttributeManager, GlobalAttributeManager
from .connection import LoomConnection, connect, create, new
from .graphs import GraphManager
from .io import create_from_cellranger, create_from_matrix_market, create_from_tsv, from_anndata
from .layers import LayerManager, LoomLayer, MemoryLoomLayer
from .view import LoomView, ViewManager

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
    "combine",
    "combine_faster",
    "connect",
    "create",
    "create_append",
    "create_from_cellranger",
    "create_from_matrix_market",
    "create_from_tsv",
    "from_anndata",
    "loom_spec_version",
    "new",
    "timestamp",
]
