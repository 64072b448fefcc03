"""What the command groups of the `hyperbench` command line share: the console, the common options and
small argument helpers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from bench.training.profiles import bundled_profiles

console = Console()


ProfileOpt = typer.Option("smoke", "--profile", "-p", help=f"{' | '.join(bundled_profiles())}, or a path to a profile YAML")


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


DeviceOpt = typer.Option(None, "--device", help="train and evaluate on cpu, cuda or cuda:N (default: $HYPERBENCH_DEVICE, else the GPU if there is one)")


WorkersOpt = typer.Option(None, "--workers", help="loader processes making training batches ahead of the model "
                          "(default: $HYPERBENCH_WORKERS, else 0 on a CPU-only machine, min(8, CPUs - 1) with a GPU)")


def checked_workers(workers: int) -> int:
    from bench.common.errors import HyperbenchError

    if workers < 0:
        raise HyperbenchError(f"--workers {workers} is negative", "give 0 (batches made in the training process) or more")
    return workers


def use_device(device: str | None, workers: int | None) -> None:
    """--device and --workers, checked, for this process and the grid jobs it starts (environment variables)."""
    import os

    from bench.training import distributed
    from bench.training.crops import WORKERS_ENV

    if workers is not None:
        os.environ[WORKERS_ENV] = str(checked_workers(workers))
    if device:
        distributed.named_device(device)  # an unknown name or a missing GPU: the clear error now, not after loading data
        os.environ["HYPERBENCH_DEVICE"] = device


MetricsOpt = typer.Option(None, "--metrics", help="comma-separated subset of the profile's metrics to score (psnr,ssim: the suite's own "
                          "only, e.g. where pyiqa is not installed); default: all the profile lists")
WeightsOpt = typer.Option(None, "--weights-dir", help="official weight files, for profiles with `weights:` (default: $HYPERBENCH_WEIGHTS or ./weights)")


def _paths(runs_dir, results_dir, tables_dir, weights_dir=None):
    from bench.apps.reproduce import Paths

    return Paths(runs=runs_dir, results=results_dir, tables=tables_dir, weights=weights_dir)


def with_metrics(profile, names: str | None):
    """The profile scoring only the metrics named (PSNR and SSIM always); an unknown name gets "did you mean"."""
    from dataclasses import replace

    from bench.common.errors import HyperbenchError, did_you_mean
    from bench.metrics.iqa import BUILTIN

    if names is None:
        return profile
    wanted = _split(names) or []
    listed = list(BUILTIN) + [m["name"] for m in profile.metrics]
    for name in wanted:
        if name not in listed:
            raise HyperbenchError(f"--metrics names {name!r}, which profile {profile.name} does not score",
                                  did_you_mean(name, listed) + " (add a metric to the profile's metrics: first)")
    return replace(profile, metrics=[m for m in profile.metrics if m["name"] in wanted])
