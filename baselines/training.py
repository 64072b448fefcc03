"""Training pieces shared by the baselines (their control interface is bench.models.control).

* Batches with one level per patch (blind / continuous-level training).
* Multi-stage training (AdaFM, CFSNet, DNI): each stage resumes on its own, finished stages are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import torch
from safetensors import safe_open
from torch import nn

from bench.tasks.task import get_task
from bench.training.distributed import Placement
from bench.training.loop import degraded_batch, optimise


def placed(model: nn.Module, run: dict) -> Placement:
    """Move the model where the run trains (a GPU when there is one, as the joint protocol does). The
    placement's batch() moves a batch there (and gives each data-parallel rank its crops), autocast()
    applies the run's bf16 flag."""
    place = Placement.for_run(run)
    place.prepare(model)
    return place


def per_patch_batch(patches, task, levels, rng, options):
    """Degrade patch i at levels[i] -> (inputs, targets, levels) tensors."""
    parts = [degraded_batch([p], task, [lv], rng, options) for p, lv in zip(patches, levels)]
    return tuple(torch.cat(t) for t in zip(*parts))


def fixed_level_l1(forward: Callable, sampler, run: dict, level: float, place: Placement) -> Callable:
    """loss_fn(rng) of one-level training: L1 between forward(degraded patches) and the clean patches."""
    task = get_task(run["task"])

    def loss_fn(rng):
        x, y, _ = place.batch(*degraded_batch(sampler.sample(run["train"]["batch"], rng), task, [level], rng, run["options"]), 1)
        with place.autocast():
            return nn.functional.l1_loss(forward(x), y)

    return loss_fn


def uniform_levels(rng, n: int, lo: float, hi: float, integer: bool) -> list[float]:
    """n levels uniform over [lo, hi]; integer tasks (JPEG quality) draw integers."""
    lo, hi = sorted((float(lo), float(hi)))
    if integer:
        return [float(v) for v in rng.integers(int(lo), int(hi) + 1, size=n)]
    return [float(v) for v in rng.uniform(lo, hi, size=n)]


def freeze_all_but(model: nn.Module, params) -> list[nn.Parameter]:
    """Only `params` receive gradients (saves the backward pass through frozen weights)."""
    params = list(params)
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return params


def _saved_stage(rundir) -> str | None:
    if not rundir.state_file.exists():
        return None
    with safe_open(str(rundir.state_file), framework="pt") as f:
        stage = (f.metadata() or {}).get("stage")
    return json.loads(stage) if stage else None


def _logged_loss(rundir, stage: str) -> float | None:
    loss = None
    if rundir.log_file.exists():
        for line in rundir.log_file.read_text().splitlines():
            record = json.loads(line)
            if record.get("stage") == stage:
                loss = record.get("loss_ema")
    return loss


def train_stages(model: nn.Module, rundir, stages: list[tuple[str, Callable]]) -> dict:
    """Run `stages` = [(name, setup)] in order, train["steps"] steps each; `setup()` prepares the model
    (freezing, re-initialising) and returns (params, loss_fn). After an interruption the stages before
    the saved one are skipped: the saved state holds the whole model, earlier stages included."""
    run = rundir.run.config
    names = [name for name, _ in stages]
    saved = _saved_stage(rundir)
    first = names.index(saved) if saved in names else 0
    losses = {name: _logged_loss(rundir, name) for name in names[:first]}
    try:
        for name, setup in stages[first:]:
            params, loss_fn = setup()
            losses[name] = optimise(model, params, loss_fn, run["train"]["steps"], run["train"], rundir, name, run["seed"])
    finally:
        model.requires_grad_(True)
    return {"final_loss": losses[names[-1]], "steps": run["train"]["steps"] * len(stages), "stage_losses": losses}
