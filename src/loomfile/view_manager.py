"""loompy's ``loompy.view_manager`` module: ``ds.view[rows, cols]``."""

from __future__ import annotations

from .view import ViewManager

__all__ = ["ViewManager"]
