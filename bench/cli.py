"""The `hyperbench` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bench.errors import HyperbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproduce HyperRes (arXiv 2206.05970) and its baselines.")
console = Console()

ProfileOpt = typer.Option("smoke", "--profile", "-p", help="smoke | quick | paper, or a path to a profile YAML")
TasksOpt = typer.Option(None, "--tasks", "-t", help="comma-separated subset of denoise,dejpeg,sr")
ModelsOpt = typer.Option(None, "--models", "-m", help="comma-separated subset of the profile's models")
DataRootOpt = typer.Option(None, "--data-root", help="folder holding CBSD68/, LIVE1/, ... (default: $HYPERBENCH_DATA)")
RunsOpt = typer.Option(Path("results/runs"), "--runs-dir", help="where run folders (checkpoints, logs) go")
ResultsOpt = typer.Option(Path("results"), "--results-dir", help="where tidy result CSVs go")
TablesOpt = typer.Option(Path("paper_tables/generated"), "--tables-dir", help="where tables and figures go")


def _split(value: str | None):
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _paths(runs_dir, results_dir, tables_dir):
    from bench.pipeline import Paths

    return Paths(runs=runs_dir, results=results_dir, tables=tables_dir)


@app.command("list")
def list_cmd(pattern: str = typer.Argument("*", help="fnmatch pattern, e.g. 'ada*'")):
    """List registered models with their official parameter counts."""
    from bench.registry import list_models, model_cfg

    table = Table("model", "family", "adaptive", "protocol", "tasks", "official params", "paper")
    for name in list_models(pattern):
        cfg = model_cfg(name)
        counts = "; ".join(f"{oc.params:,} ({', '.join(f'{k}={v}' for k, v in oc.kwargs.items())})" for oc in cfg.official_counts[:2])
        table.add_row(name, cfg.family, "yes" if cfg.adaptive else "no", cfg.protocol, ",".join(cfg.tasks), counts, cfg.paper[:60])
    console.print(table)


@app.command()
def train(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt, data_root: str = DataRootOpt,
          runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt):
    """Train every run of a profile that is not finished yet (interrupted runs resume)."""
    from bench.pipeline import deterministic, train_all
    from bench.profiles import expand, load_profile

    deterministic()
    prof = load_profile(profile)
    train_all(expand(prof, _split(tasks), _split(models)), _paths(runs_dir, results_dir, tables_dir), data_root, console.print)


@app.command("eval")
def eval_cmd(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt, data_root: str = DataRootOpt,
             runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt):
    """Evaluate trained runs at every evaluation level and store tidy results."""
    from bench.pipeline import deterministic, evaluate_task, tidy_rows
    from bench.profiles import expand, load_profile
    from bench.results import write_rows

    deterministic()
    prof = load_profile(profile)
    paths = _paths(runs_dir, results_dir, tables_dir)
    entries = expand(prof, _split(tasks), _split(models))
    for task in dict.fromkeys(e.task for e in entries):
        task_entries = [e for e in entries if e.task == task]
        frame = evaluate_task(prof, task, task_entries, paths, data_root, console.print)
        write_rows(paths.results_file(prof.name), tidy_rows(prof, task, task_entries, frame))
    console.print(f"results: {paths.results_file(prof.name)}")


@app.command()
def reproduce(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt, data_root: str = DataRootOpt,
              runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt):
    """Train, evaluate and write Tables 1-3, the parameter table and figures for a profile."""
    from bench.pipeline import reproduce as run
    from bench.profiles import load_profile

    prof = load_profile(profile)
    out = run(prof, _paths(runs_dir, results_dir, tables_dir), _split(tasks), _split(models), data_root, console.print)
    console.print(f"\n[bold]done in {out['wall_s']:.0f} s[/bold] (profile {prof.name})")
    console.print(f"  results: {out['results']}")
    for path in out["tables"]:
        if path.suffix in (".md", ".png"):
            console.print(f"  {path}")


@app.command()
def tables(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt,
           runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt):
    """Rewrite the tables and figures from stored results."""
    from bench.profiles import expand, load_profile
    from bench.report import write_reports

    prof = load_profile(profile)
    for path in write_reports(prof, _paths(runs_dir, results_dir, tables_dir), expand(prof, _split(tasks), _split(models))):
        console.print(f"  {path}")


def main():
    try:
        app(standalone_mode=True)
    except HyperbenchError as exc:
        console.print(f"[bold red]error:[/bold red] {exc.problem}")
        if exc.fix:
            console.print(f"  [bold]fix:[/bold] {exc.fix}")
        sys.exit(2)


if __name__ == "__main__":
    main()
