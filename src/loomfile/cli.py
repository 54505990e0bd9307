"""The ``loomfile`` command: inspect, validate, combine, import and export Loom files.

Every command prints ``--help``. Errors end the command with one line on standard error and exit
status 1 (2 for usage errors), never a traceback unless ``--debug`` is given. Commands that write
name their output with ``-o/--output``; none replaces a file it reads, nor an existing output
without ``--force``. Long operations show a
progress bar when standard error is a terminal (``--progress/--no-progress`` to choose).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import numpy as np

from . import __version__

_Command = TypeVar("_Command", bound=Callable[..., Any])

_progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: when standard error is a terminal).",
)


class _Commands(click.Group):
    """One line on standard error for every error, and one exit status per kind: 2 when the command
    line is wrong (a missing argument, an unknown option, an output that exists without --force or
    that is also an input), 1 when the work fails (a missing or damaged file, bad data), 130 on
    Ctrl-C. ``--debug`` shows the traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except Exception as e:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(_one_line(e)) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            status = result if isinstance(result, int) else 0  # click returns an Exit's status
        except click.UsageError as e:
            where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"Error: {' '.join(e.format_message().split())}{where}", err=True)
            status = 2
        except click.ClickException as e:
            e.show()
            status = e.exit_code
        except click.Abort:
            click.echo("Aborted.", err=True)
            status = 1
        if standalone_mode:
            sys.exit(status)
        return status


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if type(error).__module__.startswith("loomfile") else f"{type(error).__name__}: {text}"


def _output_option(help_text: str, required: bool = False) -> Callable[[_Command], _Command]:
    # (no default=None: click 8.3+ takes an explicit None as a default that satisfies required=True)
    return click.option("-o", "--output", required=required, type=click.Path(dir_okay=False), help=help_text)


_force_option = click.option("--force", is_flag=True, help="Replace the output file if it exists.")


def _checked_output(output: str, inputs: list[str], force: bool, folder: bool = False) -> str:
    """OUTPUT, checked before anything is read: never one of the inputs (loomfile never replaces a
    file it was given to read), never an existing file unless --force, never a folder (unless the
    command writes a ``folder``)."""
    target = os.path.abspath(os.path.expanduser(output))
    for given in inputs:
        path = os.path.abspath(os.path.expanduser(given))
        same = os.path.realpath(path) == os.path.realpath(target) or (
            os.path.exists(path) and os.path.exists(target) and os.path.samefile(path, target)
        )
        if same:
            msg = f"the output '{output}' is also an input; loomfile never replaces an input: name another -o/--output"
            raise click.UsageError(msg)
    if os.path.isdir(target) != folder and os.path.exists(target):
        kind = ("a file", "a folder") if folder else ("a folder", "a file")
        msg = f"the output '{output}' is {kind[0]}; -o/--output names {kind[1]} here"
        raise click.UsageError(msg)
    if os.path.exists(target) and not force:
        msg = f"'{output}' exists; pass --force to replace it"
        raise click.UsageError(msg)
    return target


def _beside(path: str, extension: str) -> str:
    """``path`` with its extension replaced (the default output of a conversion)."""
    return os.path.splitext(path)[0] + extension


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback when a command fails.")
@click.version_option(__version__, prog_name="loomfile")
def cli(debug: bool) -> None:
    """Work with Loom files (.loom): the HDF5 format for annotated omics matrices."""


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(file: str, as_json: bool) -> None:
    """Shape, layers (dtype, chunks, compression), attributes, graphs and global attributes of FILE."""
    from ._api.connection import connect
    from ._ops.describe import as_text, describe

    with connect(file, "r") as ds:
        summary = describe(ds)
    click.echo(json.dumps(summary, indent=2, ensure_ascii=False) if as_json else as_text(summary))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="Print only the files that fail, with their errors.")
@click.option("--deep", is_flag=True,
              help="Also read every chunk, attribute and graph, and report what is damaged (slower).")
def validate(files: tuple[str, ...], quiet: bool, deep: bool) -> None:
    """Check each FILE against the Loom format; exit status 1 if any has errors.

    Warnings (things other tools wrote that loomfile reads anyway) do not fail a file. Without
    --deep only the file's structure is read, which takes moments on files of any size.
    """
    from ._core.validate import LoomValidator

    failed = 0
    for path in files:
        checker = LoomValidator()
        errors = checker.check_deep(path) if deep else (checker.errors if not checker.validate(path) else [])
        failed += bool(errors)
        if quiet and not errors:
            continue
        click.echo(f"{path}: {'INVALID' if errors else 'valid'}")
        for message in errors:
            click.echo(f"  error: {message}")
        for message in checker.warnings:
            click.echo(f"  warning: {message}")
    if failed:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_output_option("The new Loom file to write.", required=True)
