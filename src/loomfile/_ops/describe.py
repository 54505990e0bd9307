"""What a Loom file holds, from metadata only: the summary behind ``loomfile info``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._format import spec as fmt

if TYPE_CHECKING:
    from .._core.connection import Connection


def describe(ds: Connection) -> dict[str, Any]:
    """Shape, spec version, size on disk, and how every layer, attribute and graph is stored.

    Nothing but metadata is read (global attributes excepted, which are small), so this is quick on
    files of any size. The result holds only plain values (it is what ``info --json`` prints).
    """
    store = ds._store
    return {
        "file": ds.filename,
        "bytes_on_disk": os.path.getsize(ds.filename),
        "spec_version": ".".join(str(n) for n in store.spec_version),
        "shape": list(ds.shape),
        "layers": {name: store.storage(fmt.layer_path(name)) for name in ds.layers.keys()},
        "row_attrs": {name: store.storage(fmt.attr_path(0, name)) for name in ds.ra.keys()},
        "col_attrs": {name: store.storage(fmt.attr_path(1, name)) for name in ds.ca.keys()},
        "row_graphs": {name: _edges(ds, 0, name) for name in ds.row_graphs.keys()},
        "col_graphs": {name: _edges(ds, 1, name) for name in ds.col_graphs.keys()},
        "global_attrs": {name: _plain(ds.attrs[name]) for name in ds.attrs.keys()},
    }


def _edges(ds: Connection, axis: int, name: str) -> dict[str, Any]:
    store = ds._store
    return {"edges": store.storage(store._graph_path(axis, name) + "/a")["shape"][0]}


def _plain(value: Any) -> Any:
    """A global attribute as JSON can hold it: scalars as themselves, arrays as lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def as_text(info: dict[str, Any]) -> str:
    """The summary as a person reads it."""
    rows, cols = info["shape"]
    lines = [
        f"{info['file']}",
        f"  Loom {info['spec_version']}, {rows} rows x {cols} columns, {_size(info['bytes_on_disk'])} on disk",
        f"  layers ({len(info['layers'])}):",
    ]
    for name, s in info["layers"].items():
        chunks = "x".join(str(n) for n in s["chunks"]) if s["chunks"] else "contiguous"
        filters = "+".join(s["filters"]) or "uncompressed"
        label = '"" (main matrix)' if name == "" else name
        lines.append(
            f"    {label:<24} {s['dtype']:<8} chunks {chunks:<10} {filters:<16} {_size(s['stored_bytes'])}"
        )
    for key, title in (("row_attrs", "row attributes"), ("col_attrs", "column attributes")):
        lines.append(f"  {title} ({len(info[key])}):")
        for name, s in info[key].items():
            extra = f" x {'x'.join(str(n) for n in s['shape'][1:])}" if len(s["shape"]) > 1 else ""
            lines.append(f"    {name:<24} {s['dtype']}{extra}")
    for key, title in (("row_graphs", "row graphs"), ("col_graphs", "column graphs")):
        lines.append(f"  {title} ({len(info[key])}):")
        lines += [f"    {name:<24} {g['edges']} edges" for name, g in info[key].items()]
    lines.append(f"  global attributes ({len(info['global_attrs'])}):")
    for name, value in info["global_attrs"].items():
        text = str(value)
        lines.append(f"    {name:<24} {text if len(text) <= 60 else text[:57] + '...'}")
    return "\n".join(lines)


def _size(n: int) -> str:
    size, unit = float(n), "B"
    for bigger in ("KB", "MB", "GB", "TB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
