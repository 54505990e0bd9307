"""Gene metadata from a GTF file and sample metadata from a table or an sqlite database, as
loompy's ``metadata_loaders`` reads them (for ``create_from_fastq`` and the 10x/STAR importers)."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable

import numpy as np

from .._errors import LoomValueError

GeneAnnotations = dict[str, dict[str, int | str]]

_GENE_ID = re.compile(r'gene_id "([^"]+)"')
_GENE_NAME = re.compile(r'gene_name "([^"]+)"')
_GENE_TYPE = re.compile(r'gene_biotype "([^"]+)"')


def load_gene_metadata(gtf_file: str) -> GeneAnnotations:
    """Gene records of a GTF file: each accession (``gene_id``) and each gene name points to
    ``{"Gene", "Accession", "Biotype", "Chromosome", "Start", "End"}``.

    Examples
    --------
    >>> annotations = load_gene_metadata("genes.gtf")
    >>> annotations["ENSG00000141510"]["Gene"]
    'TP53'
    """
    if not os.path.exists(gtf_file):
        msg = f"Gene metadata file '{gtf_file}' not found."
        raise LoomValueError(msg)
    annotations: GeneAnnotations = {}
    with open(gtf_file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 9:
                msg = f"{gtf_file}, line {number}: a GTF record has 9 tab-separated fields, not {len(fields)}"
                raise LoomValueError(msg)
            chrom, _, feature_type, start, end, _, _, _, tags = fields
            if feature_type != "gene":
                continue
            found_id = _GENE_ID.search(tags)
            if found_id is None:
                msg = f"{gtf_file}, line {number}: a gene record without gene_id"
                raise LoomValueError(msg)
            accession = found_id.group(1)
            found_name, found_type = _GENE_NAME.search(tags), _GENE_TYPE.search(tags)
            name = found_name.group(1) if found_name else accession
            record: dict[str, int | str] = {
                "Gene": name,
                "Accession": accession,
                "Biotype": found_type.group(1) if found_type else "n/a",
                "Chromosome": chrom,
                "Start": int(start),
                "End": int(end),
            }
            annotations[accession] = record
            annotations[name] = record
    return annotations


def make_row_attrs_from_gene_annotations(
    acc2annots: GeneAnnotations, ordered_features: Iterable[str]
) -> dict[str, np.ndarray]:
    """Row attributes (object arrays) for ``ordered_features`` from :func:`load_gene_metadata`'s
    output; a feature missing from it gets loompy's placeholder (its id as name, "n/a", "Un", "0")."""
    features = list(ordered_features)
    names = list(next(iter(acc2annots.values())).keys()) if acc2annots else []
    row_attrs = {name: np.zeros(len(features), dtype=object) for name in names}
    for i, feature in enumerate(features):
        record = acc2annots.get(feature) or {
            "Gene": feature,
            "Accession": feature,
            "Biotype": "n/a",
            "Chromosome": "Un",
            "Start": "0",
            "End": "0",
        }
        for name in names:
            row_attrs[name][i] = record[name]
    return row_attrs


def make_row_attrs_from_gene_metadata(
    gtf_file: str, ordered_features: Iterable[str]
) -> dict[str, np.ndarray]:
    """:func:`make_row_attrs_from_gene_annotations` of :func:`load_gene_metadata` (``gtf_file``)."""
    return make_row_attrs_from_gene_annotations(load_gene_metadata(gtf_file), ordered_features)


def load_sample_metadata(path: str, sample_id: str) -> dict[str, str]:
    """The metadata of one sample: the row of table ``sample`` whose ``name`` is ``sample_id`` in an
    sqlite ``.db`` file, or the line of a tab-separated file (with a ``SampleID`` or ``Name``
    column, case-insensitive) naming it; keys are the lower-cased headers for a table file."""
    if not os.path.exists(path):
        msg = f"Samples metadata file '{path}' not found."
        raise LoomValueError(msg)
    if path.endswith(".db"):
        with sqlite3.connect(path) as db:
            cursor = db.execute("SELECT * FROM sample WHERE name = ?", (sample_id,))
            values = cursor.fetchone()
            if values is None:
                msg = f"SampleID '{sample_id}' was not found in the samples database."
                raise LoomValueError(msg)
            return dict(zip([d[0] for d in cursor.description], values, strict=True))
    with open(path, encoding="utf-8") as f:
        headers = [h.lower() for h in f.readline().rstrip("\n").split("\t")]
        if "sampleid" not in headers and "name" not in headers:
            msg = "Required column 'SampleID' or 'Name' not found in sample metadata file"
            raise LoomValueError(msg)
        key = headers.index("sampleid" if "sampleid" in headers else "name")
        result: dict[str, str] = {}
        for line in f:
            items = line.rstrip("\n").split("\t")
            if len(items) > key and items[key] == sample_id:
                result.update(zip(headers, items, strict=False))
    if not result:
        msg = f"SampleID '{sample_id}' not found in sample metadata file"
        raise LoomValueError(msg)
    return result
