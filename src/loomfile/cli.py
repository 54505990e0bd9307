"""The ``loomfile`` command: inspect, validate, combine, import and export Loom files.

Every command prints ``--help``. Errors end the command with one line on standard error and exit
status 1 (2 for usage errors), never a traceback unless ``--debug`` is given. Long operations show a
progress bar when standard error is a terminal (``--progress/--no-progress`` to choose).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import Any

import click

from . import __version__

_progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: when standard error is a terminal).",
)


class _Commands(click.Group):
    """Turns every error into one line and a non-zero exit code, unless --debug asks for the traceback."""

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


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if type(error).__module__.startswith("loomfile") else f"{type(error).__name__}: {text}"


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
    from ._describe import as_text, describe
    from .connection import connect

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
    from ._validator import LoomValidator

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
@click.argument("output", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--key", default=None, help="Row attribute to align rows on (e.g. Accession).")
@click.option("--batch-size", default=1000, show_default=True, help="Columns copied at a time.")
@_progress_option
def combine(output: str, inputs: tuple[str, ...], key: str | None, batch_size: int, progress: bool | None) -> None:
    """Concatenate the columns of INPUTS into a new file OUTPUT (replaced if it exists)."""
    from ._combine import combine as combine_files

    combine_files(list(inputs), output, key=key, batch_size=batch_size, progress=progress)
    click.echo(f"wrote {output}")


@cli.command("from-10x")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="The Loom file to write (default: <sample>.loom inside FOLDER, as loompy names it).")
@click.option("--genome", default=None, help="Genome folder to import from a cellranger v2 folder.")
@click.option("--source", type=click.Choice(["auto", "mtx", "h5"]), default="auto", show_default=True,
              help="The matrix to read: the matrix-market folder, the 10x HDF5 file, or whichever exists.")
@_progress_option
def from_10x(folder: str, output: str | None, genome: str | None, source: str, progress: bool | None) -> None:
    """Import a cellranger output FOLDER (v2, v3+ or the 10x HDF5 matrix) into a Loom file."""
    from ._journal import durability_of, sync_folder
    from .io import create_from_cellranger

    def build(outdir: str | None) -> str:
        return create_from_cellranger(folder, outdir, genome, source=source, progress=progress)  # type: ignore[arg-type]

    if output is None:
        written = build(None)
    else:
        target = os.path.abspath(output)
        # The importer names its file after the sample; build it aside, then move it to OUTPUT.
        with tempfile.TemporaryDirectory(dir=os.path.dirname(target), prefix=".loomfile-") as aside:
            shutil.move(build(aside), target)  # (a rename: the importer synced the file)
            if durability_of(None) == "full":
                sync_folder(target)
        written = output
    click.echo(f"wrote {written}")


@cli.command("to-h5ad")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--dense", is_flag=True, help="Store X and the layers dense (default: sparse, csr).")
@click.option("--x-layer", default=None,
              help='Layer to use as X (default, as anndata.read_loom: "spliced" if present, else the main matrix).')
def to_h5ad(file: str, output: str, dense: bool, x_layer: str | None) -> None:
    """Convert the Loom FILE to an AnnData OUTPUT.h5ad (cells x genes; mapping in docs/anndata.md)."""
    from .connection import connect, written_aside

    with connect(file, "r") as ds:
        adata = ds.to_anndata(sparse=not dense, X_name=x_layer)
    with written_aside(output) as tmp:
        adata.write_h5ad(tmp)
    click.echo(f"wrote {output}")


@cli.command("from-h5ad")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--uns", "uns", default="all", show_default=True,
              help="Which uns entries become global attributes: all, none, or comma-separated names.")
def from_h5ad(file: str, output: str, uns: str) -> None:
    """Convert the AnnData FILE (.h5ad) to a Loom OUTPUT file (genes x cells)."""
    import anndata

    from .io import from_anndata

    chosen: bool | list[str] = [name.strip() for name in uns.split(",") if name.strip()]
    if uns in ("all", "none"):
        chosen = uns == "all"
    from_anndata(anndata.read_h5ad(file), output, uns=chosen)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--layer", default="", help="Layer to write (default: the main matrix).")
@_progress_option
def export(file: str, output: str, layer: str, progress: bool | None) -> None:
    """Write a layer of FILE with its attributes as a tab-separated OUTPUT file (loompy's layout)."""
    from .connection import connect

    with connect(file, "r") as ds:
        ds.export(output, layer=layer, progress=progress)
    click.echo(f"wrote {output}")


@cli.command()
@click.option("--dir", "folder", default=None, type=click.Path(file_okay=False),
              help="Folder for the generated files (default: a temporary folder).")
@click.option("--cells", default=3000, show_default=True, help="Number of cells (columns).")
@click.option("--genes", default=2000, show_default=True, help="Number of genes (rows).")
def demo(folder: str | None, cells: int, genes: int) -> None:
    """Generate a realistic dataset and walk through the main calls, timing each."""
    from ._demo import run_demo

    run_demo(folder, n_cells=cells, n_genes=genes)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    try:
        result = cli.main(args=argv, prog_name="loomfile", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    return result if isinstance(result, int) else 0  # click returns an Exit's status


if __name__ == "__main__":
    sys.exit(main())
