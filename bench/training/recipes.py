"""Official training recipes as data: what each entry's official code does, value by value, with its
source, and where a profile departs from it.

A recipe is a YAML file named by the entry's `ModelCfg.recipe` (beside the model's module). Its
`all:` section holds the facts every task shares; a section per task (`denoise:`, `dejpeg:`, `sr:`)
adds or overrides facts for that task. Every fact is a mapping with `value` and either `source`
("path:line" in the repository named by the file's `code:`, or "owner/repo@commit path:line") or
`unfixed` (the official code does not fix it: what the suite chooses, and why). Facts the profile
sets (train steps, batch, crop, learning rate and schedule, degradation options) carry a
machine-readable `value`, so `departures` can compare them; the others are text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import yaml

from bench.common.errors import HyperbenchError
from bench.models.catalog import model_cfg
from bench.tasks.task import get_task

# The recipe fields, in print order: what a reader of an official training script looks for.
FIELDS = {
    "optimiser": "optimiser (and betas, weight decay)",
    "betas": "Adam betas",
    "lr": "learning rate",
    "schedule": "learning-rate schedule",
    "stages": "training stages (steps each)",
    "steps": "total steps",
    "batch": "batch (crops per step)",
    "crop": "crop size (px)",
    "loss": "loss (and its weight)",
    "loss_weight": "loss weight (multiplies the loss)",
    "grad_clip": "gradient-norm clipping",
    "augmentation": "augmentation",
    "levels": "training levels",
    "level_distribution": "training-level distribution",
    "control": "control mapping (level -> control)",
    "data": "training data",
    "data_protocol": "data protocol (fixed: degraded once, stored; fresh: per crop)",
    "noise": "noise convention (clip, quantise)",
    "jpeg": "JPEG convention (encoder, colour)",
    "resize": "SR resize convention",
    "init": "initialisation",
    "checkpoint": "checkpoint selection",
}
SECTIONS = ("code", "all", "denoise", "dejpeg", "sr")


@dataclass(frozen=True)
class Fact:
    value: object
    source: str = ""  # where the official code fixes it
    unfixed: str = ""  # or: the official code does not fix it; what the suite chooses and why
    note: str = ""  # what a machine-readable value means, in words

    def cited(self, code: str) -> str:
        if self.unfixed:
            return f"not fixed by the official code: {self.unfixed}"
        return self.source if "@" in self.source or not code else f"{code} {self.source}"


@dataclass(frozen=True)
class Recipe:
    entry: str
    task: str
    code: str  # owner/repo@commit the facts were read at
    facts: dict[str, Fact]

    def value(self, field: str, default=None):
        return self.facts[field].value if field in self.facts else default

    def fixed(self, field: str, default=None):
        """The value where the official code fixes it (the suite's own choices are no departures)."""
        fact = self.facts.get(field)
        return fact.value if fact is not None and not fact.unfixed else default


def _fail(path: Path, problem: str) -> NoReturn:
    raise HyperbenchError(f"recipe {path}: {problem}", "see bench/models/recipes/hyperres.yaml for the layout")


def _read(path: Path) -> dict:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        _fail(path, f"cannot be read ({str(exc).splitlines()[0]})")
    if not isinstance(raw, dict) or "code" not in raw:
        _fail(path, "must be a mapping with `code:` and sections of facts (`all:`, `denoise:`, `dejpeg:`, `sr:`)")
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        _fail(path, f"unknown sections {sorted(unknown)} (allowed: {', '.join(SECTIONS)})")
    for section in SECTIONS[1:]:
        if not isinstance(raw.get(section) or {}, dict):
            _fail(path, f"section {section} must map recipe fields to facts")
        for field, fact in (raw.get(section) or {}).items():
            if field not in FIELDS:
                _fail(path, f"{section}.{field} is not a recipe field (known: {', '.join(FIELDS)})")
            if not isinstance(fact, dict) or "value" not in fact or not (fact.get("source") or fact.get("unfixed")):
                _fail(path, f"{section}.{field} needs `value` and a `source` (or `unfixed`: why the code does not fix it)")
            if set(fact) - {"value", "source", "unfixed", "note"}:
                _fail(path, f"{section}.{field} has unknown keys {sorted(set(fact) - {'value', 'source', 'unfixed', 'note'})} (allowed: value, source, unfixed, note)")
    return raw


def recipe_path(entry: str) -> Path | None:
    cfg = model_cfg(entry)
    return Path(cfg.recipe) if cfg.recipe else None


def load_recipe(entry: str, task: str) -> Recipe:
    """The official recipe of a registered entry for one task."""
    cfg, task_ = model_cfg(entry), get_task(task)
    if task_.name not in cfg.tasks:
        raise HyperbenchError(f"{entry} does not do {task}", f"its tasks: {', '.join(cfg.tasks) or 'none'}")
    path = recipe_path(entry)
    if path is None:
        raise HyperbenchError(f"{entry} has no recipe", "its registration names none (ModelCfg.recipe)")
    raw = _read(path)
    facts = {}
    for section in ("all", task_.name):
        for field, fact in (raw.get(section) or {}).items():
            facts[field] = Fact(fact["value"], str(fact.get("source", "")), str(fact.get("unfixed", "")), str(fact.get("note", "")))
    ordered = {field: facts[field] for field in FIELDS if field in facts}
    return Recipe(entry, task_.name, str(raw["code"]), ordered)


DEFAULT_BETAS = [0.9, 0.999]


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def official_stages(recipe: Recipe, fixed_only: bool = False) -> dict[str, int]:
    """{stage: steps} where the recipe gives stage lengths; {} for single-stage entries."""
    stages = recipe.fixed("stages") if fixed_only else recipe.value("stages")
    if isinstance(stages, list) and stages and all(isinstance(s, dict) and is_number(s.get("steps")) for s in stages):
        return {s["name"]: int(s["steps"]) for s in stages}
    return {}


def schedule_of(train: dict) -> dict:
    """A run's learning-rate schedule in the recipes' form."""
    if train.get("schedule") == "cosine":
        return {"kind": "cosine", "eta_min": float(train.get("eta_min", 0.0))}
    return {"kind": "multistep", "milestones": list(train.get("lr_milestones", [])), "gamma": float(train.get("lr_gamma", 0.1))}


def _same_schedule(official: dict, ours: dict) -> bool:
    if official.get("kind") != ours["kind"]:
        return False
    if ours["kind"] == "cosine":
        return float(official.get("eta_min", 0.0)) == ours["eta_min"]
    return list(official.get("milestones", [])) == ours["milestones"] and float(official.get("gamma", 0.1)) == ours["gamma"]


def departures(recipe: Recipe, train: dict, options: dict) -> list[tuple[str, object, object]]:
    """(field, official, suite) for every machine-readable fact a run's training settings (`train` of
    its config) and training degradation options depart from. Facts the official code does not fix
    are the suite's own choices, no departures."""
    found = []
    stages = official_stages(recipe, fixed_only=True)
    if stages:
        ours = {name: int(train.get("stage_steps", {}).get(name, train.get("steps"))) for name in stages}
        if ours != stages:
            found.append(("stages", stages, ours))
    for field in ("steps", "batch", "crop", "lr"):
        official = recipe.fixed(field)
        if is_number(official) and train.get(field) != official and not (field == "steps" and stages):
            found.append((field, official, train.get(field)))
    official = recipe.fixed("betas")
    ours = [float(b) for b in train.get("betas", DEFAULT_BETAS)]
    if isinstance(official, list) and [float(b) for b in official] != ours:
        found.append(("betas", official, ours))
    official = recipe.fixed("schedule")
    if isinstance(official, dict) and not _same_schedule(official, schedule_of(train)):
        found.append(("schedule", official, schedule_of(train)))
    for field, default in (("loss_weight", 1.0), ("grad_clip", None)):
        official = recipe.fixed(field)
        if is_number(official) and train.get(field, default) != official:
            found.append((field, official, train.get(field, default)))
    official = recipe.fixed("checkpoint")
    if isinstance(official, dict) and official.get("select", "last") != train.get("select", "last"):
        found.append(("checkpoint", official.get("select"), train.get("select", "last")))
    official = recipe.fixed("data_protocol")
    if isinstance(official, str) and train.get("data_protocol", "fresh") != official:
        found.append(("data_protocol", official, train.get("data_protocol", "fresh")))
    official = recipe.fixed("noise")
    if isinstance(official, dict):
        differ = [k for k in ("clip", "quantise") if k in official and official[k] != options.get(k)]
        if differ:
            found.append(("noise", {k: official[k] for k in differ}, {k: options.get(k) for k in differ}))
    official = recipe.fixed("resize")
    if isinstance(official, str) and options.get("resize") not in (None, official):
        found.append(("resize", official, options.get("resize")))
    return found


def describe(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {describe(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def profile_departures(profile, entries) -> list[tuple[object, list]]:
    """(entry, departures) for every entry of a profile whose architecture has a recipe (its first run:
    the runs of a bank share their settings; its seeds too, so only its primary seed is listed)."""
    return [(entry, departures(load_recipe(entry.arch, entry.task), entry.runs[0].config["train"], entry.runs[0].config["options"]))
            for entry in entries if entry.primary and recipe_path(entry.arch) is not None and entry.runs and not entry.weights]


def convention_notes(profile, entries) -> list[str]:
    """Entries that train on other degradation conventions than the evaluation inputs (the profile's)."""
    lines = []
    for entry in entries:
        if not entry.runs or entry.weights or not entry.primary:  # imported official weights: trained as their authors did
            continue
        ours, evaluated = entry.runs[0].config["options"], profile.task_cfg(entry.task)["options"]
        differ = {k: (v, evaluated.get(k)) for k, v in ours.items() if evaluated.get(k) != v}
        if differ:
            lines.append(f"{entry.model} trains with its official conventions "
                         + ", ".join(f"{k} {describe(a)}" for k, (a, _) in differ.items())
                         + " and is evaluated on the profile's inputs ("
                         + ", ".join(f"{k} {describe(b)}" for k, (_, b) in differ.items()) + ").")
    return lines


def departures_text(profile, entries) -> list[str]:
    """The notes under a table: where each entry's training departs from its official recipe, where it
    trains with a loss of the suite's choosing, and where it trained on other degradation conventions than
    those it is evaluated on."""
    lines = []
    for entry, rows in profile_departures(profile, entries):
        if rows:
            lines.append(f"{entry.model} departs from its official recipe in: "
                         + "; ".join(f"{field} {describe(official)} -> {describe(ours)}" for field, official, ours in rows)
                         + f" (`hyperbench recipe {entry.arch} --task {entry.task}`).")
        loss = entry.runs[0].config["train"].get("loss")
        if loss:  # a recipe fact the official code does not fix (CResMD deJPEG): named under every table it affects
            lines.append(f"{entry.model} ({entry.task}) trains with a {loss['kind']} loss (eps {loss['eps']:g}), not the official L1: the official "
                         f"code trains no model on this degradation alone, and one trained so with L1 returns its input "
                         f"(`hyperbench recipe {entry.arch} --task {entry.task}` gives the measurements).")
    return lines + convention_notes(profile, entries)
