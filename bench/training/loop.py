"""The optimisation loop every protocol uses (resumable, deterministic), its settings and schedule.

Randomness of step s comes from a Generator seeded by (seed, stage, s), so a resumed run draws the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import signal

import torch

from bench.common.checkpoint import load_tensors, save_tensors
from bench.common.errors import HyperbenchError
from bench.common.progress import progress_bar
from bench.tasks.degradations import seeded_rng
from bench.training import distributed
from bench.training.crops import Objective, loader_workers, step_batches
from bench.training.runs import RunDir


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_train_settings(train: dict, where: str) -> None:
    """Reject training settings that would otherwise fail deep inside torch, before any run folder is written."""

    def bad(key, why, fix):
        raise HyperbenchError(f"{where}: train.{key} = {train.get(key)!r} {why}", fix)

    for key in ("steps", "batch", "crop", "lr"):
        if key not in train:
            raise HyperbenchError(f"{where}: the train settings lack {key!r}", "see bench/profiles/smoke.yaml for the layout")
    for key in ("steps", "batch"):
        if not _positive_int(train[key]):
            bad(key, "is not a positive integer", f"set train.{key} to a whole number >= 1")
    if not _positive_int(train["crop"]) or train["crop"] % 2 or train["crop"] < 8:
        bad("crop", "is not an even number of pixels >= 8 (the networks halve and double the size)", "set train.crop to e.g. 32")
    for key in ("lr", "lr_gamma"):
        if key in train and not _positive_number(train[key]):
            hint = " (YAML 1.1 reads 1e-3 and 1.0e9 as text: write 1.0e-3 or 0.001)" if isinstance(train[key], str) else ""
            bad(key, "is not a positive number" + hint, f"set train.{key} to a number > 0")
    milestones = train.get("lr_milestones", [])
    if not isinstance(milestones, list) or not all(_positive_int(m) for m in milestones):
        bad("lr_milestones", "is not a list of positive step numbers", "write e.g. lr_milestones: [30]")
    every = train.get("checkpoint_every", 0)
    if not (every == 0 or _positive_int(every)):
        bad("checkpoint_every", "is not a whole number >= 0", "write e.g. checkpoint_every: 20 (0: only at the end)")


def lr_at(step: int, train: dict) -> float:
    """The run's schedule (from its recipe, bench.training.settings): lr * gamma ** (milestones
    passed), as MultiStepLR; or cosine from lr to eta_min over the run's steps."""
    if train.get("schedule") == "cosine":
        eta_min = train.get("eta_min", 0.0)
        return eta_min + 0.5 * (train["lr"] - eta_min) * (1 + math.cos(math.pi * step / train["steps"]))
    passed = sum(step >= m for m in train.get("lr_milestones", []))
    return train["lr"] * train.get("lr_gamma", 0.1) ** passed


def stage_train(train: dict, stage: str) -> dict:
    """The settings one stage trains with: its own length (the schedule restarts per stage, as the
    official stages are separate training runs)."""
    return {**train, "steps": int(train.get("stage_steps", {}).get(stage, train["steps"]))}


def total_steps(train: dict, stages: int) -> int:
    return sum(train["stage_steps"].values()) if "stage_steps" in train else train["steps"] * stages


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


