"""Training protocols: how an entry's run is trained, by name (`ModelCfg.protocol`).

A protocol is `fn(model, rundir, crops) -> summary` registered with `register_protocol`; model
modules and plugins register theirs when imported. `crops` (bench.training.crops) makes the run's
batches under its data protocol (`level_batches`, `drawn_batches`) and still offers `sample(n, rng)`,
clean crops for protocols that degrade their own. The built-in "joint" protocol is HyperRes'
official scheme: every step takes B clean crops, degrades each at all K training levels of the run,
runs the model on the K*B inputs with their levels and minimises the mean of the per-level L1 losses.
With one level it is ordinary single-level training (the per-level networks). Where the run's recipe
keeps the best validation checkpoint (HyperRes), the result is those weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench.common.checkpoint import save_tensors
from bench.common.errors import HyperbenchError
from bench.training import distributed
from bench.training.crops import Objective
from bench.training.loop import optimise
from bench.training.runs import RunDir
from bench.training.validation import BestValidation

PROTOCOLS: dict[str, Callable] = {}


def register_protocol(name: str):
    def wrap(fn):
        PROTOCOLS[name] = fn
        return fn

    return wrap


def get_protocol(name: str, model: str) -> Callable:
    """The registered protocol `name` (plugins register theirs when the catalogue imports them)."""
    if name not in PROTOCOLS:
        raise HyperbenchError(f"unknown training protocol {name!r} for {model}", f"known: {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


SNAPSHOTS = (0.25, 0.5, 1.0)  # fractions of a joint run's steps whose weights are kept (fig_budget_<task>)


def snapshot_steps(steps: int) -> set[int]:
    return {max(1, round(steps * f)) for f in SNAPSHOTS}


def snapshot_file(rundir: RunDir, step: int):
    """The weights after `step` updates (the last weights, whatever checkpoint selection keeps)."""
    return rundir.path / f"snapshot-{step:07d}.safetensors"


@register_protocol("joint")
def train_joint(model, rundir: RunDir, crops) -> dict:
    run = rundir.run.config
    train = run["train"]
    place = distributed.Placement.for_run(run)  # device, the run's gpu flags; HyperRes batches its K levels on CUDA
    net = place.prepare(model)

    def loss_fn(batch):
        x, y, lv = place.batch(*batch, len(run["levels"]))  # this process's crops when data-parallel
        with place.autocast():
            if hasattr(model, "training_loss"):  # a model with its own objective (HINet: PSNR loss on both stages)
                return model.training_loss(x, y, lv)
            return torch.nn.functional.l1_loss(net(x, lv), y)  # equal-size levels: mean of per-level L1

    best = BestValidation(rundir, len(crops.images), rundir.data_root) if train.get("select") == "best_validation" else None
    snapshots = snapshot_steps(train["steps"])

    def after_step(step):
        if step in snapshots and distributed.is_main():  # the budget figure's weights along training
            save_tensors(snapshot_file(rundir, step), model.state_dict(), {"run_id": rundir.run.run_id, "step": step})
        if best:
            best.after_step(model, step)

    objective = Objective(crops.level_batches(run["levels"]), loss_fn)
    final = optimise(model, model.parameters(), objective, train["steps"], train, rundir, "joint", run["seed"], after_step=after_step)
    return {"final_loss": final, "steps": train["steps"], **(best.restore_best(model) if best else {})}
