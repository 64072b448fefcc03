"""`hyperbench perf`: timings of this machine (bench/apps/perf.py) and a profile's efficiency table (bench/apps/efficiency.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.apps.cli_common import DataRootOpt, ModelsOpt, ProfileOpt, ResultsOpt, RunsOpt, TablesOpt, TasksOpt, _split, checked_workers, log


def perf(device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N"),
         threads: int = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)"),
         repeats: int = typer.Option(None, "--repeats", help="timed repeats per variant (median and min are printed; default 5, with --efficiency 20, the least it takes)"),
         levels: int = typer.Option(4, "--levels", help="joint step: levels K"),
         blocks: int = typer.Option(16, "--blocks", help="HyperRes meta blocks"),
         width: int = typer.Option(64, "--width", help="HyperRes width"),
         batch: int = typer.Option(4, "--batch", help="joint step: crops per level"),
         crop: int = typer.Option(64, "--crop", help="joint step: crop size"),
         sweep_levels: int = typer.Option(21, "--sweep-levels", help="level sweep: number of levels"),
         sweep_size: int = typer.Option(256, "--sweep-size", help="level sweep and forward throughput: image size"),
         workers: int = typer.Option(2, "--workers", help="data path: loader worker processes to compare with none"),
         data: bool = typer.Option(True, "--data/--no-data", help="also measure the training data path (loader crops/s, step with the loader)"),
         runs_dir: Path = RunsOpt, data_root: str = DataRootOpt, profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt,
         results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt, mp_size: int = typer.Option(256, "--mp-size", help="--efficiency: image side the ms / MP is timed at (256: scaled)"),
         efficiency: bool = typer.Option(False, "--efficiency", help="instead: measure and store the efficiency table of --profile (docs/efficiency.md)")):
    """Time the joint training step (per-level loop vs batched), the level sweep, the forward throughput and the training data path on this machine (--efficiency: a profile's efficiency table)."""
    if efficiency:
        from bench.apps.efficiency import efficiency_command
        return efficiency_command(profile, results_dir, tables_dir, device, repeats, threads, _split(tasks), _split(models), mp_size, log)
    from bench.apps.perf import run_perf

    run_perf(device, threads, repeats or 5, levels, blocks, width, batch, crop, sweep_levels, sweep_size, checked_workers(workers), data, runs_dir, data_root=data_root, log=log)
