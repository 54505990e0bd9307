"""loompy's ``loompy.bus_file`` module: ``create_from_fastq`` (kallisto)."""

from __future__ import annotations

from .io.fastq import create_from_fastq
from .io.metadata import load_sample_metadata

__all__ = ["create_from_fastq", "load_sample_metadata"]
