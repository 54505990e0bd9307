"""constraints/lowest.txt pins exactly the lower bounds pyproject.toml promises (CI tests against them)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("anndata", "dask", "remote")  # the user-facing extras; test and docs tools are not promised


def _lower_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    bounds = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?>=([0-9.]+)", requirement.replace(" ", ""))
        assert match, f"{requirement!r}: a dependency pyproject promises needs a lower bound (>=)"
        bounds[match.group(1).lower()] = match.group(2)
    return bounds


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def _same_version(bound: str, pin: str) -> bool:
    def parts(version: str) -> list[int]:
        numbers = [int(p) for p in version.split(".")]
        return numbers + [0] * (3 - len(numbers))

    return parts(bound) == parts(pin)


def test_every_lower_bound_is_pinned() -> None:
    pins = _pins()
    wrong = {
        name: (bound, pins.get(name))
        for name, bound in _lower_bounds().items()
        if name not in pins or not _same_version(bound, pins[name])
    }
    assert not wrong, f"pyproject lower bound vs constraints/lowest.txt pin: {wrong}"
