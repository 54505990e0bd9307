"""loompy 3.0.8's module layout in loomfile: every public name and submodule, with signatures that
accept every call loompy's accept, and the helpers' results compared with loompy's own."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sqlite3
import types
from typing import Any, ClassVar

import h5py
import loompy
import numpy as np
import pytest

import loomfile
from looms import LOOMPY_SUBMODULES

# Not built yet (see CHANGELOG): each entry must really be missing (strict xfail), so the list
# shrinks as they are added.
NOT_YET = {
    "create_from_kallistobus": "loompy's kallisto|bustools importer is not written",
    "BusFile": "kallisto's BUS output is not read",
    "IncrementalSparseMatrixUInt16": "kallisto's BUS output is not read",
    "dna_to_twobit": "kallisto's BUS output is not read",
    "twobit_to_dna": "kallisto's BUS output is not read",
    "twobit_1hamming": "kallisto's BUS output is not read",
    "ixs_thatsort_a2b": "kallisto's BUS output is not read",
    "multinomial_distance": "kallisto's BUS output is not read",
    "execute": "kallisto's BUS output is not read",
}


def loompy_public_names() -> list[str]:
    return sorted(n for n in dir(loompy) if not n.startswith("_"))


def loompy_submodule_names() -> list[tuple[str, str]]:
    """(submodule, name) for every public name each loompy submodule defines itself."""
    pairs = []
    for sub in LOOMPY_SUBMODULES:
        module = importlib.import_module(f"loompy.{sub}")
        for name in dir(module):
            value = getattr(module, name)
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__:
                pairs.append((sub, name))
    return pairs


def expect(name: str) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=NOT_YET[name])] if name in NOT_YET else []
    return pytest.param(name, marks=marks, id=name)


def callable_signature(obj: Any) -> inspect.Signature | None:
    target = obj.__init__ if isinstance(obj, type) else obj
    if not callable(target) or isinstance(obj, types.ModuleType):
        return None
    sig = inspect.signature(target)
    params = list(sig.parameters.values())
    if isinstance(obj, type):
        params = params[1:]  # self
    return sig.replace(parameters=params)


def calls_loompy_accepts(sig: inspect.Signature) -> list[tuple[list[Any], dict[str, Any]]]:
    """Calls loompy's signature accepts: required arguments by position and every optional one by
    name; and every argument that can be named, by name."""
    positional: list[Any] = []
    named: dict[str, Any] = {}
    all_named: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind != p.KEYWORD_ONLY and p.default is p.empty:
            positional.append(object())
        else:
            named[p.name] = object()
        if p.kind != p.POSITIONAL_ONLY:
            all_named[p.name] = object()
    return [(positional, named), ([], all_named)]


@pytest.mark.parametrize("name", [expect(n) for n in loompy_public_names()])
def test_every_public_loompy_name_exists_with_a_compatible_signature(name: str) -> None:
    ours = getattr(loomfile, name)
    theirs = getattr(loompy, name)
    assert isinstance(ours, types.ModuleType) == isinstance(theirs, types.ModuleType)
    if isinstance(theirs, types.ModuleType):
        assert ours.__name__ == f"loomfile.{name}"
        return
    their_sig, our_sig = callable_signature(theirs), callable_signature(ours)
    if their_sig is None:
        assert ours == theirs or name == "__version__"  # loom_spec_version
        return
    assert our_sig is not None
    for args, kwargs in calls_loompy_accepts(their_sig):
        our_sig.bind(*args, **kwargs)  # raises TypeError naming the parameter loomfile lacks


@pytest.mark.parametrize("sub", [expect(s) for s in LOOMPY_SUBMODULES])
def test_loompy_submodules_are_importable(sub: str) -> None:
    module = importlib.import_module(f"loomfile.{sub}")
    assert module.__name__ == f"loomfile.{sub}"


@pytest.mark.parametrize(
    ("sub", "name"),
    [
        pytest.param(
            s, n, id=f"{s}.{n}", marks=[pytest.mark.xfail(strict=True, reason=NOT_YET.get(n, NOT_YET.get(s)))]
        )
        if n in NOT_YET or s in NOT_YET
        else pytest.param(s, n, id=f"{s}.{n}")
        for s, n in loompy_submodule_names()
    ],
)
def test_names_callers_import_from_loompy_submodules_exist(sub: str, name: str) -> None:
    module = importlib.import_module(f"loomfile.{sub}")
    theirs = getattr(importlib.import_module(f"loompy.{sub}"), name)
    ours = getattr(module, name)
    their_sig, our_sig = callable_signature(theirs), callable_signature(ours)
    assert (their_sig is None) == (our_sig is None)
    if their_sig is not None and our_sig is not None:
        for args, kwargs in calls_loompy_accepts(their_sig):
            our_sig.bind(*args, **kwargs)


def test_the_package_root_lists_its_public_api() -> None:
    assert set(loomfile.__all__) <= set(dir(loomfile))
    assert {"connect", "create", "to_html", "normalize_attr_values", "create_from_fastq"} <= set(
        loomfile.__all__
    )


# --- loompy's own unit tests of the managers (tests/test_attribute_manager.py and
# --- tests/test_file_attribute_manager.py in loompy's repository), run on loomfile --------------------


class DummyLoomConnection:
    shape = (7, 5)
    _file: ClassVar[dict[str, dict[str, np.ndarray]]] = {
        "/row_attrs/": {"arr": np.array([1.0, 2, 3, 4, 5, 6, 7])},
        "/col_attrs/": {"arr": np.array([1.0, 2, 3, 4, 5])},
    }


def test_attribute_manager_over_an_object_with_a_file_mapping() -> None:
    m = loomfile.AttributeManager(DummyLoomConnection(), axis=0)
    default = np.array([2.0, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(m.get("arr", default), np.array([1.0, 2, 3, 4, 5, 6, 7]))
    np.testing.assert_array_equal(m.get("missing", default), default)
    with pytest.raises(ValueError):
        m.get("missing", None)
    with pytest.raises(ValueError):
        m.get("missing", np.array([1.0, 2, 3, 4, 5]))
    m = loomfile.AttributeManager(DummyLoomConnection(), axis=1)
    with pytest.raises(ValueError):
        m.get("missing", np.array([1.0, 2, 3, 4, 5, 6, 7]))
    np.testing.assert_array_equal(m.arr, np.array([1.0, 2, 3, 4, 5]))


def test_global_attribute_manager_over_an_h5py_file(tmp_path) -> None:
    path = os.fspath(tmp_path / "g.loom")
    with h5py.File(path, "w") as f:
        f.attrs["arr"] = np.arange(3)
    with h5py.File(path, "r") as f:
        m = loomfile.GlobalAttributeManager(f)
        default = np.arange(2, 5)
        np.testing.assert_array_equal(m.get("arr"), np.arange(3))
        np.testing.assert_array_equal(m.get("arr", default), np.arange(3))
        assert m.get("missing") is None
        np.testing.assert_array_equal(m.get("missing", default), default)


def test_managers_over_a_loompy_connection_read_the_file(loom_path: str) -> None:
    """Managers built, as loompy builds them, over a loompy connection read what loompy reads (and,
    for non-ASCII text, which loompy strips, what loomfile's own connection reads)."""
    with loompy.connect(loom_path, "r") as lp, loomfile.connect(loom_path, "r") as ds:
        ra = loomfile.AttributeManager(lp, axis=0)
        ca = loomfile.attribute_manager.AttributeManager(lp, axis=1)
        np.testing.assert_array_equal(ra.Gene, ds.ra.Gene)
        np.testing.assert_array_equal(ra.Accession, lp.ra.Accession)
        np.testing.assert_array_equal(ca["ClusterID"], lp.ca["ClusterID"])
        np.testing.assert_array_equal(loomfile.LoomLayer("", lp)[:, 3], lp.layers[""][:, 3])
        assert loomfile.GraphManager(lp, axis=1).keys() == list(lp.col_graphs.keys())
        assert loomfile.LayerManager(lp).keys() == list(lp.layers.keys())
        ours = loomfile.GlobalAttributeManager(lp._file)
        assert ours["LOOM_SPEC_VERSION"] == lp.attrs["LOOM_SPEC_VERSION"]


# --- the helpers, against loompy's ----------------------------------------------------------------


@pytest.fixture
def spec_files(tmp_path, small_data: dict) -> dict[str, str]:
    """A file by each library, and a spec-2 style file (version on the root group)."""
    files = {"loompy": os.fspath(tmp_path / "lp.loom"), "loomfile": os.fspath(tmp_path / "lf.loom")}
    loompy.create(files["loompy"], small_data["matrix"], small_data["row_attrs"], small_data["col_attrs"])
    loomfile.create(files["loomfile"], small_data["matrix"], small_data["row_attrs"], small_data["col_attrs"])
    files["old"] = os.fspath(tmp_path / "old.loom")
    with h5py.File(files["old"], "w") as f:
        f.create_dataset("matrix", data=np.zeros((2, 2), np.float32))
        f.attrs["LOOM_SPEC_VERSION"] = "2.0.1"
    files["none"] = os.fspath(tmp_path / "none.loom")
    with h5py.File(files["none"], "w") as f:
        f.create_dataset("matrix", data=np.zeros((2, 2), np.float32))
    return files


@pytest.mark.parametrize("which", ["loompy", "loomfile", "old", "none"])
@pytest.mark.parametrize("version", ["0.0.0", "2.0.1", "3.0.0", "3.0.1", "4.0.0"])
def test_spec_version_helpers_agree_with_loompy(spec_files: dict[str, str], which: str, version: str) -> None:
    with h5py.File(spec_files[which], "r") as f:
        assert loomfile.get_loom_spec_version(f) == loompy.get_loom_spec_version(f)
        assert loomfile.compare_loom_spec_version(f, version) == loompy.compare_loom_spec_version(f, version)
        assert loomfile.utils.compare_loom_spec_version(f, version) == loompy.utils.compare_loom_spec_version(
            f, version
        )


@pytest.mark.parametrize(
    "values",
    [
        np.array(["a", "b", "Actb"], dtype=object),
        ["x", "y"],
        np.array([1, 2, 3]),
        np.array([0.5, np.nan]),
        np.array([True, False]),
        "scalar text",
        3,
        np.matrix([[1, 2, 3]]),
    ],
    ids=repr,
)
@pytest.mark.parametrize("use_object_strings", [False, True])
def test_normalize_and_materialize_agree_with_loompy(values: Any, use_object_strings: bool) -> None:
    ours = loomfile.normalize_attr_values(values, use_object_strings)
    theirs = loompy.normalize_attr_values(values, use_object_strings)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert np.asarray(ours).dtype.kind == np.asarray(theirs).dtype.kind or {
        np.asarray(ours).dtype.kind,
        np.asarray(theirs).dtype.kind,
    } == {"S", "O"}
    back_ours = loomfile.materialize_attr_values(ours)
    back_theirs = loompy.materialize_attr_values(theirs)
    np.testing.assert_array_equal(np.asarray(back_ours), np.asarray(back_theirs))


def test_materialize_keeps_the_text_loompy_strips() -> None:
    """loompy drops non-ASCII bytes when it materializes (documented difference); loomfile decodes."""
    raw = np.array(["Müller".encode(), b"caf&#233;"], dtype=object)
    assert loomfile.materialize_attr_values(raw).tolist() == ["Müller", "café"]
    assert loompy.materialize_attr_values(raw).tolist() == ["Mller", "café"]


def test_to_html_shows_the_file(loom_path: str) -> None:
    with loomfile.connect(loom_path, "r") as ds:
        html = loomfile.to_html(ds)
    assert "150 rows" in html.replace("&nbsp;", " ") or "150" in html
    assert "Gapdh" in html and "ClusterID" in html


def test_deprecated_logs_the_message_and_the_callers_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        loomfile.deprecated("use something else")
    assert "use something else" in caplog.text
    assert os.path.basename(__file__) in caplog.text


GTF = """#!genome-build test
1\thavana\tgene\t11869\t14409\t.\t+\t.\tgene_id "ENSG01"; gene_name "DDX11L1"; gene_biotype "pseudogene";
1\thavana\ttranscript\t11869\t14409\t.\t+\t.\tgene_id "ENSG01"; transcript_id "ENST01";
2\tensembl\tgene\t100\t900\t.\t-\t.\tgene_id "ENSG02"; gene_biotype "protein_coding";
X\tensembl\tgene\t5\t50\t.\t-\t.\tgene_id "ENSG03"; gene_name "Xist";
"""


def test_gene_metadata_loaders_agree_with_loompy(tmp_path) -> None:
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(GTF)
    assert loomfile.load_gene_metadata(os.fspath(gtf)) == loompy.load_gene_metadata(os.fspath(gtf))
    features = ["ENSG03", "ENSG01", "unknown", "ENSG02"]
    ours = loomfile.make_row_attrs_from_gene_metadata(os.fspath(gtf), features)
    theirs = loompy.make_row_attrs_from_gene_metadata(os.fspath(gtf), features)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key].tolist() == theirs[key].tolist()
        assert ours[key].dtype == theirs[key].dtype
    with pytest.raises(ValueError, match="not found"):
        loomfile.load_gene_metadata(os.fspath(tmp_path / "missing.gtf"))