@click.option("--key", default=None, help="Row attribute to align rows on (e.g. Accession).")
@click.option("--batch-size", default=1000, show_default=True, help="Columns copied at a time.")
@click.option("--how", type=click.Choice(["strict", "inner", "outer"]), default="strict", show_default=True,
              help="With --key: the same key values in every file (strict), those all files share "
              "(inner), or those any file has, zeros where a file lacks a row (outer).")
@click.option("--fill-missing", is_flag=True,
              help="Keep column attributes some files lack, with zeros or empty strings there "
              "(default: drop them, with a warning).")
@click.option("--sample-attr", default=None, help="Add a column attribute naming each cell's file (e.g. SampleID).")
@click.option("--unique-ids", is_flag=True, help="Prefix each CellID with its file's name and ':'.")
@click.option("--axis", type=click.IntRange(0, 1), default=1, show_default=True,
              help="1: the files' columns one after another; 0: their rows (the same cells with other "
              "genes), the columns matched on --key (default CellID).")
@_force_option
@_progress_option
def combine(
    inputs: tuple[str, ...],
    output: str,
    key: str | None,
    batch_size: int,
    how: str,
    fill_missing: bool,
    sample_attr: str | None,
    unique_ids: bool,
    axis: int,
    force: bool,
    progress: bool | None,
) -> None:
    """Concatenate the Loom files INPUTS into a new file (-o OUTPUT): their columns, or their rows."""
    from ._ops.combine import combine as combine_files

    target = _checked_output(output, list(inputs), force)
    combine_files(
        list(inputs),
        target,
        key=key,
        batch_size=batch_size,
        how=how,  # type: ignore[arg-type]
        fill_values="auto" if fill_missing else None,
        sample_attr=sample_attr,
        unique_ids=unique_ids,
        axis=axis,
        progress=progress,
    )
    click.echo(f"wrote {output}")


@cli.command("from-10x")
@click.argument("source_path", metavar="SOURCE", type=click.Path())
@_output_option("The Loom file to write (default: <sample>.loom inside SOURCE, or beside a .h5, as loompy names it).")
@click.option("--genome", default=None, help="Genome to import from a cellranger v2 matrix.")
@click.option("--source", type=click.Choice(["auto", "mtx", "h5"]), default="auto", show_default=True,
              help="The matrix to read: the matrix-market folder, the 10x HDF5 file, or whichever exists.")
@click.option("--feature-type", "feature_types", multiple=True,
              help="Keep only the features of this type (e.g. 'Antibody Capture'); repeat for several.")
@_force_option
@_progress_option
def from_10x(
    source_path: str,
    output: str | None,
    genome: str | None,
    source: str,
    feature_types: tuple[str, ...],
    force: bool,
    progress: bool | None,
) -> None:
    """Import 10x cellranger output into a Loom file.

    SOURCE is a run folder, its outs/ folder, a matrix folder (filtered_feature_bc_matrix/, or a v2
    genome folder) or a 10x .h5 file (filtered_feature_bc_matrix.h5, or a download named
    <sample>_filtered_feature_bc_matrix.h5). v2 and v3+ layouts, gzipped or not.
    """
    from ._store.journal import durability_of, sync_folder
    from .io import create_from_cellranger
    from .io.cellranger import file_stem, locate

    types = list(feature_types) or None
    if output is None:
        folder = os.path.dirname(os.path.abspath(source_path)) if os.path.isfile(source_path) else source_path
        output = os.path.join(folder, f"{file_stem(locate(source_path).sample, types)}.loom")
    target = _checked_output(output, [source_path], force)
    # The importer names its file after the sample; build it aside, then move it to OUTPUT.
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target), prefix=".loomfile-") as aside:
        built = create_from_cellranger(
            source_path, aside, genome, source=source, feature_types=types, progress=progress  # type: ignore[arg-type]
        )
        shutil.move(built, target)
        if durability_of(None) == "full":  # (a rename: the importer synced the file)
            sync_folder(target)
    click.echo(f"wrote {output}")


@cli.command("to-h5ad")
@click.argument("file", type=click.Path(dir_okay=False))
@_output_option("The .h5ad file to write (default: FILE with the extension .h5ad).")
@click.option("--dense", is_flag=True, help="Store X and the layers dense (default: sparse, csr).")
@click.option("--x-layer", default=None,
              help='Layer to use as X (default, as anndata.read_loom: "spliced" if present, else the main matrix).')
@click.option("--obs-names", default="CellID", show_default=True,
              help="Column attribute holding the cell names (the index of obs).")
@click.option("--var-names", default="Gene", show_default=True,
              help="Row attribute holding the gene names (the index of var).")
