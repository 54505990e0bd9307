"""The demo runs end to end through the command line, as the README tells a newcomer to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
