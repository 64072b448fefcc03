"""The plan of a reproduction before it runs (`hyperbench reproduce --dry-run`): every run with its
entry, task, levels, steps, batch and crop, whether it is already trained, and its training cost.

Cost: the forward FLOPs of one crop are counted with torch's FlopCounterMode on two small inputs and
fitted as a + b * pixels (the weight generation of a hypernetwork is the constant part), then scaled
to the run's crop. A training step is taken as 3 forwards (the backward pass costs about two), times
the crops of a step (batch x levels for jointly trained runs), times the steps of every stage.
Best-validation passes (HyperRes in the paper profile) are not counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from bench.models.catalog import create_model, model_cfg
from bench.tasks.task import get_task
from bench.training.loop import total_steps
from bench.training.profiles import Entry
from bench.training.runs import RunDir

PROBE_SIDES = (32, 64)  # the smallest sides every entry takes (HINet pads to 32)
BACKWARD_FACTOR = 3  # forward + backward of a step, in forwards


@dataclass(frozen=True)
class PlannedRun:
    entry: str
    run_id: str
    task: str
    levels: tuple[float, ...]
    protocol: str
    steps: int  # all stages together
    batch: int
    crop: int
    crops_per_step: int
    train_flops: float
    done: bool


@cache
def forward_flops_fit(arch: str, kwargs_json: str, level: float) -> tuple[float, float]:
    """(constant, per pixel) forward FLOPs of one image, from two probe sizes (kwargs as JSON: a cache key)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(arch, **json.loads(kwargs_json)).eval()
    counts = []
    for side in PROBE_SIDES:
        x = torch.zeros(1, model.in_channels, side, side)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, torch.tensor([float(level)]))
        counts.append(counter.get_total_flops())
    (s0, s1), (f0, f1) = PROBE_SIDES, counts
    per_pixel = (f1 - f0) / (s1 * s1 - s0 * s0)
    return f0 - per_pixel * s0 * s0, per_pixel


def plan(entries: list[Entry], runs_dir) -> list[PlannedRun]:
    """Every run of the entries, in order; a bank contributes one run per level."""
    planned = []
    for entry in entries:
        for run in entry.runs:
            config, train = run.config, run.config["train"]
            const, per_pixel = forward_flops_fit(config["model"], json.dumps(config["model_kwargs"], sort_keys=True), float(config["levels"][0]))
            crops = train["batch"] * (len(config["levels"]) if config["protocol"] == "joint" else 1)
            steps = total_steps(train, model_cfg(config["model"]).train_stages)
            flops = BACKWARD_FACTOR * (const + per_pixel * train["crop"] ** 2) * crops * steps
            planned.append(PlannedRun(entry.model, run.run_id, run.task, tuple(run.levels), config["protocol"], steps,
                                      train["batch"], train["crop"], crops, flops, RunDir(runs_dir, run).is_done))
    return planned


def describe_levels(task: str, levels) -> str:
    unit = {"denoise": "σ", "dejpeg": "q", "sr": "x"}[get_task(task).name]
    return ",".join(f"{unit}{v:g}" for v in levels)
