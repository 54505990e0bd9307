"""loompy's ``loompy.utils`` module: timestamps, spec versions, deprecation messages."""

from __future__ import annotations

from ._format.loompy_api import compare_loom_spec_version, deprecated, get_loom_spec_version
from ._format.spec import timestamp

__all__ = ["compare_loom_spec_version", "deprecated", "get_loom_spec_version", "timestamp"]
