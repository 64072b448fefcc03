"""The `hyperbench` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from bench.apps.cli_common import (
    DataRootOpt,
    DeviceOpt,
    MetricsOpt,
    ModelsOpt,
    ProfileOpt,
    ResultsOpt,
    RunsOpt,
    TablesOpt,
    TasksOpt,
    WeightsOpt,
    WorkersOpt,
    _paths,
    _split,
    console,
    log,
    use_device,
    with_metrics,
)
from bench.apps.cli_data import data_app
from bench.apps.cli_grid import grid_app
from bench.apps.cli_perf import perf
from bench.apps.cli_weights import weights_app
from bench.common.allocator import keep_freed_memory
from bench.common.errors import HyperbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproduce HyperRes (arXiv 2206.05970) and its baselines.")
app.add_typer(data_app, name="data")
app.add_typer(weights_app, name="weights")
app.add_typer(grid_app, name="grid")
app.command()(perf)


@app.command("list")
def list_cmd(pattern: str = typer.Argument("*", help="fnmatch pattern, e.g. 'ada*'"),
             long: bool = typer.Option(False, "--long", "-l", help="also show paper, origin and licence")):
    """List registered models with their official parameter counts."""
    from rich.table import Column

    from bench.models.catalog import list_models, model_cfg

    names = list_models(pattern)
    if not names:
        raise HyperbenchError(f"no registered model matches {pattern!r}", "run `hyperbench list` to see all entries")
    from rich import box

    table = Table(Column("model", no_wrap=True), Column("adaptive", no_wrap=True), Column("protocol", no_wrap=True),
                  Column("tasks", no_wrap=True), Column("official params", no_wrap=True, justify="right"), box=box.SIMPLE)
    for name in names:
        cfg = model_cfg(name)
        count = f"{cfg.official_counts[0].params:,}" if cfg.official_counts else "-"
        table.add_row(name, "yes" if cfg.adaptive else "no", cfg.protocol, ",".join(cfg.tasks), count)
    console.print(table)
    if long:
        for name in names:
            cfg = model_cfg(name)
            console.print(f"[bold]{name}[/bold]: {cfg.paper}\n  origin: {cfg.origin}\n  licence: {cfg.licence}")
            for oc in cfg.official_counts:
                console.print(f"  {oc.params:>11,} params  {oc.kwargs}  ({oc.source})")


@app.command()
def train(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt, data_root: str = DataRootOpt,
          runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt, device: str = DeviceOpt,
          workers: int = WorkersOpt):
    """Train every run of a profile that is not finished yet (interrupted runs resume)."""
    from bench.apps.reproduce import deterministic, train_all
    from bench.training.profiles import expand, load_profile

    use_device(device, workers)
    deterministic()
    prof = load_profile(profile)
    train_all(expand(prof, _split(tasks), _split(models)), _paths(runs_dir, results_dir, tables_dir), data_root, log)


@app.command("eval")
def eval_cmd(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt, data_root: str = DataRootOpt,
             runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt, weights_dir: Path = WeightsOpt,
             device: str = DeviceOpt, metrics: str = MetricsOpt):
    """Evaluate trained runs at every evaluation level and store tidy results."""
    from bench.apps.reproduce import deterministic, evaluate_task, evaluation_environments, tidy_rows
    from bench.evaluation.results import write_rows
    from bench.metrics.iqa import check_profile_metrics
    from bench.training.profiles import load_profile
    from bench.weights.profile_import import profile_entries

    use_device(device, None)
    deterministic()
    prof = with_metrics(load_profile(profile), metrics)
    check_profile_metrics(prof)  # pyiqa there, names known, weight files present: before any work
    paths = _paths(runs_dir, results_dir, tables_dir, weights_dir)
    entries, _ = profile_entries(prof, paths, _split(tasks), _split(models), log)
    for task in dict.fromkeys(e.task for e in entries):
        task_entries = [e for e in entries if e.task == task]
        frame = evaluate_task(prof, task, task_entries, paths, data_root, log)
        write_rows(paths.results_file(prof.name), tidy_rows(prof, task, task_entries, frame, paths.runs,
                                                            evaluation_environments(prof, task, task_entries, paths)))
    console.print(f"results: {paths.results_file(prof.name)}")


@app.command()
def reproduce(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt, data_root: str = DataRootOpt,
              runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt, weights_dir: Path = WeightsOpt,
              executor: str = typer.Option(None, "--executor", help="none: train here, one run after the other (default) | "
                                           "local | debug | slurm: one submitit job per unfinished run (profile grid.executor)"),
              partition: str = typer.Option(None, "--partition", help="Slurm partition (profile grid.partition)"),
              gpus_per_job: int = typer.Option(None, "--gpus-per-job", help="Slurm: GPUs per run, one data-parallel process each; 0: a CPU job "
                                               "(default: 1 with --device cuda, else 0)"),
              max_requeues: int = typer.Option(None, "--max-requeues", help="Slurm: how often a run that hits the time limit is requeued (default 3)"),
              cpus_per_job: int = typer.Option(None, "--cpus-per-job", help="Slurm: CPUs per process"),
              mem_gb: int = typer.Option(None, "--mem-gb", help="Slurm: memory per job in GB"),
              time_min: int = typer.Option(None, "--time-min", help="Slurm time limit in minutes (default 1440); a run that hits it is requeued and resumes"),
              array_parallelism: int = typer.Option(None, "--array-parallelism", help="Slurm: at most this many jobs at once (default 64)"),
              wait: bool = typer.Option(None, "--wait/--no-wait", help="wait for the jobs (default: yes for local/debug, no for slurm); "
                                        "without waiting, finished runs are gathered and the others reported as missing"),
              dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (every run, its settings and training FLOPs) and run nothing"),
              tflops: float = typer.Option(None, "--tflops", help="with --dry-run: a device's sustained TFLOP/s, for a time estimate"),
              device: str = DeviceOpt, workers: int = WorkersOpt, metrics: str = MetricsOpt):
    """Train, evaluate and write Tables 1-3, the parameter table and figures for a profile."""
    from bench.apps.reproduce import reproduce as run
    from bench.training.grid_options import GridOptions
    from bench.training.profiles import load_profile

    use_device(device, workers)
    prof = with_metrics(load_profile(profile), metrics)
    if dry_run:
        _print_plan(prof, _split(tasks), _split(models), runs_dir, tflops)
        return
    grid = GridOptions.from_settings(prof.grid, executor=executor, partition=partition, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job,
                                     mem_gb=mem_gb, time_min=time_min, array_parallelism=array_parallelism, wait=wait,
                                     max_requeues=max_requeues, device=device)
    out = run(prof, _paths(runs_dir, results_dir, tables_dir, weights_dir), _split(tasks), _split(models), data_root, log, grid=grid)
    console.print(f"\n[bold]done in {out['wall_s']:.0f} s[/bold] (profile {prof.name})")
    if out["missing"]:
        console.print(f"  [bold yellow]{len(out['missing'])} runs not finished (missing from the tables):[/bold yellow]")
        for r in out["missing"]:
            console.print(f"    {r.run_id}  {r.model} {r.task} levels {', '.join(f'{v:g}' for v in r.levels)}", markup=False)
    if out["unevaluated"]:
        console.print(f"  [bold yellow]{len(out['unevaluated'])} entries not evaluated yet (missing from the tables; "
                      "`hyperbench grid status` shows their jobs):[/bold yellow]")
        for e in out["unevaluated"]:
            console.print(f"    {e.model} {e.task}" + (f" seed {e.seed}" if e.seed else ""), markup=False)
    console.print(f"  results: {out['results']}")
    for path in out["tables"]:
        if path.suffix in (".md", ".png"):
            console.print(f"  {path}")


def _print_plan(prof, tasks, models, runs_dir, tflops) -> None:
    from tabulate import tabulate

    from bench.training.distributed import device, emulated_bf16_warning
    from bench.training.plan import describe_levels, plan
    from bench.training.profiles import expand

    expanded = expand(prof, tasks, models)
    planned = plan(expanded, runs_dir)
    rows = [[p.entry, p.task, describe_levels(p.task, p.levels), p.seed, f"{p.steps:,}", f"{p.batch} x {p.crop}²", p.crops_per_step,
             f"{p.train_flops / 1e12:.3g}", p.run_id, "done" if p.done else "to train"] for p in planned]
    headers = ["entry", "task", "levels", "seed", "steps", "batch x crop", "crops/step", "train TFLOP", "run", "state"]
    seeds = {}
    for p in planned:
        seeds.setdefault((p.entry, p.task), set()).add(p.seed)
    several = {}  # entry -> {number of seeds: tasks}
    for (name, task), found in seeds.items():
        if len(found) > 1:
            several.setdefault(name, {}).setdefault(len(found), []).append(task)
    counted = "; ".join(f"{name} x {n} seeds ({', '.join(tasks)})" for name, by_n in several.items() for n, tasks in by_n.items())
    counted = f" ({counted})" if counted else " (one training seed each)"
    log(f"profile {prof.name}: {len(planned)} runs{counted}\n" + tabulate(rows, headers, tablefmt="simple", disable_numparse=True))
    todo = [p for p in planned if not p.done]
    total = sum(p.train_flops for p in todo)
    log(f"{len(todo)} of {len(planned)} runs to train: {total / 1e15:.3g} PFLOP (3 x forward FLOPs per step, counted on this machine)")
    to_train = {p.run_id for p in todo}  # the plan already knows which runs are done: no second look at the run folders
    warning = emulated_bf16_warning([run.config for entry in expanded for run in entry.runs if run.run_id in to_train], device())
    if warning:
        log(f"warning: {warning}")
    if tflops:
        log(f"at {tflops:g} TFLOP/s sustained: about {total / (tflops * 1e12) / 3600:.2f} h of training (data loading and evaluation not counted)")
    else:
        log("give --tflops (a device's sustained TFLOP/s; `hyperbench perf` measures it) for a time estimate")


@app.command()
def tables(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt,
           runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt, weights_dir: Path = WeightsOpt,
           data_root: str = DataRootOpt):
    """Rewrite the tables and figures from stored results (the visual comparisons need the runs and the evaluation images)."""
    from bench.reports.claims import write_claims
    from bench.reports.tables import write_reports
    from bench.training.profiles import load_profile
    from bench.weights.profile_import import profile_entries

    prof = load_profile(profile)
    paths = _paths(runs_dir, results_dir, tables_dir, weights_dir)
    entries, absent = profile_entries(prof, paths, _split(tasks), _split(models), log)
    for path in write_reports(prof, paths, entries, absent, data_root) + [write_claims(prof, paths, entries)[0]]:
        console.print(f"  {path}")


@app.command()
def metrics(profile: str = typer.Option(None, "--profile", "-p", help="also check the metrics this profile scores (names, pyiqa, weight files)"),
            fetch: list[str] = typer.Option(None, "--fetch", help="build these pyiqa metrics with downloads allowed (their weight files go to "
                                            "TORCH_HOME): run it on a machine with internet"),
            time_images: int = typer.Option(0, "--time", help="benchmark: score this many CBSD68 images (noisy, sigma 25) with every metric of "
                                            "--profile (else psnr, ssim, ms_ssim, nlpd) and print the seconds each adds per 1,000 images"),
            cross_check: bool = typer.Option(False, "--cross-check", help="pyiqa's psnr, psnry, ssim and ssimc against the suite's own "
                                             "PSNR/SSIM on the bundled sample images (docs/metrics.md)"),
            data_root: str = DataRootOpt):
    """List the metrics a profile can use: the suite's PSNR/SSIM and pyiqa's full-reference metrics, their direction and weight files."""
    from bench.apps.metrics_list import fetch_metrics, list_metrics, print_cross_check, time_metrics

    if cross_check:
        print_cross_check(log)
    elif fetch:
        fetch_metrics(fetch, log)
    elif time_images:
        time_metrics(profile, time_images, data_root, log)
    else:
        list_metrics(profile, console)


@app.command()
def regress(results: Path = typer.Argument(..., help="results CSV to check, e.g. results/smoke/results.csv"),
            against: Path = typer.Option(..., "--against", help="reference results CSV, e.g. results/reference/smoke.csv"),
            tol: list[str] = typer.Option(None, "--tol", help="METRIC=VALUE, repeatable (default psnr=0.05, ssim=0.002)")):
    """Metric regression gate: exit 1 if a row is worse than the reference by more than tol, or missing."""
    from bench.metrics.regress import compare_files, print_report

    comparison = compare_files(results, against, tol)
    print_report(comparison, console)
    raise typer.Exit(0 if comparison.passed else 1)


@app.command()
def demo(model: str = typer.Option(None, "--model", help="show only this registered model (e.g. hyperres)"),
         checkpoint: Path = typer.Option(None, "--checkpoint", help="a run's model.safetensors, or a .safetensors/.pth state dict (with --model, --task)"),
         run: str = typer.Option(None, "--run", help="run id (folder name under --runs-dir) to show first"),
         task: str = typer.Option(None, "--task", help="task of a --checkpoint that has no run folder"),
         kwargs: str = typer.Option(None, "--kwargs", help="JSON keyword arguments of a --checkpoint that has no run folder"),
         image: Path = typer.Option(None, "--image", help="PNG or JPEG to show first (scikit-image samples are always there)"),
         port: int = typer.Option(8000, "--port", help="port on 127.0.0.1 (0: any free port)"),
         runs_dir: Path = RunsOpt,
         benchmark: bool = typer.Option(False, "--benchmark", help="print the per-update time for a 512x512 image and exit"),
         bench_profiles: str = typer.Option("smoke,quick", "--bench-profiles", help="HyperRes sizes (profiles) the benchmark times")):
    """Serve a local page with a restoration-level slider: degraded input, restored output, PSNR, time per update."""
    from bench.apps.demo import server as demo_server
    from bench.apps.demo.models import parse_kwargs

    if benchmark:
        demo_server.benchmark(_split(bench_profiles), log=typer.echo)
        return
    server = demo_server.build_demo(runs_dir, model=model, run=run, checkpoint=checkpoint, task=task,
                                    kwargs=parse_kwargs(kwargs), image=image)
    demo_server.serve_forever(server, port, log=log)


@app.command()
def tune(profile: str = ProfileOpt, tasks: str = TasksOpt, models: str = ModelsOpt, data_root: str = DataRootOpt,
         runs_dir: Path = RunsOpt, results_dir: Path = ResultsOpt, tables_dir: Path = TablesOpt,
         benchmark: bool = typer.Option(False, "--benchmark", help="time the search against a dense grid instead (first task and model)"),
         images: int = typer.Option(3, "--images", help="--benchmark: number of evaluation images"),
         grid: int = typer.Option(41, "--grid", help="--benchmark: points of the dense reference grid")):
    """Optimal input level per image (Fig 5 + deviation table), blind denoising and noise-estimator accuracy for trained adaptive entries."""
    from bench.apps.reproduce import deterministic
    from bench.training.profiles import load_profile
    from bench.tuning.tune import benchmark as run_benchmark
    from bench.tuning.tune import tune_profile, tune_settings

    deterministic()
    prof = load_profile(profile)
    paths = _paths(runs_dir, results_dir, tables_dir)
    if benchmark:
        task, model = (_split(tasks) or ["denoise"])[0], (_split(models) or ["hyperres"])[0]
        run_benchmark(prof, paths, task, model, images, data_root, log, grid)
        return
    for path in tune_profile(prof, paths, _split(tasks), _split(models), data_root, log, tune_settings(prof)):
        console.print(f"  {path}")


@app.command()
def recipe(name: str = typer.Argument(None, help="registered entry, e.g. adafm (see `hyperbench list`)"),
           task: str = typer.Option(None, "--task", help="one task (default: every task of the entry)"),
           diff: str = typer.Option(None, "--diff", help="a profile: where its settings depart from each entry's official recipe")):
    """Print an entry's official training recipe with the source of every value, or a profile's departures from the recipes."""
    from bench.models.catalog import model_cfg
    from bench.training.recipes import FIELDS, describe, load_recipe, profile_departures

    if diff:
        from bench.training.profiles import expand, load_profile

        prof = load_profile(diff)
        from rich.table import Column

        table = Table("entry", "task", "recipe field", Column("official", overflow="fold"), Column(f"profile {prof.name}", overflow="fold"),
                      title=f"profile {prof.name}: departures from the official recipes", box=None)
        for entry, rows in profile_departures(prof, expand(prof)):  # one line per entry, not per seed
            for field, official, ours in rows:
                table.add_row(entry.model, entry.task, field, describe(official), describe(ours))
        console.print(table)
        return
    if not name:
        raise HyperbenchError("name an entry, or give --diff PROFILE", "e.g. `hyperbench recipe hyperres --task denoise`")
    for task_name in [task] if task else model_cfg(name).tasks:
        rec = load_recipe(name, task_name)
        from rich.table import Column

        table = Table("field", Column("value", overflow="fold"), Column("source", overflow="fold"),
                      title=f"{name} · {task_name} · official code {rec.code}", box=None)
        for field, fact in rec.facts.items():
            value = describe(fact.value) + (f" ({fact.note})" if fact.note else "")
            table.add_row(FIELDS[field], value, fact.cited(rec.code))
        console.print(table)


@app.command()
def degrade(task: str = typer.Option(..., "--task", help="denoise, dejpeg or sr"),
            level: float = typer.Option(..., "--level", help="noise sigma (0-255), JPEG quality (1-100) or SR scale"),
            out: Path = typer.Option(..., "--out", help="folder for the PNG files (named like the clean images)"),
            dataset: str = typer.Option(None, "--dataset", help="dataset name (default: the profile's evaluation set for the task)"),
            profile: str = ProfileOpt, data_root: str = DataRootOpt):
    """Write the exact evaluation inputs the suite uses (the profile's seed and degradation options) as PNG files."""
    from bench.data.loading import load_dataset
    from bench.evaluation.inputs import write_inputs
    from bench.tasks.task import get_task
    from bench.training.profiles import load_profile

    prof, task_ = load_profile(profile), get_task(task)
    if task not in prof.tasks:
        raise HyperbenchError(f"profile {prof.name} has no {task} task, so it fixes no options for it", "pick a profile with that task (smoke, quick)")
    tcfg = prof.task_cfg(task)
    level = task_.check_level(level)
    name = dataset or tcfg["eval_dataset"]
    images = load_dataset(name, data_root, colour=task_.channels)
    written = write_inputs(task_, images, level, prof.seed, tcfg["options"], out)
    log(f"{len(written)} {task} inputs of {name} at level {level:g} (seed {prof.seed}, options {tcfg['options']}) in {out}")


@app.command("estimate-noise")
def estimate_noise(images: list[Path] = typer.Argument(..., help="image files (RGB; gray ones are replicated to 3 channels)"),
                   weights: Path = typer.Option(None, "--weights", help="official noise_detect.pth (default: found next to the data root or in ../shared)"),
                   crops: int = typer.Option(8, "--crops", help="number of seeded 128x128 crops averaged per image")):
    """Estimate the AWGN sigma (0-255) of images with HyperRes' NoiseNet."""
    import numpy as np
    import torch

    from bench.data.images import read_image, to_tensor
    from bench.models.noisenet_official import load_official

    model = load_official(weights, crops=crops)
    for path in images:
        pixels = read_image(path, mode="RGB")
        with torch.no_grad():
            sigma = float(model.estimate(to_tensor(np.ascontiguousarray(pixels))))
        console.print(f"{path}: sigma {sigma:.2f}")


def main():
    keep_freed_memory()  # whole-image forwards otherwise page-fault every feature map in again (bench/common/allocator.py)
    try:
        app(standalone_mode=True)
    except HyperbenchError as exc:
        # messages are plain text: "[...]" in them (levels, paths) must not be read as rich markup
        console.print(Text.assemble(("error: ", "bold red"), exc.problem))
        if exc.fix:
            console.print(Text.assemble(("  fix: ", "bold"), exc.fix))
        sys.exit(2)


if __name__ == "__main__":
    main()
