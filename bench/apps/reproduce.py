"""The one data flow: profile -> runs -> training -> evaluation -> tidy results -> tables."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.apps.evaluate_entries import deterministic, evaluate_task, evaluation_environments  # noqa: F401 (imported from here too)
from bench.common.errors import HyperbenchError
from bench.data.input_cache import set_sha256
from bench.data.loading import SKIMAGE_EVAL, SKIMAGE_TRAIN, resolve_data_root
from bench.evaluation import evaluate as ev
from bench.evaluation.results import environment, write_rows
from bench.metrics.iqa import check_profile_metrics, profile_specs, pyiqa_version
from bench.tasks.task import get_task
from bench.training.distributed import device, emulated_bf16_warning
from bench.training.loop import check_train_settings
from bench.training.profiles import Entry, Profile
from bench.training.runs import RunDir
from bench.training.trainer import train_run
from bench.weights.profile_import import profile_entries


@dataclass
class Paths:
    runs: Path = Path("results/runs")
    results: Path = Path("results")
    tables: Path = Path("paper_tables/generated")
    weights: Path | None = None  # official weight files (profiles with `weights:`); None: $HYPERBENCH_WEIGHTS or ./weights

    def results_file(self, profile: str) -> Path:
        return self.results / profile / "results.csv"

    def eval_dir(self) -> Path:
        """Per-image metrics, one CSV per (task, entry) keyed by content: profiles that share a trained entry
        and its evaluation settings share its evaluation, and a new entry is the only one evaluated."""
        return self.results / "per_image"

    def tables_dir(self, profile: str) -> Path:
        return self.tables / profile

    def grid_dir(self) -> Path:
        """Grid job logs (submitit) and the job recorded for each run id."""
        return self.results / "grid"

    def inputs_dir(self) -> Path:
        """Degraded evaluation inputs (keyed by dataset, task, options and seed); git-ignored with per_image/."""
        return self.eval_dir() / "inputs"


def data_source(dataset: str) -> str:
    if dataset == "skimage-eval":
        return "scikit-image sample images (" + ", ".join(SKIMAGE_EVAL) + "), not the paper's test set"
    if dataset == "skimage-train":
        return "scikit-image sample images (" + ", ".join(SKIMAGE_TRAIN) + "), not the paper's training set"
    return f"{dataset} (sha256-verified)"


def train_all(entries: list[Entry], paths: Paths, data_root=None, log=print, grid=None) -> list:
    """Train every unfinished run here, or submit them as jobs (`grid`: bench.training.grid_options.GridOptions). Returns the runs left unfinished."""
    resolve_data_root(data_root)  # a wrong --data-root fails before anything is written
    for entry in entries:
        if entry.weights:  # official weights: imported, never trained (bench.weights.profile_import)
            continue
        if not entry.runs or not all(run.levels for run in entry.runs):
            raise HyperbenchError(
                f"task {entry.task} of the profile gives {entry.model} no levels to train at",
                "list train_levels (jointly trained models) and bank_levels (per-level networks) under the task in the profile",
            )
    runs = [run for entry in entries if not entry.weights for run in entry.runs]  # imported runs are finished
    for run in runs:  # bad settings fail before any run folder is written
        check_train_settings(run.config["train"], f"profile settings of {run.model} ({run.task})")
        get_task(run.task).check_options(run.config["options"], run.levels[0])
    todo = [run for run in runs if not RunDir(paths.runs, run).is_done]
    log(f"{len(runs)} runs, {len(runs) - len(todo)} already finished, {len(todo)} to train")
    if on_grid(grid):
        from bench.training.grid import train_on_grid

        resources = {run.run_id: e.grid for e in entries for run in e.runs if e.grid}  # an entry's own (models.X.grid)
        return train_on_grid(todo, paths.runs, paths.grid_dir(), grid, data_root, log, resources)
    warning = emulated_bf16_warning([run.config for run in todo], device())
    if warning:
        log(f"warning: {warning}")
    seeds = {e.model: {x.seed for x in entries if x.model == e.model} for e in entries}
    # the table name (hyperres-1block), not the architecture, and the seed where an entry trains several
    names = {run.run_id: e.model + (f" seed {e.seed}" if len(seeds[e.model]) > 1 else "") for e in entries for run in e.runs}
    for i, run in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] train {names[run.run_id]} {run.task} levels {run.levels} -> {paths.runs / run.run_id}")
        train_run(RunDir(paths.runs, run), data_root)
    return []


def tidy_rows(profile: Profile, task_name: str, entries: list[Entry], per_image: pd.DataFrame, runs_dir=None, envs=None) -> list[dict]:
    """One row per entry, training seed, level and metric (the degraded input's seed is the evaluation seed); with
    `runs_dir`, each row records its runs' training threads (a grid job's differ from the evaluating process's);
    `envs` ((model, seed) -> environment): where its rows were evaluated, when not in this process."""
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    run_ids = {e.key: "+".join(r.run_id for r in e.runs) for e in entries}
    trained = {e.key: _train_threads(e, runs_dir) for e in entries} if runs_dir is not None else {}
    env = environment()
    rows = []
    inputs = {  # one checksum of the input set per level: which inputs every number of that level was computed on
        level: set_sha256(dict(zip(group["image"], group["input_sha256"])))
        for level, group in per_image[per_image.model == ev.INPUT].groupby("level")
    }
    if "seed" not in per_image:  # rows of one seed per entry, as evaluate() gives them: each entry's own seed
        seeds = {e.model: e.seed for e in entries}
        per_image = per_image.assign(seed=[seeds.get(m, profile.seed) for m in per_image.model])
    specs = {"psnr": task.metric.key(), "ssim": task.metric.key()}
    extra = [m for m in profile_specs(profile, task) if m.name in per_image]
    specs |= {m.name: m.key() for m in extra}
    # pyiqa's version goes with its rows' versions, never into the spec key (a pyiqa upgrade must not unmatch every row)
    pyiqa = f"; pyiqa {pyiqa_version()}" if extra else ""
    grouped = per_image.groupby(["model", "seed", "level"], sort=True)
    for (model, seed, level), group in grouped:
        where = {**env, **(envs or {}).get((model, seed), {})}
        versions = {m.name: where["versions"] + pyiqa for m in extra}
        for metric, spec in specs.items():
            rows.append({
                "run_id": run_ids.get((model, seed), ""), "profile": profile.name, "model": model, "task": task_name,
                "dataset": tcfg["eval_dataset"], "level": level, "input_level": group["input_level"].iloc[0],
                "metric": metric, "value": group[metric].mean(), "metric_spec": spec,
                "seed": int(seed), "n_images": len(group), "data_source": data_source(tcfg["eval_dataset"]),
                **where, "versions": versions.get(metric, where["versions"]), "inputs_sha256": inputs.get(level, ""),
                "train_threads": trained.get((model, seed), ""),
            })
    return rows


def _train_threads(entry: Entry, runs_dir) -> str:
    """The torch threads each run of an entry trained with ("4", or "2/4" for a bank trained by jobs of different sizes)."""
    found = [RunDir(runs_dir, run).summary().get("torch_threads") for run in entry.runs]
    return "/".join(dict.fromkeys(str(t) for t in found if t is not None))


def on_grid(grid) -> bool:
    """Are runs and evaluations executed as grid jobs (`grid`: GridOptions, None: here)?"""
    return grid is not None and grid.executor != "none"


def stages(profile: Profile, entries: list[Entry], grid=None) -> list[list[Entry]]:
    """The entries in the order reproduce finishes them: the profile's `first:` entries, whose tables are written
    as soon as they are done, then all. Grid jobs are submitted in one go (a cluster runs them side by side)."""
    first = [e for e in entries if e.model in profile.first]
    if not first or len(first) == len(entries) or on_grid(grid):
        return [entries]
    return [first, entries]


def reproduce(profile: Profile, paths: Paths, tasks=None, models=None, data_root=None, log=print, grid=None) -> dict:
    """Train what is missing (here, or as grid jobs), evaluate, store tidy results and write the tables. Returns output
    paths and the runs still unfinished: entries with an unfinished run are reported as missing, the rest are gathered."""
    from bench.reports.budget import write_budget_reports
    from bench.reports.claims import write_claims
    from bench.reports.tables import write_reports
    from bench.tuning.tune import tune_profile, tune_settings

    deterministic()
    t0 = time.time()
    tuning = tune_settings(profile) if profile.tune else None  # a bad tune section fails before any training
    check_profile_metrics(profile)  # pyiqa metrics: installed, known, weight files present, before any training
    entries, absent = profile_entries(profile, paths, tasks, models, log)  # official weights imported, absent ones listed
    steps = stages(profile, entries, grid)
    unevaluated: list[Entry] = []  # grid evaluation jobs not done yet
    for n, stage in enumerate(steps, 1):
        names = ", ".join(dict.fromkeys(e.model for e in stage))  # an entry's seeds once
        if len(steps) > 1:
            log(f"stage {n}/{len(steps)}: {names}")
        unfinished = train_all(stage, paths, data_root, log, grid)
        pending = {run.run_id for run in unfinished}
        finished = [e for e in stage if not any(run.run_id in pending for run in e.runs)]
        if pending:
            log(f"{len(pending)} runs not finished: {len(stage) - len(finished)} entries reported as missing; "
                "run the same command again to gather them once their jobs are done")
        if on_grid(grid):  # each entry's evaluation a job of its own, on the training device; gathered here
            from bench.apps.grid_eval import evaluate_on_grid

            stored = evaluate_on_grid(profile, stage, paths, grid, data_root, log)
            unevaluated += [e for e in finished if e not in stored]
            if len(stored) < len(finished):
                log(f"{len(finished) - len(stored)} entries not evaluated yet: reported as missing; run the same command again to gather them")
            finished = [e for e in finished if e in stored]
        for task_name in dict.fromkeys(e.task for e in finished):
            task_entries = [e for e in finished if e.task == task_name]
            per_image = evaluate_task(profile, task_name, task_entries, paths, data_root, log)
            write_rows(paths.results_file(profile.name), tidy_rows(profile, task_name, task_entries, per_image, paths.runs,
                                                                   evaluation_environments(profile, task_name, task_entries, paths)))
        written = write_reports(profile, paths, stage, absent, data_root)
        if n < len(steps):
            log(f"tables of {names} written after {time.time() - t0:.0f} s: {paths.tables_dir(profile.name)}")
    done = [e for e in entries if not any(r.run_id in pending for r in e.runs) and e not in unevaluated]
    waiting = bool(pending or unevaluated)  # grid jobs still to finish: what needs every entry waits for the next call
    if profile.budget and not waiting:  # the gap against training budget (snapshots along training)
        written += write_budget_reports(profile, paths, [e for e in entries if e.primary], data_root, log)
    if tuning is not None and waiting:
        log("input-level tuning waits until every run is trained and evaluated")
    elif tuning is not None:  # optimal input level (Fig 5), blind denoising, noise estimator accuracy
        written += tune_profile(profile, paths, tasks, models, data_root, log, tuning)
    claims_file, summary = write_claims(profile, paths, done)
    written.append(claims_file)
    log(summary)
    return {"results": paths.results_file(profile.name), "tables": written, "wall_s": time.time() - t0, "missing": unfinished,
            "unevaluated": unevaluated}
