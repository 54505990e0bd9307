"""Every code example in README.md and docs/**/*.md runs, so an example that stops working fails CI.

Each page's ```python blocks run in order in one namespace (a later block may use an earlier
block's names), in a fresh temporary folder that a per-page fixture fills with the small inputs the
page's examples name. ```bash blocks run their ``loomfile`` / ``python -m loomfile`` command lines
through the command line's entry point, in the same folder. A block that cannot run by design is
marked on the line before its fence with ``<!-- skip-example: reason -->``; the reasons are counted
and printed. Other fences (```text, plain ```) are not examples.
"""

from __future__ import annotations

import contextlib
import glob
import io
import re
import shlex
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sparse

import loomfile
from cellranger_folders import make_cellranger
from loomfile.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))]
RUNNABLE = ("python", "bash")
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
SKIP = re.compile(r"^<!--\s*skip-example:\s*(.*?)\s*-->\s*$")
MAX_SKIPPED = 8  # skips are for blocks that cannot run by design: keep them rare


@dataclass(frozen=True)
class Example:
    page: str
    line: int  # line of the page holding the block's first line of code
    language: str
    code: str
    skip: str | None  # the reason, when marked skip-example


def examples(page: str, text: str | None = None) -> list[Example]:
    """The fenced blocks of ``page`` in the runnable languages, in page order."""
    lines = (ROOT / page).read_text().splitlines() if text is None else text.splitlines()
    found: list[Example] = []
    position = 0
    while position < len(lines):
        opening = FENCE.match(lines[position])
        if not opening:
            position += 1
            continue
        end = next((k for k in range(position + 1, len(lines)) if lines[k].rstrip() == "```"), None)
        if end is None:
            msg = f"{page}:{position + 1}: a code fence is never closed"
            raise AssertionError(msg)
        language = opening.group(1)
        if language in RUNNABLE:
            marker = SKIP.match(lines[position - 1].strip()) if position else None
            if marker and not marker.group(1):
                msg = f"{page}:{position}: skip-example needs a reason"
                raise AssertionError(msg)
            code = "\n".join(lines[position + 1 : end]) + "\n"
            found.append(Example(page, position + 2, language, code, marker.group(1) if marker else None))
        position = end + 1
    return found


def run_python(example: Example, namespace: dict[str, object]) -> None:
    # Blank lines in front make the traceback's line numbers the page's, and linecache shows the page.
    source = "\n" * (example.line - 1) + example.code
    exec(compile(source, str(ROOT / example.page), "exec"), namespace)


def run_bash(example: Example) -> None:
    for offset, line in enumerate(example.code.splitlines()):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "loomfile":
            argv = words[1:]
        elif words[:3] == ["python", "-m", "loomfile"]:
            argv = words[3:]
        else:
            msg = f"runs {words[0]!r}, not loomfile: mark the block <!-- skip-example: reason -->"
            raise AssertionError(msg)
        argv = [match for word in argv for match in (sorted(glob.glob(word)) if "*" in word else [word])]
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            status = cli_main(argv)
        if status != 0:
            msg = f"line {example.line + offset}: `{line.strip()}` exited with {status}:\n{output.getvalue()}"
            raise AssertionError(msg)


# --- inputs the pages' examples name, built small ------------------------------------------------


