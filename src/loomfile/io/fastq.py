"""``create_from_fastq``: loompy's kallisto pipeline entry point.

loompy runs ``kallisto bus`` on the FASTQ files with a loompy-built index (a folder with
``manifest.json``). loomfile checks the same inputs, in the same order, and names what is missing;
kallisto itself is an external program, found on ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil

from .._errors import LoomNotFoundError, LoomValueError
from .metadata import load_sample_metadata

INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt-get install kallisto bustools; conda: conda install -c bioconda "
    "kallisto bustools)"
)


def require_program(name: str, purpose: str) -> str:
    """The path of ``name`` on PATH, or an error naming it and how to install it."""
    found = shutil.which(name)
    if found is None:
        msg = f"{purpose} runs '{name}', which is not on PATH; {INSTALL_HINT}"
        raise LoomNotFoundError(msg)
    return found


def create_from_fastq(
    out_file: str,
    sample_id: str,
    fastqs: list[str],
    index_path: str,
    samples_metadata_file: str,
    n_threads: int = 1,
    temp_folder: str | None = None,
    synchronous: bool = False,
) -> None:
    """Count the reads of ``fastqs`` against a loompy kallisto index into ``out_file``.

    Checks, as loompy does: ``index_path/manifest.json`` exists, every FASTQ exists, the sample
    metadata (a tab-separated file or an sqlite ``.db``, see :func:`load_sample_metadata`) has a row
    for ``sample_id`` with ``targetnumcells`` and ``chemistry`` or ``technology``; then that
    ``kallisto`` is on PATH.

    Raises
    ------
    LoomValueError
        An input is missing or incomplete (the message names it).
    LoomNotFoundError
        ``kallisto`` is not on PATH (the message says how to install it).
    NotImplementedError
        Everything is in place: loomfile does not yet read kallisto's BUS output (loompy's
        ``BusFile``); run loompy's pipeline, or ``kallisto bus`` + ``bustools count`` and import the
        matrix with :func:`loomfile.create_from_matrix_market`.
    """
    manifest_file = os.path.join(index_path, "manifest.json")
    if not os.path.exists(manifest_file):
        msg = f"Manifest file 'manifest.json' was missing from index at '{index_path}'"
        raise LoomValueError(msg)
    for fastq in fastqs:
        if not os.path.exists(fastq):
            msg = f"Fastq file '{fastq}' was not found"
            raise LoomValueError(msg)
    with open(manifest_file, encoding="utf-8") as f:
        manifest = json.load(f)
    if "index_file" not in manifest:
        msg = f"Manifest file '{manifest_file}' has no 'index_file'"
        raise LoomValueError(msg)
    metadata = load_sample_metadata(samples_metadata_file, sample_id)
    if ("technology" not in metadata and "chemistry" not in metadata) or "targetnumcells" not in metadata:
        msg = (
            "Samples metadata must contain columns 'targetnumcells' and either 'chemistry' or 'technology' "
            f"(found {sorted(metadata)})"
        )
        raise LoomValueError(msg)
    require_program("kallisto", "create_from_fastq")
    msg = (
        f"create_from_fastq({out_file!r}): kallisto is installed, but loomfile does not yet read its BUS "
        "output; run 'kallisto bus' and 'bustools count' and import the matrix with "
        "loomfile.create_from_matrix_market"
    )
    raise NotImplementedError(msg)
