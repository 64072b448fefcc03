"""What the command groups of the `hyperbench` command line share: the console, the common options and
small argument helpers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


ProfileOpt = typer.Option("smoke", "--profile", "-p", help="smoke | quick | paper, or a path to a profile YAML")


TasksOpt = typer.Option(None, "--tasks", "-t", help="comma-separated subset of denoise,dejpeg,sr")


ModelsOpt = typer.Option(None, "--models", "-m", help="comma-separated subset of the profile's models")


DataRootOpt = typer.Option(None, "--data-root", help="folder holding CBSD68/, LIVE1/, ... (default: $HYPERBENCH_DATA)")


RunsOpt = typer.Option(Path("results/runs"), "--runs-dir", help="where run folders (checkpoints, logs) go")


ResultsOpt = typer.Option(Path("results"), "--results-dir", help="where tidy result CSVs go")


TablesOpt = typer.Option(Path("paper_tables/generated"), "--tables-dir", help="where tables and figures go")


def log(message) -> None:
    """Progress messages of the pipeline: plain text (paths and level lists are not rich markup), long
    lines kept whole so a path can be copied."""
    console.print(message, markup=False, soft_wrap=True)


def _split(value: str | None):
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


WeightsOpt = typer.Option(None, "--weights-dir", help="official weight files, for profiles with `weights:` (default: $HYPERBENCH_WEIGHTS or ./weights)")


def _paths(runs_dir, results_dir, tables_dir, weights_dir=None):
    from bench.apps.reproduce import Paths

    return Paths(runs=runs_dir, results=results_dir, tables=tables_dir, weights=weights_dir)
