"""Jupyter display of a connection or view: shape, attribute names and the top-left corner."""

from __future__ import annotations

from typing import Any

from .._format.spec import escape_html as esc

CORNER = 10


def to_html(ds: Any) -> str:
    """HTML table with the global attributes, attribute names and up to 10 x 10 values."""
    n_rows, n_cols = ds.shape
    rm, cm = min(CORNER, n_rows), min(CORNER, n_cols)
    ra_names, ca_names = ds.ra.keys(), ds.ca.keys()
    more_cols = "<td>&hellip;</td>" if n_cols > cm else ""
    parts = ["<div class='loomfile'><p>"]
    if "title" in ds.attrs:
        parts.append(f"<strong>{esc(ds.attrs['title'])}</strong> ")
    n_layers = len(ds.layers)
    parts.append(
        f"{n_rows} rows, {n_cols} columns, {n_layers} layer{'s' if n_layers != 1 else ''} "
        f"(showing up to {CORNER}x{CORNER})<br/>{esc(ds.filename)}<br/>"
    )
    parts.append(f"Layers: {esc(', '.join(repr(k) for k in ds.layers.keys()))}<br/>")
    parts.append(f"Row attributes: {esc(', '.join(ra_names))}<br/>")
    parts.append(f"Column attributes: {esc(', '.join(ca_names))}<br/>")
    parts.append(f"Global attributes: {esc(', '.join(ds.attrs.keys()))}</p><table>")
    for name in ca_names:
        values = ds.ca[name][:cm]
        cells = "".join(f"<td>{esc(v)}</td>" for v in values)
        parts.append(f"<tr>{'<td></td>' * len(ra_names)}<th>{esc(name)}</th>{cells}{more_cols}</tr>")
    header = "".join(f"<th>{esc(name)}</th>" for name in ra_names)
    parts.append(f"<tr>{header}<td></td>{'<td></td>' * cm}{more_cols}</tr>")
    corner = ds[:rm, :cm] if rm and cm else None
    row_values = {name: ds.ra[name][:rm] for name in ra_names}
    for i in range(rm):
        attrs = "".join(f"<td>{esc(row_values[name][i])}</td>" for name in ra_names)
        cells = "".join(f"<td>{esc(v)}</td>" for v in corner[i]) if corner is not None else ""
        parts.append(f"<tr>{attrs}<td></td>{cells}{more_cols}</tr>")
    if n_rows > rm:
        parts.append(f"<tr>{'<td>&hellip;</td>' * (len(ra_names) + 1 + cm)}{more_cols}</tr>")
    parts.append("</table></div>")
    return "".join(parts)
