"""loompy's ``loompy.layer_manager`` module: the layers of a file or view."""

from __future__ import annotations

from ._core.layers import LayerManager

__all__ = ["LayerManager"]
