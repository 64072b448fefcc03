"""The one data flow: profile -> runs -> training -> evaluation -> tidy results -> tables."""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from bench import evaluate as ev
from bench.checkpoint import atomic_write_text
from bench.data import SKIMAGE_EVAL, SKIMAGE_TRAIN, load_dataset, resolve_data_root
from bench.profiles import Entry, Profile, expand
from bench.results import environment, write_rows
from bench.runs import RunDir
from bench.tasks import get_task
from bench.train import train_run

EVAL_FORMAT = 1


@dataclass
class Paths:
    runs: Path = Path("results/runs")
    results: Path = Path("results")
    tables: Path = Path("paper_tables/generated")

    def results_file(self, profile: str) -> Path:
        return self.results / profile / "results.csv"

    def eval_dir(self, profile: str) -> Path:
        return self.results / profile / "per_image"

    def tables_dir(self, profile: str) -> Path:
        return self.tables / profile


def deterministic() -> None:
    """Same config and seed on CPU -> identical numbers (thread count is recorded with results)."""
    torch.use_deterministic_algorithms(True, warn_only=True)


def data_source(dataset: str) -> str:
    if dataset == "skimage-eval":
        return "scikit-image sample images (" + ", ".join(SKIMAGE_EVAL) + "), not the paper's test set"
    if dataset == "skimage-train":
        return "scikit-image sample images (" + ", ".join(SKIMAGE_TRAIN) + "), not the paper's training set"
    return f"{dataset} (sha256-verified)"


def train_all(entries: list[Entry], paths: Paths, data_root=None, log=print) -> None:
    resolve_data_root(data_root)  # a wrong --data-root fails before anything is written
    runs = [run for entry in entries for run in entry.runs]
    todo = [run for run in runs if not RunDir(paths.runs, run).is_done]
    log(f"{len(runs)} runs, {len(runs) - len(todo)} already finished, {len(todo)} to train")
    for i, run in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] train {run.model} {run.task} levels {run.levels} -> {paths.runs / run.run_id}")
        train_run(RunDir(paths.runs, run), data_root)


def _eval_key(profile: Profile, task: str, entries: list[Entry]) -> str:
    tcfg = profile.task_cfg(task)
    payload = {
        "format": EVAL_FORMAT, "runs": {e.model: [r.run_id for r in e.runs] for e in entries},
        "dataset": tcfg["eval_dataset"], "levels": tcfg["eval_levels"], "options": tcfg["options"],
        "seed": profile.seed, "metric": get_task(task).metric.key(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def evaluate_task(profile: Profile, task_name: str, entries: list[Entry], paths: Paths, data_root=None, log=print) -> pd.DataFrame:
    """Per-image metrics of all entries of one task (cached by a hash of everything they depend on)."""
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    cache = paths.eval_dir(profile.name) / f"{task_name}-{_eval_key(profile, task_name, entries)}.csv"
    if cache.exists():
        log(f"evaluation of {task_name} already done: {cache}")
        return pd.read_csv(cache)
    images = load_dataset(tcfg["eval_dataset"], data_root, colour=task.channels)
    models = {e.model: ev.assemble(e, paths.runs) for e in entries}
    t0 = time.time()
    rows = ev.evaluate(task, models, images, tcfg["eval_levels"], profile.seed, tcfg["options"], label=tcfg["eval_dataset"])
    frame = pd.DataFrame(rows)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)  # full precision: cached rows must equal fresh ones
    atomic_write_text(cache, buf.getvalue())
    log(f"evaluated {task_name} on {len(images)} images x {len(tcfg['eval_levels'])} levels in {time.time() - t0:.0f} s")
    return frame


def tidy_rows(profile: Profile, task_name: str, entries: list[Entry], per_image: pd.DataFrame) -> list[dict]:
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    run_ids = {e.model: "+".join(r.run_id for r in e.runs) for e in entries}
    env = environment()
    rows = []
    grouped = per_image.groupby(["model", "level"], sort=True)
    for (model, level), group in grouped:
        for metric in ("psnr", "ssim"):
            rows.append({
                "run_id": run_ids.get(model, ""), "profile": profile.name, "model": model, "task": task_name,
                "dataset": tcfg["eval_dataset"], "level": level, "input_level": group["input_level"].iloc[0],
                "metric": metric, "value": group[metric].mean(), "metric_spec": task.metric.key(),
                "seed": profile.seed, "n_images": len(group), "data_source": data_source(tcfg["eval_dataset"]), **env,
            })
    return rows


def reproduce(profile: Profile, paths: Paths, tasks=None, models=None, data_root=None, log=print) -> dict:
    """Train what is missing, evaluate, store tidy results and write the tables. Returns output paths."""
    from bench.report import write_reports

    deterministic()
    t0 = time.time()
    entries = expand(profile, tasks, models)
    train_all(entries, paths, data_root, log)
    for task_name in dict.fromkeys(e.task for e in entries):
        task_entries = [e for e in entries if e.task == task_name]
        per_image = evaluate_task(profile, task_name, task_entries, paths, data_root, log)
        write_rows(paths.results_file(profile.name), tidy_rows(profile, task_name, task_entries, per_image))
    written = write_reports(profile, paths, entries)
    return {"results": paths.results_file(profile.name), "tables": written, "wall_s": time.time() - t0}
