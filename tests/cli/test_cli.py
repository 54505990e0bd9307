"""The ``loomfile`` command, driven as a user drives it: click's runner in-process, and the installed
console script in a subprocess. Results are checked against h5py and loompy, not against loomfile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import loompy
import numpy as np
import pytest
import scipy.sparse as sparse
from click.testing import CliRunner

import loomfile
from cellranger_folders import make_cellranger
from loomfile.cli import cli, main
from looms import counts_file

COMMANDS = ["info", "validate", "combine", "subset", "from-10x", "to-h5ad", "from-h5ad", "export", "demo"]


def run(*args: str) -> tuple[int, str, str]:
    """Run the command line in-process; (exit status, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, prog_name="loomfile")
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.loom", tmp_path / "b.loom"
    counts_file(a, 90, 70, seed=1, cell_prefix="a")
    counts_file(b, 90, 50, seed=2, cell_prefix="b")
    return a, b


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    status, out, _ = run(command, "--help")
    assert status == 0
    assert out.startswith(f"Usage: cli {command}") or out.startswith(f"Usage: loomfile {command}")
    assert "--help" in out


def test_info_reports_what_h5py_sees(two_files: tuple[Path, Path]) -> None:
    path = two_files[0]
    status, out, _ = run("info", "--json", str(path))
    assert status == 0
    info = json.loads(out)
    with h5py.File(path, "r") as f:
        assert info["shape"] == list(f["matrix"].shape)
        assert info["layers"][""]["chunks"] == list(f["matrix"].chunks)
        assert info["layers"][""]["filters"][-1] == f"gzip({f['matrix'].compression_opts})"
        assert info["layers"]["spliced"]["dtype"] == str(f["layers/spliced"].dtype)
        assert sorted(info["col_attrs"]) == sorted(f["col_attrs"].keys())
        assert info["col_attrs"]["CellID"]["dtype"] == "string"
        assert info["bytes_on_disk"] == os.path.getsize(path)
    status, text, _ = run("info", str(path))
    assert status == 0
    assert "90 rows x 70 columns" in text
    assert "spliced" in text and "uint16" in text and "CellID" in text


def test_info_on_a_loompy_file_with_graphs(tmp_path: Path) -> None:
    path = tmp_path / "lp.loom"
    rng = np.random.default_rng(0)
    loompy.create(str(path), rng.random((20, 30)), {"Gene": np.arange(20)}, {"CellID": np.arange(30)})
    with loompy.connect(str(path)) as ds:
        ds.col_graphs["KNN"] = sparse.random(30, 30, density=0.1, format="coo")
        edges = ds.col_graphs["KNN"].nnz
    status, out, _ = run("info", "--json", str(path))
    assert status == 0
    assert json.loads(out)["col_graphs"] == {"KNN": {"edges": edges}}