@_force_option
def to_h5ad(
    file: str, output: str | None, dense: bool, x_layer: str | None, obs_names: str, var_names: str, force: bool
) -> None:
    """Convert the Loom FILE to an AnnData .h5ad file (cells x genes; mapping in docs/anndata.md)."""
    from ._api.connection import connect
    from ._core.connection import written_aside

    output = output or _beside(file, ".h5ad")
    target = _checked_output(output, [file], force)
    with connect(file, "r") as ds:
        adata = ds.to_anndata(sparse=not dense, X_name=x_layer, obs_names=obs_names, var_names=var_names)
    with written_aside(target) as tmp:
        adata.write_h5ad(tmp)
    click.echo(f"wrote {output}")


@cli.command("from-h5ad")
@click.argument("file", type=click.Path(dir_okay=False))
@_output_option("The Loom file to write (default: FILE with the extension .loom).")
@click.option("--uns", "uns", default="all", show_default=True,
              help="Which uns entries become global attributes: all, none, or comma-separated names.")
@_force_option
def from_h5ad(file: str, output: str | None, uns: str, force: bool) -> None:
    """Convert the AnnData FILE (.h5ad) to a Loom file (genes x cells)."""
    from .io import from_anndata
    from .io.anndata import read_h5ad

    output = output or _beside(file, ".loom")
    target = _checked_output(output, [file], force)
    chosen: bool | list[str] = [name.strip() for name in uns.split(",") if name.strip()]
    if uns in ("all", "none"):
        chosen = uns == "all"
    from_anndata(read_h5ad(file), target, uns=chosen)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(),
              help="The file (tab) or folder (mtx) to write (default: FILE with the extension .tsv, or "
              "FILE's name with _matrix).")
@click.option("--format", "form", type=click.Choice(["tab", "mtx"]), default="tab", show_default=True,
              help="tab: loompy's tab-separated layout; mtx: a 10x-style Matrix Market folder "
              "(matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz).")
@click.option("--layer", default="", help="Layer to write (default: the main matrix).")
@_force_option
@_progress_option
def export(file: str, output: str | None, form: str, layer: str, force: bool, progress: bool | None) -> None:
    """Write a layer of FILE with its attributes: a tab-separated file, or a Matrix Market folder."""
    from ._api.connection import connect

    output = output or _beside(file, "_matrix" if form == "mtx" else ".tsv")
    target = _checked_output(output, [file], force, folder=form == "mtx")
    with connect(file, "r") as ds:
        ds.export(target, layer=layer, format=form, progress=progress)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_output_option("The new Loom file to write.", required=True)
@click.option("--cells", "cells_file", type=click.Path(dir_okay=False),
              help="Keep the cells named in this text file (one per line; matched on --cell-attr).")
@click.option("--genes", "genes_file", type=click.Path(dir_okay=False),
              help="Keep the genes named in this text file (one per line; names or accessions).")
@click.option("--where", "conditions", multiple=True, metavar="ATTR=V1,V2",
              help="Keep the cells whose column attribute ATTR is one of the values (repeat to combine).")
@click.option("--cell-attr", default="CellID", show_default=True, help="Column attribute holding cell names.")
@click.option("--gene-attr", default=None,
              help="Row attribute holding gene names (default: Gene and Accession both match).")
@_force_option
@_progress_option
def subset(
    file: str,
    output: str,
    cells_file: str | None,
    genes_file: str | None,
    conditions: tuple[str, ...],
    cell_attr: str,
    gene_attr: str | None,
    force: bool,
    progress: bool | None,
) -> None:
    """Write the selected cells and genes of FILE (every layer, attribute and graph) to a new file.

    Streams band by band; cells and genes keep the file's order.
    """
    from ._api.connection import connect
    from ._format.names import names_mask, where_mask

    target = _checked_output(output, [file], force)
    with connect(file, "r") as ds:
        cols = np.ones(ds.shape[1], dtype=bool)
        rows = np.ones(ds.shape[0], dtype=bool)
        if cells_file is not None:
            cols &= names_mask(ds.ca, [cell_attr], _lines(cells_file), "cells")
        for condition in conditions:
            cols &= where_mask(ds.ca, condition)
        if genes_file is not None:
            rows &= names_mask(ds.ra, [gene_attr] if gene_attr else ["Gene", "Accession"], _lines(genes_file), "genes")
        ds.subset(target, rows=rows, cols=cols, progress=progress)
    click.echo(f"wrote {output}")


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


@cli.command()
@click.option("--dir", "folder", default=None, type=click.Path(file_okay=False),
              help="Folder for the generated files (default: a temporary folder).")
@click.option("--cells", default=3000, show_default=True, help="Number of cells (columns).")
@click.option("--genes", default=2000, show_default=True, help="Number of genes (rows).")
def demo(folder: str | None, cells: int, genes: int) -> None:
    """Generate a realistic dataset and walk through the main calls, timing each."""
    from ._api.demo import run_demo

    run_demo(folder, n_cells=cells, n_genes=genes)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    status: int = cli.main(args=argv, prog_name="loomfile", standalone_mode=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
