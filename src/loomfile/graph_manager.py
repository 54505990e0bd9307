"""loompy's ``loompy.graph_manager`` module: row and column graphs."""

from __future__ import annotations

from ._core.graphs import GraphManager

__all__ = ["GraphManager"]
