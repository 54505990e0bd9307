"""Importers from other formats."""

from __future__ import annotations

from .cellranger import create_from_cellranger

__all__ = ["create_from_cellranger"]
