"""The package's layering: h5py is used only by the storage layer (``_store``) and the engine
(``_engine``); everything above reads and writes Loom files through ``LoomStore``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "loomfile"
H5PY_LAYERS = ("_store", "_engine")


def _imports_h5py(tree: ast.AST) -> list[int]:
    """The lines importing h5py anywhere in the module (inside functions and TYPE_CHECKING blocks too)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]
        else:
            continue
        if any(name == "h5py" or name.startswith("h5py.") for name in names):
            lines.append(node.lineno)
    return lines


def test_only_store_and_engine_import_h5py() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50, f"no package sources found under {PACKAGE}"
    offenders = []
    for path in modules:
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in H5PY_LAYERS:
            continue
        lines = _imports_h5py(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        offenders += [f"loomfile/{relative.as_posix()}:{line}" for line in lines]
    assert not offenders, "h5py imported outside loomfile/_store and loomfile/_engine:\n" + "\n".join(offenders)
