"""Progress bars: on in a terminal, off otherwise, controllable per call, and every bar reaches its total."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import loomfile
from loomfile import _progress
from looms import counts_file


class Recorder:
    """Stands in for tqdm: remembers each bar's description, total and the sum of its updates."""

    bars: ClassVar[list[Recorder]] = []

    def __init__(self, total: int, desc: str, **options: Any) -> None:
        self.total, self.desc, self.done, self.closed = total, desc, 0, False
        Recorder.bars.append(self)

    def update(self, n: int) -> None:
        self.done += n

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[Recorder]:
    Recorder.bars = []
    monkeypatch.setattr(_progress, "tqdm", Recorder)
    return Recorder.bars


@pytest.fixture
def two(tmp_path: Path) -> tuple[str, str]:
    a, b = tmp_path / "a.loom", tmp_path / "b.loom"
    counts_file(a, 300, 700, seed=1, cell_prefix="a")
    counts_file(b, 300, 500, seed=2, cell_prefix="b")
    return str(a), str(b)


def finished(bars: list[Recorder], desc: str) -> Recorder:
    (bar,) = [b for b in bars if b.desc == desc]
    assert bar.closed and bar.done == bar.total, (bar.desc, bar.done, bar.total)
    return bar


def test_combine_counts_every_column(two: tuple[str, str], tmp_path: Path, bars: list[Recorder]) -> None:
    loomfile.combine(list(two), str(tmp_path / "c.loom"), key="Gene", batch_size=128, progress=True)
    assert finished(bars, "combine").total == 1200
    assert [b.desc for b in bars] == ["combine"]  # add_loom inside counts on combine's bar


def test_combine_faster_and_add_loom(two: tuple[str, str], tmp_path: Path, bars: list[Recorder]) -> None:
    loomfile.combine_faster(list(two), str(tmp_path / "c.loom"), progress=True)
    assert finished(bars, "combine").total == 1200
    with loomfile.connect(two[0]) as ds:
        ds.add_loom(two[1], progress=True)
    assert finished(bars, "add_loom").total == 500


@pytest.mark.parametrize("axis", [0, 1])
def test_permute_map_scan(two: tuple[str, str], bars: list[Recorder], axis: int) -> None:
    with loomfile.connect(two[0]) as ds:
        n = ds.shape[axis]
        ds.permute(np.arange(n)[::-1], axis=axis, progress=True)
        assert finished(bars, "permute").total == 2 * ds.shape[1 - axis]  # two layers
        ds.map([np.mean], axis=axis, progress=True)
        assert finished(bars, "map").total == n
        for _ in ds.scan(axis=axis, batch_size=128, progress=True):
            pass
        assert finished(bars, "scan").total == n


def test_export(two: tuple[str, str], tmp_path: Path, bars: list[Recorder]) -> None:
    with loomfile.connect(two[0], "r") as ds:
        ds.export(str(tmp_path / "out.tsv"), progress=True)
    assert finished(bars, "export").total == 300


def test_off_by_default_when_not_a_terminal(
    two: tuple[str, str], tmp_path: Path, bars: list[Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOMFILE_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    loomfile.combine(list(two), str(tmp_path / "c.loom"))
    with loomfile.connect(two[0]) as ds:
        ds.permute(np.arange(300)[::-1], axis=0, progress=False)
    assert bars == []


@pytest.mark.parametrize(
    ("env", "tty", "asked", "shown"),
    [
        (None, True, None, True),
        (None, False, None, False),
        ("0", True, None, False),
        ("1", False, None, True),
        ("1", True, False, False),
        ("0", False, True, True),
    ],
)
def test_who_decides(
    monkeypatch: pytest.MonkeyPatch, env: str | None, tty: bool, asked: bool | None, shown: bool
) -> None:
    if env is None:
        monkeypatch.delenv("LOOMFILE_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("LOOMFILE_PROGRESS", env)
    terminal = io.StringIO()
    terminal.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", terminal)
    assert _progress.wanted(asked) is shown


def test_real_bar_draws_on_stderr(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_progress, "DELAY", 0)
    with _progress.bar(10, "testing", True, "things") as tick:
        for _ in range(10):
            tick(1)
    assert "testing" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["mtx", "h5"])
def test_importing_a_10x_folder(tmp_path: Path, bars: list[Recorder], source: str) -> None:
    from cellranger_folders import make_cellranger

    sample, counts = make_cellranger(tmp_path, 3, n_cells=300, mtx=source == "mtx", h5=source == "h5")
    loomfile.create_from_cellranger(str(sample), str(tmp_path), source=source, progress=True)
    (bar,) = bars
    assert bar.closed and bar.done == bar.total
    assert bar.total == (np.count_nonzero(counts) if source == "mtx" else counts.shape[1])
