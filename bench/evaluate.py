"""Evaluation: every table entry at every evaluation level on every image, with deterministic
degraded inputs (noise seeded from image name, level and seed) shared by all entries."""

from __future__ import annotations

import numpy as np
import torch

from bench.degradations import seeded_rng
from bench.images import modcrop, to_tensor, to_uint8
from bench.metrics import psnr, ssim
from bench.profiles import Entry
from bench.progress import progress_bar
from bench.registry import create_model
from bench.runs import RunDir

INPUT = "degraded-input"  # pseudo-entry: the metrics of the network input itself


def assemble(entry: Entry, runs_dir) -> torch.nn.Module:
    """The trained model of an entry: one run, or a bank filled member by member from its runs."""
    if len(entry.runs) == 1 and "levels" not in entry.model_kwargs:
        return RunDir(runs_dir, entry.runs[0]).load_model()
    levels = [run.levels[0] for run in entry.runs]
    kwargs = {k: v for k, v in entry.model_kwargs.items() if k != "levels"}
    bank = create_model(entry.model, levels=levels, **kwargs)
    for run in entry.runs:
        member = RunDir(runs_dir, run).load_model()
        for key, sub in member.members.items():
            bank.members[key].load_state_dict(sub.state_dict())
    return bank.eval()


def input_level(model, level: float) -> float:
    """The level the model is actually given: banks answer with their nearest trained level."""
    return float(model.nearest_level(level)) if hasattr(model, "nearest_level") else float(level)


@torch.no_grad()
def evaluate(task, models: dict, images, levels, seed: int, options: dict, label: str = "") -> list[dict]:
    """Per-image rows: model, image, level, input_level, psnr, ssim (degraded input included)."""
    spec = task.metric
    rows = []
    with progress_bar(f"eval {task.name} {label}", total=len(images) * len(levels), show_loss=False) as bar:
        for i, image in enumerate(images):
            clean = modcrop(image.pixels, 2)
            for j, level in enumerate(levels):
                degraded = task.degrade(clean, level, seeded_rng(image.name, f"{level:g}", seed), options)
                x = to_tensor(degraded)
                outputs = {INPUT: (to_uint8(x), np.nan)}
                for name, model in models.items():
                    lv = input_level(model, level)
                    outputs[name] = (to_uint8(model(x, lv)), lv)
                for name, (out, lv) in outputs.items():
                    rows.append({
                        "model": name, "image": image.name, "level": float(level), "input_level": lv,
                        "psnr": psnr(out, clean, spec), "ssim": ssim(out, clean, spec),
                    })
                bar.update(i * len(levels) + j + 1)
    return rows
