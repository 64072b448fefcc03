"""`hyperbench grid`: the jobs of `reproduce --executor local|debug|slurm` (bench/apps/grid_status.py reads them)."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.apps.cli_common import ResultsOpt, RunsOpt, _paths, console

grid_app = typer.Typer(no_args_is_help=True, help="Grid jobs (reproduce --executor local|debug|slurm).")


@grid_app.command("status")
def grid_status(profile: str = typer.Option(None, "--profile", "-p", help="only the runs of this profile"),
                runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt):
    """Every recorded job: its run, state (squeue), elapsed time, requeues, last log line and log; why an ended job left its run unfinished."""
    from tabulate import tabulate

    from bench.apps.grid_status import job_rows, profile_run_ids
    from bench.training.profiles import load_profile

    paths = _paths(runs_dir, results_dir, Path("paper_tables/generated"))
    rows = job_rows(paths.grid_dir(), paths.runs, profile_run_ids(load_profile(profile)) if profile else None)
    if not rows:
        console.print(f"no grid jobs recorded under {paths.grid_dir()}", markup=False)
        return
    table = [[r["job"], r["entry"], r["state"], "" if r["elapsed_s"] is None else f"{r['elapsed_s']:.0f} s", r["requeues"], r["last line"]] for r in rows]
    console.print(tabulate(table, ["job", "run", "state", "elapsed", "requeues", "last log line"], tablefmt="simple"), markup=False)
    for r in rows:
        if r["state"].startswith("ended"):
            console.print(f"job {r['job']} ({r['entry']}) {r['state']}: {r['why'] or 'no stderr'}; log {r['log']}", markup=False)
    console.print(f"logs: {paths.grid_dir() / 'logs'}/<job id>/", markup=False)
