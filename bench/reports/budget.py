"""The gap against budget (`fig_budget_<task>`): HyperRes and the per-level networks evaluated at a quarter,
half and all of their training steps (the weights each joint run keeps, bench.training.protocols.SNAPSHOTS)
on a fixed subset of the evaluation set at the paper's printed levels, plotted against training compute,
beside the paper's mean and the degraded input's. A reader sees whether the HyperRes - per-level gap
narrows as training grows and how far the numbers are from the paper's."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import pandas as pd

from bench.common.atomic import atomic_write_text
from bench.common.checkpoint import load_state_into, load_tensors
from bench.data.loading import load_dataset
from bench.evaluation import evaluate as ev
from bench.models.catalog import create_model
from bench.reports.figures import ENTRY_COLOURS, pyplot, save_figure
from bench.reports.published import applicable, published, published_value
from bench.tasks.task import get_task
from bench.training.plan import plan
from bench.training.profiles import Entry, Profile
from bench.training.protocols import SNAPSHOTS, snapshot_file
from bench.training.runs import RunDir

MODELS = ("hyperres", "perlevel")
DEFAULT_IMAGES = 10  # the fixed subset: the first images of the evaluation set, in its order


def _snapshot_model(entry: Entry, runs_dir, fraction: float):
    """The entry's network(s) after `fraction` of its steps; None when a run kept no such snapshot."""
    members = []
    for run in entry.runs:
        rundir = RunDir(runs_dir, run)
        path = snapshot_file(rundir, max(1, round(run.config["train"]["steps"] * fraction)))
        if not path.exists():
            return None
        model = create_model(run.model, **run.config["model_kwargs"])
        load_state_into(model, load_tensors(path)[0], str(path))
        members.append(model)
    if len(members) == 1 and "levels" not in entry.model_kwargs:
        return members[0].eval()
    bank = create_model(entry.arch, levels=[r.levels[0] for r in entry.runs], **{k: v for k, v in entry.model_kwargs.items() if k != "levels"})
    for member in members:
        for key, sub in member.members.items():
            bank.members[key].load_state_dict(sub.state_dict())
    return bank.eval()


def budget_rows(profile: Profile, paths, entries: list[Entry], task_name: str, images: int, data_root=None) -> pd.DataFrame:
    """Mean PSNR at the printed levels per (model, fraction of training), with the training FLOPs spent; cached
    under results/<profile>/budget/ by the runs and the subset."""
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    chosen = [e for e in entries if e.task == task_name and e.model in MODELS and e.runs and not e.weights]
    levels = [lv for lv in task.table_levels if lv in tcfg["eval_levels"]] or tcfg["eval_levels"]
    key = hashlib.sha256(repr((images, levels, [r.run_id for e in chosen for r in e.runs], SNAPSHOTS)).encode()).hexdigest()[:12]
    cache = paths.results / profile.name / "budget" / f"{task_name}-{key}.csv"
    if cache.exists():
        return pd.read_csv(cache)
    flops = {e.model: sum(p.train_flops for p in plan([e], paths.runs)) for e in chosen}
    subset = load_dataset(tcfg["eval_dataset"], data_root, colour=task.channels)[:images]
    rows = []
    for fraction in SNAPSHOTS:
        models = {e.model: m for e in chosen if (m := _snapshot_model(e, paths.runs, fraction)) is not None}
        if not models:
            continue
        per_image = pd.DataFrame(ev.evaluate(task, models, subset, levels, profile.seed, tcfg["options"], label=f"budget {fraction:g}",
                                             input_cache=paths.inputs_dir(), dataset=tcfg["eval_dataset"]))
        for model, group in per_image.groupby("model"):
            rows.append({"model": model, "fraction": fraction, "train_flops": flops.get(model, math.nan) * fraction,
                         "psnr": group.psnr.mean(), "images": group.image.nunique(), "levels": " ".join(f"{v:g}" for v in levels)})
    frame = pd.DataFrame(rows)
    if len(frame):
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        atomic_write_text(cache, buf.getvalue())
    return frame


def budget_figure(profile: Profile, task_name: str, frame: pd.DataFrame):
    plt = pyplot()
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for model in MODELS:
        sub = frame[frame.model == model].sort_values("fraction")
        if len(sub):
            ax.plot(sub.train_flops / 1e15, sub.psnr, marker="o", color=ENTRY_COLOURS[model], label=f"{model} (ours: ¼, ½, all steps)")
    inputs = frame[frame.model == ev.INPUT]
    if len(inputs):
        ax.axhline(inputs.psnr.iloc[0], color="tab:gray", ls=":", label="degraded input")
    pub, _ = applicable(published(), task_name, tcfg["eval_dataset"], task.metric.key())
    for model in MODELS:
        value = published_value(pub, task_name, model, "mean", "psnr")[0]
        if not math.isnan(value):
            ax.axhline(value, color=ENTRY_COLOURS[model], ls="--", alpha=0.6, label=f"{model} (paper, all {tcfg['eval_dataset']} images)")
    ax.set_xscale("log")
    ax.set_xlabel("training compute [PFLOP] (3 x forward FLOPs per step)")
    ax.set_ylabel("mean PSNR at the printed levels [dB]")
    ax.set_title(f"{task.paper_table} vs training budget — {task_name}, first {int(frame.images.max())} {tcfg['eval_dataset']} images", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig


def write_budget_reports(profile: Profile, paths, entries: list[Entry], data_root=None, log=print) -> list[Path]:
    images = int((profile.budget or {}).get("images", DEFAULT_IMAGES))
    written = []
    for task_name in dict.fromkeys(e.task for e in entries):
        frame = budget_rows(profile, paths, entries, task_name, images, data_root)
        if frame.empty or not frame.model.isin(MODELS).any():
            log(f"budget figure of {task_name} skipped: its runs kept no snapshots (trained before snapshots were kept)")
            continue
        written += save_figure(budget_figure(profile, task_name, frame), paths.tables_dir(profile.name) / f"fig_budget_{task_name}")
    return written
