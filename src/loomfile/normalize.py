"""loompy's ``loompy.normalize`` module: attribute values to and from their stored form."""

from __future__ import annotations

from ._format.loompy_api import (
    materialize_attr_values,
    normalize_attr_array,
    normalize_attr_strings,
    normalize_attr_values,
)

__all__ = [
    "materialize_attr_values",
    "normalize_attr_array",
    "normalize_attr_strings",
    "normalize_attr_values",
]
