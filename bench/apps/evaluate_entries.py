"""Evaluation of trained entries on a task: per-image metrics stored per entry (bench.evaluation.results
per_image_file), computed only where missing, with the environment that computed them beside each file. Run by
reproduce here, or by an evaluation job on the grid (bench/apps/grid_eval.py)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd
import torch

from bench.common.atomic import atomic_write_text
from bench.common.errors import HyperbenchError
from bench.data.loading import Image, load_dataset
from bench.evaluation import evaluate as ev
from bench.evaluation.results import environment, per_image_file
from bench.metrics.iqa import profile_specs
from bench.tasks.task import Task, get_task
from bench.training import distributed
from bench.training.profiles import Entry, Profile


def deterministic() -> None:
    """Same config and seed on CPU -> identical numbers (thread count is recorded with results)."""
    torch.use_deterministic_algorithms(True, warn_only=True)


def check_eval_images(task: Task, images: list[Image], dataset: str) -> None:
    """Images the networks or metrics cannot take fail here with their name, before torch sees them."""
    spec = task.metric
    smallest = max(4, spec.ssim_window + 2 * spec.crop_border)  # stride-2 head; SSIM needs one full window
    for image in images:
        shape = image.pixels.shape
        want_rgb = task.channels == "rgb"
        if (len(shape) == 3 and shape[2] == 3) != want_rgb or len(shape) not in (2, 3):
            raise HyperbenchError(
                f"image {image.name} of {dataset} has shape {shape}, but {task.name} networks take "
                + ("RGB (H x W x 3)" if want_rgb else "single-channel luma (H x W)") + " images",
                "load the dataset with bench.data.load_dataset(name, colour=task.channels), which converts gray <-> RGB",
            )
        h, w = shape[0] - shape[0] % 2, shape[1] - shape[1] % 2  # evaluation modcrops to 2
        if min(h, w) < smallest:
            raise HyperbenchError(
                f"image {image.name} of {dataset} is {shape[0]}x{shape[1]}; evaluating {task.name} needs at least "
                f"{smallest}x{smallest} pixels (SSIM window {spec.ssim_window}, crop border {spec.crop_border})",
                f"remove the image from {dataset} or evaluate on another dataset",
            )


def evaluate_task(profile: Profile, task_name: str, entries: list[Entry], paths, data_root=None, log=print) -> pd.DataFrame:
    """Per-image metrics of all entries of one task (a `seed` column tells the training seeds of one entry apart); each
    entry's rows are cached on their own, PSNR/SSIM in one file and each pyiqa metric of the profile in its own, so only
    what is not stored yet is computed (the forward passes are redone for an entry that lacks a metric)."""
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    extra = profile_specs(profile, task)
    keys = [e.key for e in entries] + [(ev.INPUT, profile.seed)]
    by_key = {e.key: e for e in entries}
    files = {(key, m): per_image_file(paths.eval_dir(), profile, task_name, by_key.get(key), m) for key in keys for m in [None, *extra]}
    lacking = {key: [m for m in [None, *extra] if not files[(key, m)].exists()] for key in keys}
    todo = [e for e in entries if lacking[e.key]]
    if not any(lacking.values()):
        log(f"evaluation of {task_name} already done ({len(entries)} entries, {paths.eval_dir()})")
        return _stored(files, keys, extra)
    if not tcfg["eval_levels"]:
        raise HyperbenchError(f"task {task_name} of profile {profile.name} has no eval_levels", "list eval_levels under the task in the profile")
    task.check_options(tcfg["options"], tcfg["eval_levels"][0])
    images = load_dataset(tcfg["eval_dataset"], data_root, colour=task.channels)
    check_eval_images(task, images, tcfg["eval_dataset"])
    labels = {_label(e.key): e.key for e in todo}
    labels[ev.INPUT] = (ev.INPUT, profile.seed)
    models = {_label(e.key): ev.assemble(e, paths.runs) for e in todo}
    scored = [m for m in extra if any(m in lacking[key] for key in keys)]
    t0 = time.time()
    rows = ev.evaluate(task, models, images, tcfg["eval_levels"], profile.seed, tcfg["options"], label=tcfg["eval_dataset"],
                       input_cache=paths.inputs_dir(), dataset=tcfg["eval_dataset"], device=distributed.device(), extra=scored)
    for label, group in pd.DataFrame(rows).groupby("model", sort=False):
        model, seed = labels[label]
        group = group.assign(model=model, seed=seed)
        for metric in lacking[(model, seed)]:  # what is stored already stays as it is
            columns = [c for c in group.columns if c not in [m.name for m in extra]] if metric is None else \
                ["model", "image", "level", "input_level", metric.name, "input_sha256", "seed"]
            buf = io.StringIO()
            group[columns].to_csv(buf, index=False)  # full precision: cached rows must equal fresh ones
            atomic_write_text(files[((model, seed), metric)], buf.getvalue())
        if None in lacking[(model, seed)]:  # what evaluated them (a grid job's threads and device, not the gatherer's)
            atomic_write_text(env_file(files[((model, seed), None)]), json.dumps(environment(), indent=2))
    log(f"evaluated {task_name}: {len(todo)} of {len(entries)} entries on {len(images)} images x {len(tcfg['eval_levels'])} levels"
        + (f" ({', '.join(m.name for m in scored)} too)" if scored else "") + f" in {time.time() - t0:.0f} s")
    return _stored(files, keys, extra)


def env_file(per_image: Path) -> Path:
    """The environment that computed a per-image file, beside it."""
    return per_image.with_suffix(".env.json")


def evaluation_environments(profile: Profile, task_name: str, entries: list[Entry], paths) -> dict:
    """(model, seed) -> the environment its stored per-image rows were computed in (none for rows stored before)."""
    found = {}
    for entry in [*entries, None]:
        path = env_file(per_image_file(paths.eval_dir(), profile, task_name, entry))
        if path.exists():
            found[entry.key if entry else (ev.INPUT, profile.seed)] = json.loads(path.read_text())
    return found


def _stored(files: dict, keys: list, extra: list) -> pd.DataFrame:
    """The stored per-image rows of every key, each pyiqa metric a column beside PSNR/SSIM."""
    frames = []
    for key in keys:
        frame = _with_seed(pd.read_csv(files[(key, None)], dtype={"image": str}), key[1])  # "01" stays a string
        for metric in extra:
            scores = pd.read_csv(files[(key, metric)], dtype={"image": str})[["image", "level", metric.name]]
            frame = frame.merge(scores, on=["image", "level"], how="left", validate="one_to_one")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _label(key: tuple[str, int]) -> str:
    """A model's name inside one evaluation call, unique across the training seeds of an entry."""
    return f"{key[0]}#seed{key[1]}" if key[0] != ev.INPUT else ev.INPUT


def _with_seed(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Per-image rows stored before seeds were recorded in them carry their entry's seed."""
    return frame if "seed" in frame.columns else frame.assign(seed=seed)
