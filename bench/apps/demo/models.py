"""The demo's model choice: the finished runs of adaptive entries in a runs folder (a bank's per-level
runs as one choice), or a checkpoint file described by its run config or by --model/--task/--kwargs.
The page opens on HyperRes' most trained run and names the profile that made it and its steps."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.common.checkpoint import load_pth, load_state_into, load_tensors
from bench.common.errors import HyperbenchError
from bench.evaluation.evaluate import assemble
from bench.models.catalog import create_model, model_cfg
from bench.tasks.task import TASKS, get_task
from bench.training.loop import total_steps
from bench.training.profiles import Entry
from bench.training.runs import Run

DEFAULT_LEVEL = {"denoise": 25.0, "dejpeg": 20.0, "sr": 3.0}


SLIDER_STEP = {"denoise": 1.0, "dejpeg": 1.0, "sr": 0.1}


@dataclass
class Choice:
    """A model the page can pick: a trained run, a bank of per-level runs, or a checkpoint file."""

    id: str
    model: str
    task: str
    kwargs: dict  # keyword arguments that build it (a bank's levels excluded)
    trained_levels: list[float]
    options: dict  # degradation options it was trained with
    source: str
    load: Callable[[], torch.nn.Module]
    run_ids: list[str] = field(default_factory=list)
    training: float = 0.0  # training pixels seen (steps x batch x crop^2, summed over the runs): "the most trained"

    @property
    def bank(self) -> bool:
        return model_cfg(self.model).protocol == "bank"

    def describe(self) -> str:
        kw = ", ".join(f"{k}={v}" for k, v in self.kwargs.items() if k != "in_channels")
        levels = ", ".join(f"{v:g}" for v in self.trained_levels) or "unknown levels"
        kind = f"bank of {len(self.trained_levels)} networks at" if self.bank else "trained at"
        return f"{self.model}({kw}) · {self.task} · {kind} {levels} · {self.source}"

    def info(self) -> dict:
        task = get_task(self.task)
        return {
            "id": self.id, "label": self.describe(), "model": self.model, "task": task.name, "title": task.title,
            "unit": task.unit, "range": list(task.valid_range), "step": SLIDER_STEP[task.name],
            "default_level": DEFAULT_LEVEL[task.name], "trained_levels": self.trained_levels, "bank": self.bank,
        }


def _without_levels(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k != "levels"}


def _training_pixels(run: Run) -> float:
    if run.config.get("imported"):  # official weights: the paper's whole training, more than any run here
        return math.inf
    train = run.config.get("train") or {}
    steps = total_steps(train, model_cfg(run.model).train_stages) if "steps" in train else 0
    return float(steps * train.get("batch", 0) * train.get("crop", 0) ** 2)


def profiles_of_runs() -> dict[str, str]:
    """run id -> the built-in profile that makes it (a run config does not name its profile)."""
    from bench.training.profiles import PROFILE_DIR, expand, load_profile

    found = {}
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        try:
            found.update({run.run_id: path.stem for entry in expand(load_profile(str(path))) for run in entry.runs})
        except HyperbenchError:
            continue  # a profile this installation cannot expand (a plugin missing) names no runs
    return found


def _run_choice(runs: list[Run], runs_dir: Path, profiles: dict[str, str]) -> Choice:
    runs = sorted(runs, key=lambda r: r.levels)
    first = runs[0].config
    kwargs = _without_levels(first["model_kwargs"])
    bank = model_cfg(first["model"]).protocol == "bank"
    levels = [r.levels[0] for r in runs] if bank else [float(v) for v in first["levels"]]
    entry = Entry(first["model"], first["task"], kwargs, runs)
    ids = [r.run_id for r in runs]
    steps = (first.get("train") or {}).get("steps", "?")
    profile = profiles.get(ids[0])
    made = f"profile {profile}, {steps} steps" if profile else f"no built-in profile, {steps} steps"
    if first.get("imported"):  # official weights: trained by their authors
        made = "official weights " + ", ".join(f["name"] for f in first["imported"]["files"])
    options = first.get("options") or get_task(first["task"]).options()  # imported runs: the task's inputs
    return Choice(
        id="+".join(ids), model=first["model"], task=first["task"], kwargs=kwargs, trained_levels=levels,
        options=options, source=f"{made} · run {', '.join(ids)}", load=lambda: assemble(entry, runs_dir), run_ids=ids,
        training=sum(_training_pixels(r) for r in runs) / len(runs),
    )


def trained_choices(runs_dir: Path) -> list[Choice]:
    """Finished runs of adaptive entries in a runs folder; a bank's per-level runs become one choice."""
    groups: dict[str, list[Run]] = {}
    for config_file in sorted(Path(runs_dir).glob("*/config.json")):
        folder = config_file.parent
        if not ((folder / "done").is_file() and (folder / "model.safetensors").is_file()):
            continue
        try:
            run = Run(json.loads(config_file.read_text()))
            cfg = model_cfg(run.model)
            get_task(run.task)
        except (ValueError, KeyError, TypeError, HyperbenchError):
            continue  # unreadable, or made by a plugin that is not installed here
        if run.run_id != folder.name or not (cfg.adaptive or cfg.protocol == "bank"):
            continue  # renamed folder, or a fixed model (its output does not depend on the level)
        key = run.run_id
        if cfg.protocol == "bank":  # member runs of one bank differ only in their level
            key = json.dumps({**run.config, "levels": None, "model_kwargs": _without_levels(run.config["model_kwargs"])}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    profiles = profiles_of_runs() if groups else {}
    choices = [_run_choice(runs, Path(runs_dir), profiles) for runs in groups.values()]
    # The page opens on the first: HyperRes, its most trained run, then the paper's task order (denoise first).
    return sorted(choices, key=lambda c: (c.model != "hyperres", -c.training, list(TASKS).index(c.task), c.model, c.source))


def parse_kwargs(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise HyperbenchError(f"--kwargs {text!r} is not a JSON object", 'write it as \'{"meta_blocks": 4, "width": 32}\'')
    return value


def checkpoint_choice(path: Path, model: str | None = None, task: str | None = None, kwargs: dict | None = None) -> Choice:
    """A checkpoint file: a run's model.safetensors (its config.json says what it is), or any
    safetensors / .pth state dict described by --model, --task and --kwargs."""
    path = Path(path)
    if not path.is_file():
        raise HyperbenchError(f"checkpoint {path} does not exist", "give a run's model.safetensors or a .pth state dict")
    config_file = path.parent / "config.json"
    levels, options = [], None
    if path.name == "model.safetensors" and config_file.is_file():
        try:
            config = json.loads(config_file.read_text())
            saved_model, saved_task, saved_kwargs = config["model"], config["task"], config["model_kwargs"]
        except (ValueError, KeyError, TypeError):
            raise HyperbenchError(f"{config_file} is not a run config", "pass --model, --task and --kwargs for the checkpoint") from None
        if model and model != saved_model:
            raise HyperbenchError(f"{path} holds a {saved_model} model, not {model}", f"drop --model or pass --model {saved_model}")
        model, task, kwargs = saved_model, task or saved_task, {**saved_kwargs, **(kwargs or {})}
        levels, options = [float(v) for v in config.get("levels", [])], config.get("options")
    elif model is None or task is None:
        raise HyperbenchError(
            f"{path} has no run config next to it, so the model it holds is unknown",
            "pass --model NAME --task TASK (and --kwargs '{\"meta_blocks\": 4, \"width\": 32}' unless it has the default size)",
        )
    cfg, task_ = model_cfg(model), get_task(task)
    if not (cfg.adaptive or cfg.protocol == "bank"):
        raise HyperbenchError(f"{model} is not an adaptive model: its output does not depend on the level", "pick an adaptive entry (see `hyperbench list`)")
    if task_.name not in cfg.tasks:
        raise HyperbenchError(f"{model} does not do {task_.name}", f"its tasks: {', '.join(cfg.tasks)}")
    build = {"in_channels": task_.in_channels, **(kwargs or {})}
    if cfg.protocol == "bank" and not levels:
        levels = [float(v) for v in build.get("levels", [])]

    def load():
        net = create_model(model, **build)
        state = load_pth(path) if path.suffix in (".pth", ".pt") else load_tensors(path)[0]
        load_state_into(net, state, str(path))
        return net

    return Choice(
        id=f"file:{path}", model=model, task=task_.name, kwargs=_without_levels(build), trained_levels=levels,
        options=options or task_.default_options, source=f"checkpoint {path}", load=load,
    )
