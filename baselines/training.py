"""Training pieces shared by the baselines (their control interface is bench.models.control).

* One-level training objectives and per-patch level draws (blind / continuous-level training).
* Multi-stage training (AdaFM, CFSNet, DNI): each stage resumes on its own, finished stages are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from torch import nn

from bench.common.checkpoint import read_metadata
from bench.training.crops import Objective
from bench.training.distributed import Placement
from bench.training.loop import optimise, stage_train, total_steps


def placed(model: nn.Module, run: dict) -> Placement:
    """Move the model where the run trains (a GPU when there is one, as the joint protocol does). The
    placement's batch() moves a batch there (and gives each data-parallel rank its crops), autocast()
    applies the run's bf16 flag."""
    place = Placement.for_run(run)
    place.prepare(model)
    return place


def fixed_level_l1(forward: Callable, crops, run: dict, level: float, place: Placement) -> Objective:
    """One-level training: L1 between forward(degraded crops) and the clean crops."""

    def loss_fn(batch):
        x, y, _ = place.batch(*batch, 1)
        with place.autocast():
            return nn.functional.l1_loss(forward(x), y)

    return Objective(crops.level_batches([level]), loss_fn)


def draw_levels(rng, n: int, first: float, last: float, integer: bool, distribution: dict | None = None) -> list[float]:
    """n training levels over [first, last]: uniform (integers for JPEG quality), or where the recipe
    says so (CResMD) first + c * (last - first) with c ~ Beta(a, b), rounded as the official labels are."""
    if distribution and distribution.get("kind") == "beta":
        c = rng.beta(float(distribution["a"]), float(distribution["b"]), size=n)
        levels = float(first) + c * (float(last) - float(first))
        return [float(v) for v in (np.round(levels) if distribution.get("round") or integer else levels)]
    lo, hi = sorted((float(first), float(last)))
    if integer:
        return [float(v) for v in rng.integers(int(lo), int(hi) + 1, size=n)]
    return [float(v) for v in rng.uniform(lo, hi, size=n)]


def control_endpoints(run: dict) -> tuple[float, float]:
    """(level at control 0, level at control 1) of a run: its recipe's mapping, else its first and last level."""
    start, end = run.get("control") or (run["levels"][0], run["levels"][-1])
    return float(start), float(end)


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
    return read_metadata(rundir.state_file).get("stage")


def _logged_loss(rundir, stage: str) -> float | None:
    loss = None
    if rundir.log_file.exists():
        for line in rundir.log_file.read_text().splitlines():
            record = json.loads(line)
            if record.get("stage") == stage:
                loss = record.get("loss_ema")
    return loss


def train_stages(model: nn.Module, rundir, stages: list[tuple[str, Callable]]) -> dict:
    """Run `stages` = [(name, setup)] in order, each for its length (train["stage_steps"], the official
    lengths, else train["steps"] each); `setup()` prepares the model
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
            train = stage_train(run["train"], name)
            losses[name] = optimise(model, params, loss_fn, train["steps"], train, rundir, name, run["seed"])
    finally:
        model.requires_grad_(True)
    return {"final_loss": losses[names[-1]], "steps": total_steps(run["train"], len(stages)), "stage_losses": losses}
