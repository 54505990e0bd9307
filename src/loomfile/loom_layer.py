"""loompy's ``loompy.loom_layer`` module: one layer, on disk or in memory."""

from __future__ import annotations

from ._core.layers import LoomLayer, MemoryLoomLayer

__all__ = ["LoomLayer", "MemoryLoomLayer"]
