"""loompy's ``loompy.loompy`` module: the connection and the functions that make files."""

from __future__ import annotations

from ._api.connection import LoomConnection, connect, new
from ._api.loompy_aliases import create_append
from ._core.connection import create
from ._ops.combine import combine, combine_faster
from .io import create_from_cellranger, create_from_matrix_market, create_from_tsv
from .io.star import create_from_star

__all__ = [
    "LoomConnection",
    "combine",
    "combine_faster",
    "connect",
    "create",
    "create_append",
    "create_from_cellranger",
    "create_from_matrix_market",
    "create_from_star",
    "create_from_tsv",
    "new",
]
