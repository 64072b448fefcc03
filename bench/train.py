"""Training: the optimisation loop (resumable, deterministic) and the joint protocol.

Joint protocol (official HyperRes): every step takes B clean crops, degrades each at all K training
levels of the run, runs the model on the K*B inputs with their levels and minimises the mean of the
per-level L1 losses. With one level it is ordinary single-level training (the per-level networks).
Randomness of step s comes from a Generator seeded by (seed, stage, s), so a resumed run draws the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.checkpoint import load_tensors, save_tensors
from bench.data import PatchSampler, load_dataset
from bench.degradations import seeded_rng
from bench.errors import HyperbenchError
from bench.images import to_tensor
from bench.progress import progress_bar
from bench.registry import create_model
from bench.runs import RunDir
from bench.tasks import get_task

PROTOCOLS: dict[str, Callable] = {}


def register_protocol(name: str):
    def wrap(fn):
        PROTOCOLS[name] = fn
        return fn

    return wrap


def lr_at(step: int, train: dict) -> float:
    """Step schedule: lr * gamma ** (milestones passed), as MultiStepLR."""
    passed = sum(step >= m for m in train.get("lr_milestones", []))
    return train["lr"] * train.get("lr_gamma", 0.1) ** passed


def degraded_batch(patches, task, levels, rng, options):
    """Clean uint8 crops -> (inputs, targets, levels) tensors for all levels, level-major order."""
    inputs, targets, lv = [], [], []
    for level in levels:
        for p in patches:
            inputs.append(to_tensor(task.degrade(p, level, rng, options)))
            targets.append(to_tensor(p))
            lv.append(level)
    return torch.cat(inputs), torch.cat(targets), torch.tensor(lv, dtype=torch.float32)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {f"optim.{idx}.{k}": v for idx, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    return tensors, {"param_groups": sd["param_groups"]}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def optimise(model, params, loss_fn, steps: int, train: dict, rundir: RunDir, stage: str, seed: int) -> float:
    """Adam over `params` for `steps`; resumes from the stage's last checkpoint. Returns final loss."""
    opt = torch.optim.Adam(params, lr=train["lr"])
    start, loss_ema = 0, None
    if rundir.state_file.exists():
        tensors, meta = load_tensors(rundir.state_file)
        if meta.get("stage") == stage:
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            _restore_optimizer(opt, tensors, meta)
            start, loss_ema = meta["step"], meta.get("loss_ema")
    every = int(train.get("checkpoint_every", 0)) or steps
    model.train()
    label = f"{rundir.run.model} {rundir.run.task} {','.join(f'{v:g}' for v in rundir.run.levels)} [{stage}]"
    with progress_bar(label, total=steps, completed=start) as bar:
        for step in range(start, steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, train)
            rng = seeded_rng(seed, stage, step)
            loss = loss_fn(rng)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise HyperbenchError(
                    f"training loss became {value} at step {step} ({label})",
                    "lower the learning rate in the profile (train.lr) or check the data; the run was left unfinished",
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_ema = value if loss_ema is None else 0.98 * loss_ema + 0.02 * value
            bar.update(step + 1, loss=loss_ema)
            if (step + 1) % every == 0 or step + 1 == steps:
                tensors, meta = _optimizer_tensors(opt)
                tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
                save_tensors(rundir.state_file, tensors, {**meta, "stage": stage, "step": step + 1, "loss_ema": loss_ema})
                rundir.log({"stage": stage, "step": step + 1, "loss": value, "loss_ema": loss_ema, "lr": lr_at(step, train)})
    return float(loss_ema)


@register_protocol("joint")
def train_joint(model, rundir: RunDir, sampler: PatchSampler) -> dict:
    run = rundir.run.config
    task, train = get_task(run["task"]), run["train"]

    def loss_fn(rng):
        patches = sampler.sample(train["batch"], rng)
        x, y, lv = degraded_batch(patches, task, run["levels"], rng, run["options"])
        return torch.nn.functional.l1_loss(model(x, lv), y)  # equal-size levels: mean of per-level L1

    final = optimise(model, model.parameters(), loss_fn, train["steps"], train, rundir, "joint", run["seed"])
    return {"final_loss": final, "steps": train["steps"]}


def train_run(rundir: RunDir, data_root=None) -> dict:
    """Train one run to completion (resuming if interrupted); returns its summary."""
    run = rundir.run.config
    if rundir.is_done:
        return rundir.summary()
    task = get_task(run["task"])
    protocol = PROTOCOLS.get(run["protocol"])
    if protocol is None:
        raise HyperbenchError(f"unknown training protocol {run['protocol']!r} for {run['model']}", f"known: {sorted(PROTOCOLS)}")
    images = load_dataset(run["train_dataset"], data_root, colour=task.channels)
    sampler = PatchSampler(images, run["train"]["crop"])
    torch.manual_seed(run["seed"])
    np.random.seed(run["seed"])
    model = create_model(run["model"], **run["model_kwargs"])
    rundir.create()  # only once inputs are known to be good: no empty run folders
    t0 = time.time()
    summary = protocol(model, rundir, sampler)
    save_tensors(rundir.model_file, model.state_dict(), {"run_id": rundir.run.run_id, "model": run["model"]})
    summary.update({"run_id": rundir.run.run_id, "wall_s": round(time.time() - t0, 2), "torch_threads": torch.get_num_threads()})
    rundir.mark_done(summary)
    rundir.state_file.unlink(missing_ok=True)
    return summary