def test_validate_exit_status(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    good = str(two_files[0])
    text = tmp_path / "notes.txt"
    text.write_text("not a loom file")
    status, out, _ = run("validate", good)
    assert (status, out.strip()) == (0, f"{good}: valid")
    status, out, _ = run("validate", good, str(text))
    assert status == 1
    assert f"{text}: INVALID" in out and "not an HDF5 file" in out
    status, out, _ = run("validate", "--quiet", good, str(text))
    assert status == 1 and good + ":" not in out


def test_validate_reports_a_broken_layout(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    broken = tmp_path / "broken.loom"
    shutil.copy(two_files[0], broken)
    with h5py.File(broken, "r+") as f:
        del f["col_attrs/CellID"]
        f["col_attrs/CellID"] = np.arange(3)  # 3 values for 70 columns
    status, out, _ = run("validate", str(broken))
    assert status == 1
    assert "CellID" in out


def test_validate_deep_finds_a_damaged_chunk(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    damaged = tmp_path / "damaged.loom"
    shutil.copy(two_files[0], damaged)
    with h5py.File(damaged, "r") as f:
        info = f["matrix"].id.get_chunk_info(1)  # the second stored chunk
    with open(damaged, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        f.write(bytes(16))  # zeros in the middle of the deflate stream
    status, out, _ = run("validate", str(damaged))
    assert status == 0  # the structure is intact
    status, out, _ = run("validate", "--deep", str(damaged), str(two_files[1]))
    assert status == 1
    assert f"{damaged}: INVALID" in out and "/matrix" in out and f"{two_files[1]}: valid" in out


@pytest.mark.parametrize("key", [None, "Gene"])
def test_combine_matches_loompy(tmp_path: Path, two_files: tuple[Path, Path], key: str | None) -> None:
    a, b = map(str, two_files)
    if key:  # reverse the rows of the second file, so aligning them matters
        with loompy.connect(b) as ds:
            ds.permute(np.arange(ds.shape[0])[::-1], axis=0)
    ours, theirs = tmp_path / "ours.loom", tmp_path / "theirs.loom"
    args = ["combine", a, b, "-o", str(ours)] + (["--key", key] if key else [])
    status, out, _ = run(*args)
    assert status == 0 and f"wrote {ours}" in out
    loompy.combine([a, b], str(theirs), key=key)
    with loompy.connect(str(ours), "r") as lf, loompy.connect(str(theirs), "r") as lp:
        np.testing.assert_array_equal(lf[:, :], lp[:, :])
        np.testing.assert_array_equal(lf.layers["spliced"][:, :], lp.layers["spliced"][:, :])
        np.testing.assert_array_equal(lf.ca.CellID, lp.ca.CellID)
        np.testing.assert_array_equal(lf.ra.Gene, lp.ra.Gene)


def test_export_matches_loompy(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    path = str(two_files[0])
    ours, theirs = tmp_path / "ours.tsv", tmp_path / "theirs.tsv"
    status, _, _ = run("export", path, "-o", str(ours), "--layer", "spliced")
    assert status == 0
    with loompy.connect(path, "r") as ds:
        ds.export(str(theirs), layer="spliced")
    assert ours.read_bytes() == theirs.read_bytes()


def test_from_10x_reads_the_hdf5_matrix(tmp_path: Path) -> None:
    sample, counts = make_cellranger(tmp_path, 3, mtx=False, h5=True)
    out = tmp_path / "from_h5.loom"
    status, _, _ = run("from-10x", str(sample), "-o", str(out), "--source", "h5", "--no-progress")
    assert status == 0
    with loompy.connect(str(out), "r") as ds:
        np.testing.assert_array_equal(ds[:, :], counts)
    status, _, err = run("from-10x", str(sample), "--source", "mtx")
    assert status == 1 and "filtered_feature_bc_matrix" in err


def test_from_10x_names_and_places_the_file(tmp_path: Path) -> None:
    sample, counts = make_cellranger(tmp_path, 3)
    status, out, _ = run("from-10x", str(sample))
    assert status == 0
    default = sample / "sample3.loom"
    assert out.strip() == f"wrote {default}"
    chosen = tmp_path / "elsewhere.loom"
    status, _, _ = run("from-10x", str(sample), "-o", str(chosen))
    assert status == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.loom", "sample3"]  # nothing left aside
    for path in (default, chosen):
        with loompy.connect(str(path), "r") as ds:
            np.testing.assert_array_equal(ds[:, :], counts)
            assert ds.ca.CellID[0] == "sample3:AAAC000000-1"


def test_h5ad_both_ways_agree_with_anndata(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    import anndata

    path = str(two_files[0])
    h5ad = tmp_path / "a.h5ad"
    status, _, _ = run("to-h5ad", path, "-o", str(h5ad))
    assert status == 0
    ours, theirs = anndata.read_h5ad(h5ad), anndata.io.read_loom(path)
    np.testing.assert_array_equal(ours.X.toarray(), theirs.X.toarray())
    assert list(ours.obs_names) == list(theirs.obs_names)
    assert sorted(ours.layers.keys()) == sorted(theirs.layers.keys())
    status, _, _ = run("to-h5ad", "--dense", "--x-layer", "", path, "-o", str(h5ad), "--force")
    assert status == 0
    dense = anndata.read_h5ad(h5ad)
    assert isinstance(dense.X, np.ndarray)
    with loompy.connect(path, "r") as ds:
        np.testing.assert_array_equal(dense.X, ds[:, :].T)

    back = tmp_path / "back.loom"
    dense.uns["note"] = "converted"
    dense.uns["nested"] = {"a": 1}  # a Loom global attribute cannot hold this
    dense.write_h5ad(h5ad)
    status, _, _ = run("from-h5ad", str(h5ad), "-o", str(back), "--uns", "note")
    assert status == 0
    with loompy.connect(str(back), "r") as ds:
        np.testing.assert_array_equal(ds[:, :], dense.X.T)
        assert ds.attrs["note"] == "converted"
        np.testing.assert_array_equal(ds.ca.CellID, dense.obs_names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "{tmp}/missing.loom"], "missing.loom"),
        (["export", "{a}", "-o", "{tmp}/out.tsv", "--layer", "nope"], "nope"),
        (["combine", "{a}", "{short}", "-o", "{tmp}/out.loom"], "rows"),
        (["combine", "{a}", "{a}", "-o", "{tmp}/out.loom", "--key", "NoSuchKey"], "NoSuchKey"),
        (["info", "{text}"], "not an HDF5 file"),
    ],
)
def test_errors_are_one_line_without_traceback(
    tmp_path: Path, two_files: tuple[Path, Path], args: list[str], message: str
) -> None:
    short = tmp_path / "short.loom"
    counts_file(short, 10, 5, seed=3)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    names = {"tmp": str(tmp_path), "a": str(two_files[0]), "short": str(short), "text": str(text)}
    argv = [a.format(**names) for a in args]
    result = CliRunner().invoke(cli, argv)
    status = main(argv)
    assert status == result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err and message in err
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.loom").exists() and not (tmp_path / "out.tsv").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loomfile", "--debug", "info", str(tmp_path / "missing.loom")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "LoomNotFoundError" in result.stderr


def test_console_script_is_installed(two_files: tuple[Path, Path]) -> None:
    script = Path(sys.executable).parent / "loomfile"
    assert script.exists(), "pip install -e . installs the loomfile command"
    done = subprocess.run(
        [str(script), "info", str(two_files[0])], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "90 rows x 70 columns" in done.stdout
    missing = subprocess.run(
        [str(script), "info", "/nonexistent/x.loom"], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


def test_version(tmp_path: Path) -> None:
    status, out, _ = run("--version")
    assert status == 0 and loomfile.__version__ in out


def _digest(path: Path) -> bytes:
    import hashlib

    return hashlib.sha256(path.read_bytes()).digest()


def test_combine_in_loompys_old_argument_order_destroys_nothing(two_files: tuple[Path, Path]) -> None:
    """`loomfile combine a.loom b.loom` once took a.loom as the output and replaced it. The output is
    now named by -o only; without it, or naming an input, the command stops before reading."""
    a, b = two_files
    before = _digest(a), _digest(b)
    for args in (["combine", str(a), str(b)], ["combine", str(b), "-o", str(a)],
                 ["combine", str(a), str(b), "-o", str(a), "--force"]):
        status, out, err = run(*args)
        assert status == 2, args
        assert err.startswith("Error: ") and err.count("\n") == 1 and "wrote" not in out
        assert (_digest(a), _digest(b)) == before
    assert "-o" in run("combine", str(a), str(b))[2]
    assert "--force" in run("combine", str(b), "-o", str(a))[2]
    assert "also an input" in run("combine", str(a), str(b), "-o", str(a), "--force")[2]


@pytest.mark.parametrize("command", ["combine", "export", "to-h5ad", "from-10x", "from-h5ad"])
def test_an_existing_output_needs_force(tmp_path: Path, two_files: tuple[Path, Path], command: str) -> None:
    a, b = map(str, two_files)
    h5ad = tmp_path / "a.h5ad"
    assert run("to-h5ad", a, "-o", str(h5ad))[0] == 0
    sample, _ = make_cellranger(tmp_path, 3)
    out = tmp_path / "out.file"
    out.write_text("precious")
    args = {
        "combine": ["combine", a, b],
        "export": ["export", a],
        "to-h5ad": ["to-h5ad", a],
        "from-10x": ["from-10x", str(sample), "--no-progress"],
        "from-h5ad": ["from-h5ad", str(h5ad)],
    }[command] + ["-o", str(out)]
    status, _, err = run(*args)
    assert status == 2 and "--force" in err and out.read_text() == "precious"
    status, out_text, err = run(*args, "--force")
    assert status == 0, err
    assert out.read_bytes() != b"precious" and f"wrote {out}" in out_text


def test_default_outputs_are_beside_the_input(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    a = two_files[0]
    assert run("to-h5ad", str(a))[0] == 0 and (tmp_path / "a.h5ad").exists()
    assert run("export", str(a))[0] == 0 and (tmp_path / "a.tsv").exists()
    (tmp_path / "a.loom").rename(tmp_path / "orig.loom")
    assert run("from-h5ad", str(tmp_path / "a.h5ad"))[0] == 0
    with loompy.connect(str(tmp_path / "a.loom"), "r") as ds, loompy.connect(str(tmp_path / "orig.loom"), "r") as o:
        np.testing.assert_array_equal(ds[:, :], o[:, :])
    assert run("to-h5ad", str(a))[0] == 2  # a.h5ad is there now: --force to replace it


@pytest.mark.parametrize(
    "args",
    [
        ["info", "{missing}"],
        ["validate", "{missing}"],
        ["combine", "{a}", "{missing}", "-o", "{tmp}/out.loom"],
        ["export", "{missing}", "-o", "{tmp}/out.tsv"],
        ["to-h5ad", "{missing}", "-o", "{tmp}/out.h5ad"],
        ["from-h5ad", "{missing}", "-o", "{tmp}/out.loom"],
        ["from-10x", "{missing}", "-o", "{tmp}/out.loom"],
        ["from-h5ad", "{a}", "-o", "{tmp}/out.loom"],  # a .loom given as .h5ad
        ["to-h5ad", "{text}", "-o", "{tmp}/out.h5ad"],
    ],
)
def test_one_exit_status_per_kind_of_failure(tmp_path: Path, two_files: tuple[Path, Path], args: list[str]) -> None:
    """A missing or unreadable input is a failure (1) in every command, on one line; a wrong command
    line is a usage error (2)."""
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    names = {"tmp": str(tmp_path), "a": str(two_files[0]), "missing": str(tmp_path / "missing.loom"),
             "text": str(text)}
    status, out, err = run(*[x.format(**names) for x in args])
    assert status == 1, err
    if args[0] == "validate":  # its report is the output: one line per file, then the errors
        assert out.startswith(f"{names['missing']}: INVALID") and not err
    else:
        assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())
    status, _, err = run(args[0], "--no-such-option")
    assert status == 2 and err.count("\n") == 1 and f"loomfile {args[0]} --help" in err


def test_to_h5ad_names_from_chosen_attributes(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    import anndata

    path = str(two_files[0])
    with loompy.connect(path) as ds:
        ds.ca.Barcode = np.array([f"BC{j}" for j in range(ds.shape[1])])
        ds.ra.Symbol = np.array([f"S{i}" for i in range(ds.shape[0])])
    out = tmp_path / "named.h5ad"
    status, _, err = run("to-h5ad", path, "-o", str(out), "--obs-names", "Barcode", "--var-names", "Symbol")
    assert status == 0, err
    adata = anndata.read_h5ad(out)
    assert list(adata.obs_names[:2]) == ["BC0", "BC1"] and list(adata.var_names[:2]) == ["S0", "S1"]


def test_combine_fill_missing(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    a, b = two_files
    with loompy.connect(str(b)) as ds:
        ds.ca.Batch = np.full(ds.shape[1], 2)
    out = tmp_path / "out.loom"
    status, _, _ = run("combine", str(a), str(b), "-o", str(out), "--fill-missing")
    assert status == 0
    with loompy.connect(str(out), "r") as ds:
        np.testing.assert_array_equal(ds.ca.Batch, np.r_[np.zeros(70), np.full(50, 2)])


def test_export_matrix_market_folder(tmp_path: Path, two_files: tuple[Path, Path]) -> None:
    import scipy.io

    a = two_files[0]
    status, out, err = run("export", str(a), "--format", "mtx", "--layer", "spliced")
    assert status == 0, err
    folder = tmp_path / "a_matrix"
    assert out.strip() == f"wrote {folder}"
    with loompy.connect(str(a), "r") as ds:
        np.testing.assert_array_equal(scipy.io.mmread(folder / "matrix.mtx.gz").toarray(), ds.layers["spliced"][:, :])
    status, _, err = run("export", str(a), "--format", "mtx")
    assert status == 2 and "--force" in err
    assert run("export", str(a), "--format", "mtx", "--force")[0] == 0
    status, _, err = run("export", str(a), "--format", "mtx", "-o", str(two_files[1]), "--force")
    assert status == 2 and "is a file" in err


def test_combine_outer_join_with_samples(tmp_path: Path) -> None:
    a, b = tmp_path / "a.loom", tmp_path / "b.loom"
    counts_file(a, 20, 5, seed=1)
    counts_file(b, 20, 4, seed=2)
    with loompy.connect(str(b)) as ds:
        genes = ds.ra.Gene.copy()
        genes[0] = "other"
        ds.ra.Gene = genes
    out = tmp_path / "out.loom"
    status, _, err = run("combine", str(a), str(b), "-o", str(out), "--key", "Gene")
    assert status == 1 and "'g0'" in err and "'other'" in err
    status, _, err = run("combine", str(a), str(b), "-o", str(out), "--key", "Gene", "--how", "outer",
                         "--sample-attr", "SampleID", "--unique-ids")
    assert status == 0, err
    with loompy.connect(str(out), "r") as ds:
        assert ds.shape == (21, 9)
        assert list(ds.ca.SampleID) == ["a"] * 5 + ["b"] * 4
        assert ds.ca.CellID[0] == "a:c0" and ds.ca.CellID[5] == "b:c0"


def test_combine_rows_of_the_same_cells(tmp_path: Path) -> None:
    rna, adt = tmp_path / "rna.loom", tmp_path / "adt.loom"
    counts_file(rna, 20, 6, seed=1)
    loomfile.create(str(adt), np.arange(12.0).reshape(2, 6)[:, ::-1],
                    {"Gene": np.array(["ADT_CD3", "ADT_CD4"])}, {"CellID": np.array([f"c{j}" for j in range(6)][::-1])})
    out = tmp_path / "both.loom"
    status, _, err = run("combine", str(rna), str(adt), "-o", str(out), "--axis", "0", "--sample-attr", "Modality")
    assert status == 0, err
    with loompy.connect(str(out), "r") as ds:
        assert ds.shape == (22, 6) and list(ds.ra.Modality[-3:]) == ["rna", "adt", "adt"]
        np.testing.assert_array_equal(ds[20:, :], np.arange(12.0).reshape(2, 6))