def _counts(n_genes: int, n_cells: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(1, 0.4, (n_genes, n_cells)).astype(np.float32)
    counts[rng.random(counts.shape) < 0.7] = 0
    return counts


def _write_loom(path: str, n_genes: int = 60, n_cells: int = 50, seed: int = 0, prefix: str = "c") -> None:
    """Counts with a spliced layer; Gene, Accession; CellID, ClusterID."""
    counts = _counts(n_genes, n_cells, seed)
    loomfile.create(
        path,
        {"": counts, "spliced": counts.astype(np.uint16)},
        {
            "Gene": np.array([f"Gene{i}" for i in range(n_genes)]),
            "Accession": np.array([f"ENSG{i:05d}" for i in range(n_genes)]),
        },
        {
            "CellID": np.array([f"{prefix}{j}" for j in range(n_cells)]),
            "ClusterID": np.arange(n_cells) % 4,
        },
    )


def _readme_inputs(folder: Path) -> None:
    _write_loom("data.loom")
    _write_loom("a.loom", seed=1, prefix="a")
    _write_loom("b.loom", seed=2, prefix="b")
    _write_loom("rna.loom", seed=4)  # the cells of an antibody file (combine --axis 0)
    cells = np.array([f"c{j}" for j in range(50)])[::-1].copy()
    loomfile.create("adt.loom", _counts(3, 50, 5), {"Gene": np.array(["CD3", "CD4", "CD8"])}, {"CellID": cells})
    make_cellranger(folder, 3)
    (folder / "sample3").rename(folder / "sample1")
    _cellranger_run(folder)
    (folder / "looms").mkdir()
    counts = _counts(40, 30, 3)
    scipy.io.mmwrite("m.mtx", sparse.coo_matrix(counts), field="integer")
    Path("genes.tsv").write_text("".join(f"ENSG{i:05d}\tGene{i}\n" for i in range(40)))
    Path("cells.tsv").write_text("".join(f"AAAC{j:04d}-1\n" for j in range(30)))
    rows = ["\t".join(["gene", *(f"AAAC{j:04d}-1" for j in range(30))])]
    rows += ["\t".join([f"Gene{i}", *(f"{v:g}" for v in counts[i])]) for i in range(40)]
    Path("m.tsv").write_text("\n".join(rows) + "\n")


def _data_loom(folder: Path) -> None:
    _write_loom("data.loom")


def _cellranger_run(folder: Path) -> None:
    (folder / "runs").mkdir()
    make_cellranger(folder / "runs", 3)
    (folder / "runs" / "sample3").rename(folder / "runs" / "sample1")


def _cortex(folder: Path) -> None:
    _write_loom("cortex.loom", n_genes=300, n_cells=200)


PREPARE: dict[str, Callable[[Path], None]] = {
    "README.md": _readme_inputs,
    "docs/anndata.md": _data_loom,
    "docs/guide.md": _cellranger_run,
    "docs/scaling-out.md": _cortex,
}


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOMFILE_PROGRESS", "0")
    PREPARE.get(page, lambda folder: None)(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for example in examples(page):
        if example.skip:
            continue
        failure = None
        try:
            if example.language == "python":
                run_python(example, namespace)
            else:
                run_bash(example)
        except Exception:
            failure = traceback.format_exc()
        if failure:
            pytest.fail(f"{page}: the {example.language} block at line {example.line} failed:\n{failure}", pytrace=False)


def test_skips_are_rare_and_reasoned(capsys: pytest.CaptureFixture[str]) -> None:
    found = [example for page in PAGES for example in examples(page)]
    skipped = [example for example in found if example.skip]
    assert len(skipped) <= MAX_SKIPPED, [f"{e.page}:{e.line}: {e.skip}" for e in skipped]
    with capsys.disabled():
        sys.stdout.write(f"\ndocs examples: {len(found) - len(skipped)} run, {len(skipped)} skipped\n")
        for example in skipped:
            sys.stdout.write(f"  skipped {example.page}:{example.line}: {example.skip}\n")


def test_a_broken_example_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = "\n".join(
        ["# A page", "```python", "x = 1", "```", "", "```python", "y = x + missing_name", "```"]
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    first, second = examples("README.md", page)
    run_python(first, namespace)
    assert (first.line, second.line) == (3, 7)
    with pytest.raises(NameError) as raised:
        run_python(second, namespace)
    assert raised.traceback[-1].lineno + 1 == 7  # the page's line, as the report shows it
    broken = examples("README.md", "```bash\nloomfile info missing.loom\n```\n")[0]
    with pytest.raises(AssertionError, match=re.escape("line 2: `loomfile info missing.loom` exited with 1")):
        run_bash(broken)


def test_skip_marker_needs_a_reason() -> None:
    assert examples("README.md", "<!-- skip-example: needs S3 -->\n```python\n1/0\n```\n")[0].skip == "needs S3"
    with pytest.raises(AssertionError, match="needs a reason"):
        examples("README.md", "<!-- skip-example: -->\n```python\n1/0\n```\n")
