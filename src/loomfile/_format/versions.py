"""The versions of the Loom spec, as data: what each one lays out differently.

Spec 3 (loompy 3) moved the global attributes from HDF5 attributes on the root group into datasets
under ``/attrs``, and strings from fixed-length ASCII (other characters as XML character
references) to variable-length UTF-8. Everything else (the matrix, layers, row/column attributes
and graphs) is laid out the same by every version loomfile reads. The storage layer keys its readers
and writers of those elements by the fields below (``_store.elements``), so a version that lays
out its elements in ways already known is one entry in ``VERSIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .._errors import LoomValueError
from .spec import ATTR_GROUPS, GRAPH_GROUPS, LAYERS_GROUP, REQUIRED_GROUPS, SPEC_VERSION


@dataclass(frozen=True)
class SpecVersion:
    """How one version of the spec stores the elements that differ between versions."""

    version: str  # what LOOM_SPEC_VERSION says
    globals: Literal["datasets", "root attributes"]  # /attrs/<name>, or attributes of the root group
    strings: Literal["utf-8", "ascii"]  # variable-length UTF-8, or fixed-length escaped ASCII
    groups: tuple[str, ...]  # the groups of an empty file


VERSIONS: dict[str, SpecVersion] = {
    "3.0.0": SpecVersion("3.0.0", globals="datasets", strings="utf-8", groups=REQUIRED_GROUPS),
    # What loompy 2 wrote, and old loomR reads.
    "2.0.1": SpecVersion(
        "2.0.1", globals="root attributes", strings="ascii", groups=(LAYERS_GROUP, *ATTR_GROUPS, *GRAPH_GROUPS)
    ),
}
CURRENT = VERSIONS[SPEC_VERSION]
LEGACY = VERSIONS["2.0.1"]


def of_layout(has_globals_group: bool) -> SpecVersion:
    """The version whose layout a file has: spec 3 keeps its global attributes in ``/attrs``."""
    return CURRENT if has_globals_group else LEGACY


def named(version: str) -> SpecVersion:
    """The entry of ``version``, or an error listing the versions loomfile writes."""
    if version not in VERSIONS:
        msg = f"Cannot write Loom spec version {version!r}; loomfile writes {', '.join(sorted(VERSIONS))}"
        raise LoomValueError(msg)
    return VERSIONS[version]
