"""loompy's ``loompy.metadata_loaders`` module: gene (GTF) and sample metadata."""

from __future__ import annotations

from .io.metadata import (
    load_gene_metadata,
    load_sample_metadata,
    make_row_attrs_from_gene_annotations,
    make_row_attrs_from_gene_metadata,
)

__all__ = [
    "load_gene_metadata",
    "load_sample_metadata",
    "make_row_attrs_from_gene_annotations",
    "make_row_attrs_from_gene_metadata",
]