def test_sample_metadata_loaders_agree_with_loompy(tmp_path) -> None:
    table = tmp_path / "samples.tab"
    table.write_text("SampleID\tChemistry\tTargetNumCells\nS1\tv2\t5000\nS2\tv3\t800\n")
    db = tmp_path / "samples.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE sample (name TEXT, chemistry TEXT, targetnumcells INTEGER)")
        con.execute("INSERT INTO sample VALUES ('S2', 'v3', 800)")
    for path in (os.fspath(table), os.fspath(db)):
        assert loomfile.load_sample_metadata(path, "S2") == loompy.load_sample_metadata(path, "S2")
        with pytest.raises(ValueError, match="'S9'"):
            loomfile.load_sample_metadata(path, "S9")
        with pytest.raises(ValueError):
            loompy.load_sample_metadata(path, "S9")


def test_create_from_fastq_names_the_missing_program_and_how_to_install_it(tmp_path, monkeypatch) -> None:
    index = tmp_path / "index"
    index.mkdir()
    (index / "manifest.json").write_text('{"index_file": "k.idx"}')
    fastq = tmp_path / "r1.fastq.gz"
    fastq.write_bytes(b"")
    samples = tmp_path / "samples.tab"
    samples.write_text("name\tchemistry\ttargetnumcells\nS1\tv3\t1000\n")
    monkeypatch.setenv("PATH", os.fspath(tmp_path / "empty-bin"))
    with pytest.raises(FileNotFoundError, match=r"'kallisto'.*apt-get install kallisto bustools"):
        loomfile.create_from_fastq(
            os.fspath(tmp_path / "out.loom"), "S1", [os.fspath(fastq)], os.fspath(index), os.fspath(samples)
        )
    assert not (tmp_path / "out.loom").exists()


