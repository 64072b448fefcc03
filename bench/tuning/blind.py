"""Blind denoising: the noise estimator picks the level, the adaptive model restores with it.

For every image and true sigma the noisy input is made exactly as the evaluation makes it (seeded
from image, level and seed; the profile's clip/quantise options), the estimator's sigma (clamped to
the task's valid range) is turned into the model's control with `control_for`, and the PSNR is
compared with the one at the true sigma. The estimator is the official NoiseNet when its weights
are on the machine, otherwise one trained here by the "noisenet" protocol (the tables say which).
"""

from __future__ import annotations

import numpy as np
import torch

from bench.common.errors import HyperbenchError
from bench.common.progress import progress_bar
from bench.data.images import modcrop, to_tensor, to_uint8
from bench.evaluation.evaluate import load_trained
from bench.evaluation.inputs import degraded_input
from bench.metrics.quality import psnr
from bench.tasks.task import get_task
from bench.training.loop import check_train_settings
from bench.training.runs import RUN_FORMAT, Run
from bench.training.trainer import train_run

BLIND_KEYS = {"images", "levels", "crops", "tolerance"}
ESTIMATOR_KEYS = {"weights", "train_dataset", "steps", "batch", "lr", "lr_milestones", "lr_gamma", "checkpoint_every"}
ESTIMATOR_DEFAULTS = {"weights": "official", "steps": 300, "batch": 8, "lr": 1.0e-3, "lr_milestones": [], "lr_gamma": 0.1, "checkpoint_every": 100}
SIGMA_RANGE = [0.0, 100.0]  # the official estimator's training range (integer sigma, uniform)
TRAIN_KEYS = ("steps", "batch", "lr", "lr_milestones", "lr_gamma", "checkpoint_every")
TRAIN_NOISE = {"clip": True, "quantise": "none"}  # the official estimator's training data convention


def check_blind_section(settings, where: str) -> None:
    unknown = set(settings.blind) - BLIND_KEYS
    if unknown:
        raise HyperbenchError(f"{where}: unknown blind keys {sorted(unknown)}", f"allowed: {sorted(BLIND_KEYS)}")
    unknown = set(settings.estimator) - ESTIMATOR_KEYS
    if unknown:
        raise HyperbenchError(f"{where}: unknown estimator keys {sorted(unknown)}", f"allowed: {sorted(ESTIMATOR_KEYS)}")
    if settings.estimator.get("weights", "official") not in ("official", "train"):
        raise HyperbenchError(f"{where}: estimator weights must be 'official' or 'train'", "official: the released noise_detect.pth (trained here when absent)")
    task = get_task("denoise")
    for v in settings.blind.get("levels", []):
        task.check_level(v)
    images, crops, tol = settings.blind.get("images"), settings.blind.get("crops", 8), settings.blind.get("tolerance", 2)
    if images is not None and (not isinstance(images, int) or images < 1):
        raise HyperbenchError(f"{where}: blind images must be a positive integer or null, got {images!r}", "e.g. images: 24")
    if not isinstance(crops, int) or crops < 1:
        raise HyperbenchError(f"{where}: blind crops must be a positive integer, got {crops!r}", "e.g. crops: 8")
    if not isinstance(tol, (int, float)) or tol <= 0:
        raise HyperbenchError(f"{where}: blind tolerance must be a positive number (sigma units), got {tol!r}", "e.g. tolerance: 2")
    est = {**ESTIMATOR_DEFAULTS, **settings.estimator}
    check_train_settings({**{k: est[k] for k in TRAIN_KEYS}, "crop": 128}, f"{where}: estimator")


def estimator_run(profile, settings) -> Run:
    """The training run of a locally trained estimator (identified by its config hash, like any run)."""
    est = {**ESTIMATOR_DEFAULTS, **settings.estimator}
    train = {k: est[k] for k in TRAIN_KEYS}
    dataset = est.get("train_dataset") or profile.task_cfg("denoise")["train_dataset"]
    return Run({
        "format": RUN_FORMAT, "model": "noisenet", "model_kwargs": {}, "task": "denoise", "levels": SIGMA_RANGE,
        "protocol": "noisenet", "train": {**train, "crop": 128}, "train_dataset": dataset, "options": TRAIN_NOISE, "seed": profile.seed,
    })


