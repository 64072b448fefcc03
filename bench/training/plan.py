"""The plan of a reproduction before it runs (`hyperbench reproduce --dry-run`): every run with its
entry, task, levels, steps, batch and crop, whether it is already trained, and its training cost.

Cost: the forward FLOPs of one crop are counted with torch's FlopCounterMode on two small inputs and
fitted as a + b * pixels (the weight generation of a hypernetwork is the constant part), then scaled
to the run's crop. A training step is taken as 3 forwards (the backward pass costs about two), times
the crops of a step (batch x levels for jointly trained runs), times the steps of every stage.
Best-validation passes (HyperRes in the paper profile) are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.models.catalog import model_cfg
from bench.tasks.task import get_task
from bench.training.flops import BACKWARD_FACTOR, PROBE_SIDES, forward_flops_fit, step_flops  # noqa: F401 (re-exported: tests)
from bench.training.loop import total_steps
from bench.training.profiles import Entry
from bench.training.runs import RunDir


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
    seed: int = 0  # the run's training seed


def plan(entries: list[Entry], runs_dir) -> list[PlannedRun]:
    """Every run of the entries, in order; a bank contributes one run per level."""
    planned = []
    for entry in entries:
        for run in entry.runs:
            config, train = run.config, run.config["train"]
            crops = train["batch"] * (len(config["levels"]) if config["protocol"] == "joint" else 1)
            steps = total_steps(train, model_cfg(config["model"]).train_stages)
            flops = step_flops(config["model"], config["model_kwargs"], config["levels"], config["protocol"], train["batch"], train["crop"]) * steps
            planned.append(PlannedRun(entry.model, run.run_id, run.task, tuple(run.levels), config["protocol"], steps,
                                      train["batch"], train["crop"], crops, flops, RunDir(runs_dir, run).is_done, config["seed"]))
    return planned


def describe_levels(task: str, levels) -> str:
    unit = {"denoise": "σ", "dejpeg": "q", "sr": "x"}[get_task(task).name]
    return ",".join(f"{unit}{v:g}" for v in levels)
