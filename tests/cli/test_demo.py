"""The demo runs end to end through the command line, as the README tells a newcomer to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def test_demo_runs_and_writes_readable_files(tmp_path: Path) -> None:
    import loomfile

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loomfile",
            "demo",
            "--dir",
            str(tmp_path),
            "--cells",
            "400",
            "--genes",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "totals agree with the TotalUMI attribute: True" in result.stdout
    assert "AnnData 500 cells x 300 genes, obsp ['KNN']" in result.stdout
    with loomfile.connect(tmp_path / "combined.loom", "r") as ds:
        assert ds.shape == (300, 500)
        assert set(ds.layers.keys()) == {"", "spliced", "unspliced"}


def test_generated_cell_ids_are_unique_at_scale() -> None:
    """20000 random 14-base barcodes collide by the birthday bound; the demo's are drawn distinct,
    and the two generated samples do not share names."""
    from loomfile._api.demo import generate

    first, second = generate(5, 20000, seed=0), generate(5, 5000, seed=1)
    ids = np.concatenate([first["col_attrs"]["CellID"], second["col_attrs"]["CellID"]])
    assert len(set(ids.tolist())) == 25000
    assert all(len(i.split(":")[1]) == len("ACGTACGTACGTAC-1") for i in ids[:10])
