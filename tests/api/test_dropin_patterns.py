"""Call patterns of software written for loompy (Geneformer's gene-id collapsing, SCENIC's export,
velocyto's output), written here in our own words and run once with loompy 3.0.8 and once with
loomfile in its place; the files they leave must hold the same values."""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from typing import Any

import loompy
import numpy as np
import pandas as pd
import pytest

import loomfile
from looms import stored_contents


def assert_same_files(ours: str, theirs: str) -> None:
    a, b = stored_contents(ours), stored_contents(theirs)
    assert a.keys() == b.keys()
    for name in b:
        assert a[name].dtype.kind == b[name].dtype.kind or {a[name].dtype.kind, b[name].dtype.kind} <= {
            "O",
            "S",
        }, name
        if a[name].dtype.names:
            assert a[name].tolist() == b[name].tolist(), name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def run_with(lib: Any, pattern: Any, *args: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pattern(lib, *args)


# --- Geneformer: collapse gene ids (None for unmapped ones), sum duplicates, band by band ---------------


def collapse_gene_ids(lp: Any, source: str, target: str, mapping: dict[str, str], band: int) -> list[str]:
    with lp.connect(source) as ds:
        collapsed = [mapping.get(gene_id.upper()) for gene_id in ds.ra["ensembl_id"]]
        ds.ra["gene_ids_collapsed"] = collapsed
        repeated = [gene for gene, n in Counter(ds.ra["gene_ids_collapsed"]).items() if n > 1]
        first = True
        for _, _, view in ds.scan(axis=1, batch_size=band):
            frame = pd.DataFrame(view[:, :], index=ds.ra["gene_ids_collapsed"])
            single = frame.loc[~frame.index.isin(repeated)]
            summed = frame.loc[frame.index.isin([g for g in repeated if "None" not in g])]
            summed = summed.groupby(summed.index).sum()
            merged = pd.concat([single, summed], axis=0)
            if "n_counts" not in view.ca.keys():
                view.ca["n_counts"] = np.sum(view[:, :], axis=0).astype(int)
            if first:
                lp.create(
                    target,
                    merged.to_numpy(),
                    row_attrs={"ensembl_id": merged.index.to_numpy()},
                    col_attrs=view.ca,
                )
                first = False
            else:
                with lp.connect(target, mode="r+") as out:
                    out.add_columns(merged.to_numpy(), col_attrs=view.ca)
        return list(ds.ra["gene_ids_collapsed"])


@pytest.fixture
def geneformer_input(tmp_path) -> tuple[dict[str, str], dict[str, str]]:
    rng = np.random.default_rng(21)
    n_genes, n_cells = 12, 23
    ids = [f"ensg{i:03d}" for i in range(n_genes)]
    mapping = {
        f"ENSG{i:03d}": f"ENSG{i // 2 * 2:03d}" for i in range(n_genes - 2)
    }  # pairs collapse, 2 unmapped
    matrix = rng.poisson(2.0, (n_genes, n_cells)).astype(np.float32)
    paths = {}
    for lib in ("loompy", "loomfile"):
        paths[lib] = os.fspath(tmp_path / f"{lib}.loom")
        loompy.create(
            paths[lib],
            matrix,
            {"ensembl_id": np.array(ids)},
            {"cell": np.array([f"c{j}" for j in range(n_cells)])},
        )
    return paths, mapping


def test_geneformer_collapse_pattern(geneformer_input, tmp_path) -> None:
    paths, mapping = geneformer_input
    theirs = run_with(loompy, collapse_gene_ids, paths["loompy"], os.fspath(tmp_path / "t.loom"), mapping, 10)
    ours = run_with(
        loomfile, collapse_gene_ids, paths["loomfile"], os.fspath(tmp_path / "o.loom"), mapping, 10
    )
    assert ours == theirs
    assert ours.count("None") == 2  # read back as the text it filters on
    assert_same_files(os.fspath(tmp_path / "o.loom"), os.fspath(tmp_path / "t.loom"))
    assert_same_files(paths["loomfile"], paths["loompy"])


# --- SCENIC (pySCENIC's export_to_loom): categorical columns with NaN, compound regulon attributes, JSON ---


def scenic_export(
    lp: Any, target: str, obs: pd.DataFrame, expression: pd.DataFrame, auc: pd.DataFrame
) -> None:
    regulons = np.array(
        [tuple(row) for row in (expression.T.to_numpy()[:, :2] > 1).astype(np.int64)],
        dtype=[("Reg1(+)", np.int64), ("Reg2(-)", np.int64)],
    )
    col_attrs = {
        "CellID": np.array(expression.index),
        "nGene": np.array(np.sum(expression.T.to_numpy() > 0, axis=0)).flatten(),
        "RegulonsAUC": np.array(
            [tuple(row) for row in auc.to_numpy()], dtype=[(c, np.float64) for c in auc.columns]
        ),
    }
    for column in obs.columns:
        col_attrs[column] = np.array(obs[column])
    row_attrs = {"Gene": np.array(expression.columns), "Regulons": regulons}
    metadata = {
        "metrics": [{"name": "nUMI"}],
        "annotations": [{"name": c, "values": sorted(map(str, set(obs[c])))} for c in obs.columns],
    }
    lp.create(
        target,
        expression.T.to_numpy(),
        row_attrs,
        col_attrs,
        file_attrs={"MetaData": json.dumps(metadata), "title": "SCENIC"},
    )


def test_scenic_export_pattern(tmp_path) -> None:
    rng = np.random.default_rng(5)
    cells, genes = [f"cell{i}" for i in range(15)], [f"G{j}" for j in range(8)]
    expression = pd.DataFrame(rng.poisson(1.5, (15, 8)).astype(np.float64), index=cells, columns=genes)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(["T", "B", np.nan] * 5),
            "batch": pd.Categorical(["b1", "b2", "b1", "b2", "b2"] * 3),
            "n_counts": rng.random(15),
        },
        index=cells,
    )
    auc = pd.DataFrame(rng.random((15, 2)), index=cells, columns=["Reg1(+)", "Reg2(-)"])
    ours, theirs = os.fspath(tmp_path / "o.loom"), os.fspath(tmp_path / "t.loom")
    run_with(loompy, scenic_export, theirs, obs, expression, auc)
    run_with(loomfile, scenic_export, ours, obs, expression, auc)
    assert_same_files(ours, theirs)
    with loomfile.connect(ours, "r") as ds:
        assert json.loads(ds.attrs["MetaData"])["metrics"] == [{"name": "nUMI"}]
        assert set(ds.ca.cell_type) == {"T", "B", "nan"}