def estimator_for(profile, settings, paths, data_root=None, log=print):
    """(estimator, description, identity): the official weights, or a trained one (trained if missing)."""
    from bench.models import noisenet_official
    from bench.training.runs import RunDir

    crops = int(settings.blind.get("crops", 8))
    official = noisenet_official.official_weights_path(data_root)
    if settings.estimator.get("weights", "official") == "official" and official is not None:
        model = noisenet_official.load_official(official, crops=crops, seed=profile.seed)
        text = f"official NoiseNet weights (ifryed/HyperRes pre_trained/noise_detect.pth, sha256 {noisenet_official.OFFICIAL_SHA256[:12]}...)"
        return model, text + f", mean of {crops} seeded 128x128 crops", "official:" + noisenet_official.OFFICIAL_SHA256
    run = estimator_run(profile, settings)
    rundir = RunDir(paths.runs, run)
    if not rundir.is_done:
        why = "estimator weights: train" if official is not None else "the official weights are not on this machine"
        log(f"training a noise estimator ({why}) -> {rundir.path}")
        train_run(rundir, data_root)
    model = load_trained(rundir)
    model.crops, model.seed = crops, profile.seed
    steps, dataset = run.config["train"]["steps"], run.config["train_dataset"]
    text = f"NoiseNet trained here (run {run.run_id}: {steps} steps of batch {run.config['train']['batch']} on {dataset}; NOT the official weights)"
    return model, text + f", mean of {crops} seeded 128x128 crops", "run:" + run.run_id


def blind_levels(settings) -> list[float]:
    return [float(v) for v in settings.blind.get("levels", get_task("denoise").table_levels)]


@torch.no_grad()
def noise_estimates(estimator, images, levels, seed: int, options: dict, batch: int = 64) -> dict:
    """(image name, level) -> the estimator's sigma for the evaluation's noisy input. Crops of several
    images and levels share a forward pass (`batch` crops), which is several times cheaper per crop on CPU."""
    task = get_task("denoise")
    owners, pending, values = [], [], []

    def flush():
        if pending:
            values.extend(estimator.forward_crops(torch.cat(pending)).tolist())
            pending.clear()

    for image in images:
        for level in levels:
            crops = estimator.crops_of(to_tensor(degraded_input(task, image.pixels, image.name, level, seed, options)))
            owners += [(image.name, float(level))] * len(crops)
            pending.append(crops)
            if sum(len(c) for c in pending) >= batch:
                flush()
    flush()
    sums: dict = {}
    for owner, value in zip(owners, values):
        sums.setdefault(owner, []).append(value)
    return {owner: float(np.mean(v)) for owner, v in sums.items()}


def accuracy_rows(estimator, images, levels, seed: int, options: dict) -> list[dict]:
    """Per image and level: the true sigma and the estimate (the estimator's accuracy alone)."""
    estimates = noise_estimates(estimator, images, levels, seed, options)
    return [{"model": "", "image": name, "level": level, "estimate": est} for (name, level), est in estimates.items()]


@torch.no_grad()
def blind_rows(models: dict, estimator, images, levels, seed: int, options: dict, label: str = "") -> list[dict]:
    """Per image, level and model: the estimate and PSNR at the true and at the estimated level."""
    task = get_task("denoise")
    estimates = noise_estimates(estimator, images, levels, seed, options)
    rows = []
    with progress_bar(f"blind {label}", total=len(images), show_loss=False) as bar:
        for i, image in enumerate(images):
            clean = modcrop(image.pixels, 2)
            for level in levels:
                x = to_tensor(degraded_input(task, image.pixels, image.name, level, seed, options))
                est = estimates[(image.name, float(level))]
                used = float(np.clip(est, *task.valid_range))
                base = {"image": image.name, "level": float(level), "estimate": est, "input_level": used,
                        "psnr_input": psnr(to_uint8(x), clean, task.metric)}
                for name, model in models.items():
                    true_out = model.forward_control(x, model.control_for(float(level)))
                    est_out = model.forward_control(x, model.control_for(used))
                    rows.append({"model": name, **base, "psnr_true": psnr(to_uint8(true_out), clean, task.metric),
                                 "psnr_estimated": psnr(to_uint8(est_out), clean, task.metric)})
            bar.update(i + 1)
    return rows
