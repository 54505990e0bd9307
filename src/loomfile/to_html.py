"""loompy's ``loompy.to_html`` module: the Jupyter display of a connection or view."""

from __future__ import annotations

from ._core.html import to_html

__all__ = ["to_html"]
