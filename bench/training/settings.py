"""Each run's training settings: the entry's official recipe, with the profile's budget on top.

What the recipe gives (bench/training/recipes.py, a machine-readable `value` per fact):
  * steps, batch, crop, lr, the schedule and the stage lengths; a key the profile's `train:` sets
    replaces the recipe's for every entry (the budget: smoke and quick shrink them, paper sets none);
    the profile's `lr_milestones` replace a step schedule's milestones, while a cosine schedule
    spans whatever steps the run has;
  * Adam betas, loss weight and gradient clipping, which cost nothing and are always the official ones;
  * the training levels where the official code fixes them (AdaFM sigma 15 -> 75, CFSNet sigma 25 ->
    50, CResMD sigma 0-50), else the profile's `train_levels`;
  * the level -> control mapping (`control`: the levels at control 0 and 1) where it is not the first
    and last training level (CResMD: condition = sigma / 50, (102 - q) / 92);
  * the level distribution of continuously trained entries (CResMD: Beta(0.5, 1));
  * a loss other than L1 where the recipe gives one as data (`loss: {kind: charbonnier, eps}`: CResMD
    deJPEG, whose official L1 collapses a JPEG-only model to the identity);
  * which weights a run keeps (HyperRes: the best on the task's `valid_dataset` every 2 epochs; a
    profile's `select: last`, or a task without a validation set, keeps the last);
  * the data protocol (`fixed`: whole images degraded once and stored, each once per epoch; `fresh`:
    every crop degraded as it is drawn), a profile's `data_protocol` over the recipe's;
  * the training degradation conventions (noise clip and quantisation, SR resize); the evaluation
    inputs stay the profile's (the paper's), and the tables name the difference.

Keys equal to the defaults (betas 0.9/0.999, loss weight 1, no clipping) are left out of the run
config, so the run ids of entries whose recipe matches them stay as they were.
"""

from __future__ import annotations

from bench.common.errors import HyperbenchError
from bench.training.recipes import DEFAULT_BETAS, Recipe, is_number, load_recipe, official_stages, recipe_path

BUDGET_KEYS = ("steps", "batch", "crop", "lr")


def training_settings(recipe: Recipe | None, profile_train: dict, where: str, validation: bool = False) -> dict:
    """The run's `train` dict: the profile's keys over the recipe's values (see the module doc).
    `validation`: the task names a validation set (without one, a best-validation recipe keeps the last
    weights, and the tables list that departure)."""
    if recipe is None:  # a plugin without a recipe trains with the profile's settings alone
        return dict(profile_train)
    train = {}
    stages = official_stages(recipe)
    for key in BUDGET_KEYS:
        if key in profile_train:
            train[key] = profile_train[key]
        elif key == "steps" and stages:
            train[key] = max(stages.values())
        elif is_number(recipe.value(key)):
            train[key] = recipe.value(key)
        else:
            raise HyperbenchError(f"{where}: neither the profile nor the {recipe.entry} recipe ({recipe.task}) gives train.{key}",
                                  f"set train.{key} in the profile (`hyperbench recipe {recipe.entry} --task {recipe.task}` shows the recipe)")
    if stages and "steps" not in profile_train and len(set(stages.values())) > 1:
        train["stage_steps"] = stages  # a profile's `steps` is per stage; without it each stage runs its official length
    schedule = recipe.value("schedule") if isinstance(recipe.value("schedule"), dict) else {"kind": "multistep"}
    if schedule.get("kind") == "cosine":
        train.update({"schedule": "cosine", "eta_min": float(schedule.get("eta_min", 0.0))})
    else:
        train["lr_milestones"] = list(profile_train.get("lr_milestones", schedule.get("milestones", [])))
        train["lr_gamma"] = profile_train.get("lr_gamma", schedule.get("gamma", 0.1))
    betas = recipe.value("betas", DEFAULT_BETAS)
    if [float(b) for b in betas] != DEFAULT_BETAS:
        train["betas"] = [float(b) for b in betas]
    for key, default in (("loss_weight", 1.0), ("grad_clip", None)):
        value = recipe.value(key)
        if is_number(value) and value != default:
            train[key] = float(value)
    loss = recipe.value("loss")
    if isinstance(loss, dict) and loss.get("kind", "l1") != "l1":
        train["loss"] = dict(loss)  # absent for L1 (every loss given as text): those run ids stay as they were
    distribution = recipe.value("level_distribution")
    if isinstance(distribution, dict):
        train["level_distribution"] = dict(distribution)
    checkpoint = recipe.value("checkpoint")
    official = checkpoint.get("select", "last") if isinstance(checkpoint, dict) else "last"
    if profile_train.get("select", official if validation else "last") == "best_validation":
        train["select"] = "best_validation"
        train["validate_every_epochs"] = int(checkpoint.get("every_epochs", 1)) if isinstance(checkpoint, dict) else 1
    if profile_train.get("data_protocol", recipe.value("data_protocol", "fresh")) == "fixed":
        train["data_protocol"] = "fixed"  # absent for fresh: the run ids of fresh entries stay as they were
    if "checkpoint_every" in profile_train:
        train["checkpoint_every"] = profile_train["checkpoint_every"]
    return train


def training_levels(recipe: Recipe | None, profile_levels: list) -> list[float]:
    """The recipe's levels where the official code fixes a list of numbers, else the profile's."""
    levels = recipe.value("levels") if recipe else None
    if isinstance(levels, list) and levels and all(is_number(v) for v in levels):
        return [float(v) for v in levels]
    return [float(v) for v in profile_levels]


def training_options(recipe: Recipe | None, task: str, profile_options: dict) -> dict:
    """The degradation options the entry trains with: its official conventions over the profile's."""
    options = dict(profile_options)
    if recipe is None:
        return options
    noise = recipe.value("noise")
    if task == "denoise" and isinstance(noise, dict):
        options.update({k: noise[k] for k in ("clip", "quantise") if k in noise})
    resize = recipe.value("resize")
    if task == "sr" and isinstance(resize, str) and "resize" in options:
        options["resize"] = resize
    return options


def control_levels(recipe: Recipe | None) -> list[float] | None:
    """The levels at control 0 and control 1 where the recipe fixes a mapping other than the training levels."""
    control = recipe.value("control") if recipe else None
    if isinstance(control, dict) and isinstance(control.get("endpoints"), list):
        return [float(v) for v in control["endpoints"]]
    return None


def run_recipe(arch: str, task: str) -> Recipe | None:
    return load_recipe(arch, task) if recipe_path(arch) is not None else None