@pytest.mark.parametrize("missing", ["manifest", "fastq", "sample"])
def test_create_from_fastq_checks_its_inputs_as_loompy_does(tmp_path, missing: str) -> None:
    index = tmp_path / "index"
    index.mkdir()
    if missing != "manifest":
        (index / "manifest.json").write_text('{"index_file": "k.idx"}')
    fastq = tmp_path / "r1.fastq.gz"
    if missing != "fastq":
        fastq.write_bytes(b"")
    samples = tmp_path / "samples.tab"
    samples.write_text("name\tchemistry\ttargetnumcells\nS1\tv3\t1000\n")
    sample = "S9" if missing == "sample" else "S1"
    args = (
        os.fspath(tmp_path / "out.loom"),
        sample,
        [os.fspath(fastq)],
        os.fspath(index),
        os.fspath(samples),
    )
    with pytest.raises(ValueError) as theirs:
        loompy.create_from_fastq(*args)
    with pytest.raises(ValueError) as ours:
        loomfile.create_from_fastq(*args)
    assert str(ours.value) == str(theirs.value)


# --- call_cells, against loompy's (the same draws from a seeded np.random) -----------------------------


def barcode_matrix(seed: int) -> Any:
    """Genes x barcodes: 60 cells (600-900 UMIs), 700 ambient barcodes (25-200 UMIs), 1240 nearly
    empty ones; ambient and cell profiles Zipf-like, as in droplet data (60 genes only in cells)."""
    import scipy.sparse as sparse

    rng = np.random.default_rng(seed)
    n_genes = 300
    ambient = 1.0 / np.arange(1, n_genes + 1) ** 1.1
    ambient[-60:] = 0  # genes only cells express
    ambient /= ambient.sum()
    cell = 1.0 / rng.permutation(np.arange(1, n_genes + 1)) ** 1.1
    cell /= cell.sum()
    columns = [rng.multinomial(n, cell) for n in rng.integers(600, 900, 60)]
    columns += [rng.multinomial(n, ambient) for n in rng.integers(25, 200, 700)]
    columns += [rng.multinomial(n, ambient) for n in rng.integers(0, 15, 1240)]
    return sparse.csr_matrix(np.array(columns).T)


