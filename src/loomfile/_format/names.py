"""Names of genes and cells: the attributes each tool keeps them in, and selecting by name.

Loom tools disagree on where names go: loompy and velocyto write ``Gene``/``CellID``, loomR and
Seurat ``gene_names``/``cell_names``, anndata ``var_names``/``obs_names`` (older versions
``index``), 10x-derived files ``features``/``barcodes``. :func:`name_attribute` finds the one a
file uses; :func:`transposed` tells when the names say the matrix is stored cells x genes.

``names_mask`` matches a list of names against one or more attributes (genes by symbol or by
accession) and names the ones it cannot find; ``where_mask`` reads ``ATTR=V1,V2`` conditions,
converting the values to the attribute's type so that ``ClusterID=3`` matches the integer 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._errors import LoomValueError

SHOWN = 5  # unknown names quoted in an error

# Where each tool keeps gene and cell names, most common first ("index": anndata before 0.8)
GENE_NAMES = ("Gene", "gene_names", "var_names", "gene_symbols", "features", "Symbol", "index")
GENE_IDS = ("Accession", "gene_ids", "gene_id", "ensembl_id")
CELL_IDS = ("CellID", "cell_names", "obs_names", "barcodes", "barcode", "Barcode", "CellBarcode", "index")


def name_attribute(attrs: Any, conventions: Sequence[str]) -> str | None:
    """The first of ``conventions`` that is a 1-D attribute in ``attrs``, or None."""
    for name in conventions:
        if name in attrs:
            return name
    return None


def transposed(row_names: Sequence[str], col_names: Sequence[str]) -> bool:
    """Whether the attribute names say the rows are cells and the columns genes: a cell-id
    attribute on the rows and a gene one on the columns, and neither the other way."""
    rows, cols = set(row_names), set(col_names)
    cells = set(CELL_IDS) - {"index"}
    genes = set(GENE_NAMES + GENE_IDS) - {"index"}
    return bool(rows & cells) and bool(cols & genes) and not (rows & genes) and not (cols & cells)


def names_mask(attrs: Any, keys: Sequence[str], names: Sequence[str], what: str) -> np.ndarray:
    """True where any of the attributes ``keys`` (those present) holds one of ``names``; an error
    naming the names found in none of them."""
    present = [k for k in keys if k in attrs]
    if not present:
        msg = f"No attribute {' or '.join(repr(k) for k in keys)} to match the {what} against"
        raise LoomValueError(msg)
    wanted = np.asarray(list(names), dtype=object)
    mask = np.zeros(len(attrs[present[0]]), dtype=bool)
    found = np.zeros(wanted.size, dtype=bool)
    for key in present:
        values = np.asarray(attrs[key]).astype(str).astype(object)
        mask |= np.isin(values, wanted)
        found |= np.isin(wanted, values)
    if not found.all():
        missing = wanted[~found].tolist()
        msg = (
            f"{len(missing)} of the {wanted.size} {what} are not in {' or '.join(present)}: "
            f"{', '.join(missing[:SHOWN])}{' ...' if len(missing) > SHOWN else ''}"
        )
        raise LoomValueError(msg)
    return mask


def where_mask(attrs: Any, condition: str) -> np.ndarray:
    """True where the attribute named before ``=`` holds one of the comma-separated values after it."""
    key, sep, text = condition.partition("=")
    key = key.strip()
    if not sep or not key:
        msg = f"A condition reads ATTR=VALUE[,VALUE...], not {condition!r}"
        raise LoomValueError(msg)
    values = attrs[key]  # (a clear error naming the attributes present)
    if values.ndim != 1:
        msg = f"Attribute {key!r} has {values.ndim} dimensions; a condition needs a 1-D attribute"
        raise LoomValueError(msg)
    wanted: list[str] = [v.strip() for v in text.split(",")]
    if values.dtype.kind in "biuf":
        try:
            return np.isin(values, np.asarray(wanted, dtype=float))
        except ValueError:
            msg = f"Attribute {key!r} holds numbers; {text!r} are not all numbers"
            raise LoomValueError(msg) from None
    return np.isin(np.asarray(values).astype(str), wanted)