def optimise(model, params, objective, steps: int, train: dict, rundir: RunDir, stage: str, seed: int, after_step=None) -> float:
    """Adam over `params` for `steps`; resumes from the stage's last checkpoint. Returns final loss.
    `objective` is an Objective (bench.training.crops: batches made by the loader, ahead of the model,
    in worker processes where there are any) or a plain `loss_fn(rng)` that draws its own batch.
    `train` is the run's (bench.training.settings): its betas, schedule, loss weight and gradient
    clipping are the entry's official ones. `after_step(n)` runs after update n (best-validation selection)."""
    params = list(params)
    opt = torch.optim.Adam(params, lr=train["lr"], betas=tuple(train.get("betas", (0.9, 0.999))))
    weight = float(train.get("loss_weight", 1.0))
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
    if isinstance(objective, Objective):
        batches = step_batches(objective.batches, train["batch"], seed, stage, start, steps, loader_workers(), distributed.device().type == "cuda")
        loss_fn = objective.loss
    else:  # a plugin's loss_fn(rng)
        batches, loss_fn = (seeded_rng(seed, stage, step) for step in range(start, steps)), objective
    with progress_bar(label, total=steps, completed=start) as bar:
        for step, batch in zip(range(start, steps), batches):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, train)
            loss = loss_fn(batch)
            if weight != 1.0:  # the recipe's loss weight (CFSNet 0.1)
                loss = loss * weight
            value = distributed.mean(loss.detach())  # the combined batch's loss when data-parallel
            if not math.isfinite(value):
                raise HyperbenchError(  # no [brackets] in the message: the CLI prints it as rich markup
                    f"training loss became {value} at step {step} of run {rundir.run.run_id} ({rundir.run.model}, {rundir.run.task}, stage {stage})",
                    "lower the learning rate in the profile (train.lr) or check the data; the run was left unfinished",
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(model.parameters())
            if train.get("grad_clip"):
                torch.nn.utils.clip_grad_norm_(params, train["grad_clip"])
            opt.step()
            if after_step is not None:
                after_step(step + 1)
            loss_ema = value if loss_ema is None else 0.98 * loss_ema + 0.02 * value
            bar.update(step + 1, loss=loss_ema)
            stopping = STOP.requested and distributed.world_size() == 1  # a data-parallel job stops at its next regular checkpoint
            if ((step + 1) % every == 0 or step + 1 == steps or stopping) and distributed.is_main():
                tensors, meta = _optimizer_tensors(opt)
                tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
                clock = {"wall_s": rundir.wall_s(), "segments": rundir.segment}  # the next segment adds its time to these
                save_tensors(rundir.state_file, tensors, {**meta, "stage": stage, "step": step + 1, "loss_ema": loss_ema, **clock})
                rundir.log({"stage": stage, "step": step + 1, "loss": value, "loss_ema": loss_ema, "lr": opt.param_groups[0]["lr"],  # the rate the optimiser used
                            "segment": rundir.segment, "segment_s": round(rundir.segment_s(), 3)})
            if stopping:
                raise Stopped(f"stopped after step {step + 1} of {rundir.run.run_id} [{stage}] on request; its checkpoint resumes it")
            _fault_injection(step + 1)
    return float(loss_ema)


SIGNAL_AFTER_CHECKPOINT = "HYPERBENCH_SIGNAL_AFTER_CHECKPOINT"


class Stopped(Exception):
    """Training left off at a step on request (SIGTERM in a grid job), with a checkpoint of that step written."""


class _StopRequest:
    requested = False


STOP = _StopRequest()  # set by a signal handler (bench.training.grid.TrainJob): checkpoint at the next step and stop


def stop_on(signum) -> None:
    """From now on, signal `signum` makes training checkpoint after its current step and raise Stopped: Slurm sends
    SIGTERM before it kills a requeued or cancelled job, and the work since the last regular checkpoint is kept."""

    def request(*_):
        STOP.requested = True

    signal.signal(signum, request)


def _fault_injection(step: int) -> None:
    """Crash and preemption tests at an exact point, whatever the machine's load: with
    $HYPERBENCH_SIGNAL_AFTER_CHECKPOINT = "N:SIGNAME" (e.g. "12:SIGKILL", "10:SIGUSR2") the process sends
    itself that signal right after logging the checkpoint of step N (or right after step N where it writes none).
    Unset in normal use."""
    at, _, name = os.environ.get(SIGNAL_AFTER_CHECKPOINT, "").partition(":")
    if at == str(step):
        os.kill(os.getpid(), getattr(signal, name))