# --- velocyto: spliced/unspliced/ambiguous layers, `_X`/`_Y` embeddings, then scvelo-style reads --------


def velocyto_write_and_read(lp: Any, target: str) -> dict[str, Any]:
    rng = np.random.default_rng(9)
    n_genes, n_cells = 25, 18
    layers = {
        name: rng.poisson(lam, (n_genes, n_cells)).astype(np.uint32)
        for name, lam in (("spliced", 2), ("unspliced", 1), ("ambiguous", 0.2))
    }
    layers[""] = layers["spliced"].astype(np.float32)
    col_attrs = {
        "CellID": np.array([f"run1:{'ACGT'[j % 4] * 3}{j}x" for j in range(n_cells)]),
        "_X": rng.normal(size=n_cells),
        "_Y": rng.normal(size=n_cells),
        "ClusterName": np.array([f"cl{j % 3}" for j in range(n_cells)]),
    }
    row_attrs = {
        "Gene": np.array([f"G{i}" for i in range(n_genes)]),
        "Accession": np.array([f"ENSMUSG{i:05d}" for i in range(n_genes)]),
        "Chromosome": np.array(["chr1"] * n_genes),
        "Strand": np.array(["+"] * n_genes),
        "Start": np.arange(n_genes) * 10,
        "End": np.arange(n_genes) * 10 + 5,
    }
    lp.create(
        target,
        layers,
        row_attrs,
        col_attrs,
        file_attrs={"velocyto.__version__": "0.17.17", "velocyto.logic": "Permissive10X"},
    )
    with lp.connect(target) as ds:
        keep = ds.ca.ClusterName != "cl2"
        return {
            "spliced": ds.layers["spliced"][:, keep],
            "unspliced": ds.layers["unspliced"][:, :][:, keep],
            "xy": np.column_stack([ds.ca._X, ds.ca._Y])[keep],
            "sparse": ds.layers["ambiguous"].sparse().toarray(),
            "genes": ds.ra.Gene[ds.ra.Start > 50].tolist(),
        }


def test_velocyto_pattern(tmp_path) -> None:
    theirs = run_with(loompy, velocyto_write_and_read, os.fspath(tmp_path / "t.loom"))
    ours = run_with(loomfile, velocyto_write_and_read, os.fspath(tmp_path / "o.loom"))
    assert ours.keys() == theirs.keys()
    for key in theirs:
        np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(theirs[key]), err_msg=key)
    assert_same_files(os.fspath(tmp_path / "o.loom"), os.fspath(tmp_path / "t.loom"))
