"""Importers from other formats."""

from __future__ import annotations

from .anndata import from_anndata
from .cellranger import create_from_cellranger
from .matrix_market import create_from_matrix_market
from .tsv import create_from_tsv

__all__ = ["create_from_cellranger", "create_from_matrix_market", "create_from_tsv", "from_anndata"]
