"""loompy's ``loompy.view_manager`` module: ``ds.view[rows, cols]``."""

from __future__ import annotations

from ._core.view import ViewManager

__all__ = ["ViewManager"]