def test_call_cells_gives_loompys_answer() -> None:
    matrix = barcode_matrix(11)
    np.random.seed(4)
    theirs = loompy.call_cells(matrix, expected_n_cells=60)
    np.random.seed(4)
    ours = loomfile.call_cells(matrix, expected_n_cells=60)
    assert ours[0] == theirs[0]
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert (ours[1][:60] < 0.01).all() and (ours[1][60:] > 0.01).mean() > 0.95  # cells found


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # (loompy's, before its assertion)
def test_call_cells_without_unseen_features_gives_up_as_loompy_cannot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every feature seen in the ambient barcodes: loompy fails an assertion; loomfile logs why and
    calls every barcode a cell (loompy's answer when the estimator does not apply)."""
    matrix = barcode_matrix(11)[:-60]
    with pytest.raises(AssertionError):
        loompy.call_cells(matrix, expected_n_cells=60)
    with caplog.at_level(logging.ERROR):
        _, pvalues = loomfile.call_cells(matrix, expected_n_cells=60)
    assert (pvalues == 1).all()
    assert "every feature was seen" in caplog.text


def test_good_turing_and_bh_helpers_give_loompys_answers() -> None:
    from loompy import cell_calling as theirs

    from loomfile import cell_calling as ours

    rng = np.random.default_rng(2)
    frequencies = rng.zipf(1.6, 3000)
    frequencies = frequencies[frequencies < 400]
    for a, b in zip(ours.sgt_proportions(frequencies), theirs.sgt_proportions(frequencies), strict=True):
        np.testing.assert_array_equal(a, b)
    p = rng.random(500)
    np.testing.assert_array_equal(ours.adjust_pvalue_bh(p), theirs.adjust_pvalue_bh(p))
    with pytest.raises(ours.SimpleGoodTuringError):
        ours.sgt_proportions(np.array([1, 2, 3, 1, 2]))
    with pytest.raises(theirs.SimpleGoodTuringError):
        theirs.sgt_proportions(np.array([1, 2, 3, 1, 2]))
