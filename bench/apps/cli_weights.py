"""`hyperbench weights`: official checkpoints in (as run folders) and out (in the official naming)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bench.apps.cli_common import RunsOpt, _split, console, log

weights_app = typer.Typer(no_args_is_help=True, help="Official checkpoints: list the released files, import them as runs, export runs.")


@weights_app.command("list")
def weights_list():
    """The released official checkpoints the suite knows: entry, task, levels, setting and where to get them."""
    from bench.weights.importing import official_files

    table = Table(pad_edge=False)
    for column in ("entry", "file", "task", "levels", "trained for"):
        table.add_column(column, no_wrap=column != "trained for")
    for entry, f in official_files():
        table.add_row(entry, f.name, f.task, ",".join(f"{v:g}" for v in f.levels) or "-", f.setting)
    console.print(table)
    for _, f in official_files():
        console.print(f"  {f.name}: {f.source}", soft_wrap=True, markup=False)


@weights_app.command("import")
def weights_import(entry: str = typer.Argument(..., help="registry name: hyperres, adafm, cresmd, cfsnet, hinet, dni, ffdnet, noisenet, plain"),
                   files: list[Path] = typer.Argument(..., help="the official file (DNI: the start-level and the end-level network)"),
                   task: str = typer.Option(..., "--task", "-t", help="denoise, dejpeg or sr"),
                   levels: str = typer.Option(None, "--levels", help="training levels, comma-separated (default: from the file or its release record)"),
                   runs_dir: Path = RunsOpt):
    """Store an official checkpoint as a finished run folder (safetensors, config, source sha256, marked imported)."""
    from bench.weights.importing import import_weights

    rundir = import_weights(entry, files, task, runs_dir, [float(v) for v in _split(levels)] if levels else None)
    run = rundir.run.config
    log(f"imported {entry} ({task}, levels {run['levels']}, {run['model_kwargs']}) -> {rundir.path}")


@weights_app.command("export")
def weights_export(run: Path = typer.Argument(..., help="a finished run folder"),
                   out: Path = typer.Option(..., "--out", "-o", help="the .pth file to write"),
                   fmt: str = typer.Option("official", "--format", help="official: the official code's naming and container")):
    """Write a run's weights in the official naming and container (loads in the official code)."""
    from bench.weights.exporting import export_run

    for path in export_run(run, out, fmt):
        log(f"wrote {path}")
