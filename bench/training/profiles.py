"""Profiles (YAML) and their expansion into runs: model x task x training levels x seed.

A run is identified by the hash of its resolved config, so the same settings always land in the same
folder and finished work is never redone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.common.errors import HyperbenchError, did_you_mean
from bench.metrics.iqa import parse_metrics
from bench.models.catalog import model_cfg
from bench.reports.visual_rule import visual_settings
from bench.tasks.task import TASKS, get_task
from bench.training.crops import DATA_PROTOCOLS
from bench.training.distributed import check_gpu_flags
from bench.training.grid_options import grid_settings
from bench.training.runs import RUN_FORMAT, Run
from bench.training.settings import control_levels, run_recipe, training_levels, training_options, training_settings

PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"  # bench/profiles/*.yaml
TRAIN_KEYS = {"steps", "batch", "crop", "lr", "lr_milestones", "lr_gamma", "checkpoint_every", "select", "data_protocol",
              "tflop", "lr_milestone_fractions"}
ALTERNATIVES = {"steps": "tflop", "tflop": "steps", "lr_milestones": "lr_milestone_fractions", "lr_milestone_fractions": "lr_milestones"}
TASK_KEYS = {"train_dataset", "eval_dataset", "valid_dataset", "train_levels", "bank_levels", "eval_levels", "options", "below_input"}
TOP_KEYS = ("name", "description", "seed", "seeds", "conventions", "train", "models", "tasks", "first", "tune", "gpu", "grid", "budget", "extends",
            "metrics", "visual")
SELECT = ("last", "best_validation")  # which weights a run keeps: its last, or its best on the validation set
ENTRY_GRID_KEYS = ("gpus_per_job", "cpus_per_job", "mem_gb", "time_min")  # resources one entry's jobs may ask for
MERGED_SECTIONS = ("train", "models", "tune", "gpu", "grid", "budget")  # `extends:`: the child's keys override the base's, key by key


@dataclass
class Entry:
    """A model as it appears in the tables for one task, made of one run or a bank of runs."""

    model: str  # the entry's name in tables and results (a profile may list one architecture twice)
    task: str
    model_kwargs: dict
    runs: list[Run] = field(default_factory=list)
    arch: str = ""  # the registry name it is built from (defaults to `model`)
    weights: list = field(default_factory=list)  # official files to import instead of training (`weights:` in the profile)
    absent: str = ""  # why an entry with `weights` has no run: which file is missing and where to get it
    seed: int = 0  # the training seed of its runs (one entry per seed of `seeds:`)
    grid: dict = field(default_factory=dict)  # its own cluster resources (`models: {hinet: {grid: {mem_gb: 32}}}`), not part of run ids
    primary: bool = True  # the seed that tuning (Fig 5, blind table) and the budget figures use

    def __post_init__(self):
        self.arch = self.arch or self.model

    @property
    def key(self) -> tuple[str, int]:
        """What tells apart the entries of one task: its name and training seed."""
        return self.model, self.seed


@dataclass
class Profile:
    name: str
    description: str
    seed: int
    train: dict
    models: dict
    tasks: dict
    conventions: list[str]
    source: Path
    tune: dict = field(default_factory=dict)  # optional `tune:` section, validated by bench.tuning.tune.tune_settings
    gpu: dict = field(default_factory=dict)  # optional `gpu:` flags that are on (bf16, channels_last, compile): part of every run config
    grid: dict = field(default_factory=dict)  # optional `grid:` cluster settings (bench.training.grid), not part of run configs
    first: list[str] = field(default_factory=list)  # optional `first:` entries reproduce finishes (tables included) before the rest
    budget: dict = field(default_factory=dict)  # optional `budget: {images: N}`: fig_budget_<task> on the first N evaluation images
    seeds: list[int] = field(default_factory=list)  # optional `seeds:` training seeds of every entry (default: [seed])
    metrics: list[dict] = field(default_factory=list)  # optional `metrics:` beyond PSNR/SSIM, {"name": ..., "options": {...}} (bench.metrics.catalog)
    visual: dict = field(default_factory=dict)  # optional `visual:` images, levels and crop of fig_visual_<task>, per task (bench.reports.visual_rule)

    def task_cfg(self, task: str) -> dict:
        return self.tasks[task]


def _fail(path, problem, fix):
    raise HyperbenchError(f"profile {path}: {problem}", fix)


def bundled_profiles() -> list[str]:
    """The names of the profiles shipped in bench/profiles/."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise HyperbenchError(f"unknown profile {name_or_path!r}", did_you_mean(str(name_or_path), bundled_profiles()) + " (or give a path to a YAML file)")
    raw = _read_yaml(path)
    for key in ("name", "seed", "train", "models", "tasks"):
        if key not in raw:
            _fail(path, f"lacks the key {key!r}", "see bench/profiles/smoke.yaml for the layout")
    _check_train(path, raw["train"], "train")
    for name, kwargs in raw["models"].items():
        model_cfg((kwargs or {}).get("model", name))  # unknown model -> did-you-mean error
        if "train" in (kwargs or {}):
            _check_train(path, kwargs["train"], f"models.{name}.train")
        if "gpu" in (kwargs or {}):
            check_gpu_flags(kwargs["gpu"], f"profile {path}, models.{name}")
        own_grid = (kwargs or {}).get("grid")
        if own_grid is not None:
            grid_settings(own_grid, f"profile {path}, models.{name}")
            if set(own_grid) - set(ENTRY_GRID_KEYS):
                _fail(path, f"models.{name}.grid sets {sorted(set(own_grid) - set(ENTRY_GRID_KEYS))}",
                      f"an entry may set its own {', '.join(ENTRY_GRID_KEYS)}; the rest is the profile's grid:")
        weights = (kwargs or {}).get("weights")
        if weights is not None and not (isinstance(weights, dict) and all(t in TASKS and isinstance(f, (str, list)) for t, f in weights.items())):
            _fail(path, f"models.{name}.weights must map tasks to official file names, got {weights!r}",
                  "write e.g. `weights: {denoise: noise_4.pth}` (`hyperbench weights list` names the released files)")
    for task_name, tcfg in raw["tasks"].items():
        task = get_task(task_name)
        unknown = set(tcfg) - TASK_KEYS
        if unknown:
            _fail(path, f"unknown keys {sorted(unknown)} in task {task_name}", f"allowed: {sorted(TASK_KEYS)}")
        valid = tcfg.get("valid_dataset")
        if valid and valid in (tcfg.get("train_dataset"), tcfg.get("eval_dataset")):
            _fail(path, f"task {task_name} validates on {valid}, its {'training' if valid == tcfg.get('train_dataset') else 'evaluation'} set",
                  "name a held-out set for valid_dataset (the paper profile uses Set14 and classic5, which no table evaluates)")
        for key in ("train_levels", "bank_levels", "eval_levels"):
            tcfg[key] = [task.check_level(v) for v in tcfg.get(key, [])]
        tcfg["options"] = task.options(tcfg.get("options"))
    seeds = _seeds(raw.get("seeds", [raw["seed"]]), path, "seeds")
    for name, kwargs in raw["models"].items():
        if "seeds" in (kwargs or {}):
            if (kwargs or {}).get("weights") is not None:
                _fail(path, f"models.{name} has both weights: and seeds:", "official weights are not trained: drop seeds: from that entry")
            own = kwargs["seeds"]
            if isinstance(own, dict) and not _per_task(own):
                _fail(path, f"models.{name}.seeds names {sorted(set(own) - set(TASKS))}, which are no tasks",
                      f"write a list (`seeds: [0, 1, 2]`) or lists per task ({', '.join(TASKS)})")
            for task, listed in (own.items() if _per_task(own) else [(None, own)]):
                _seeds(listed, path, f"models.{name}.seeds" + (f".{task}" if task else ""))
    first = list(raw.get("first") or [])
    for name in first:
        if name not in raw["models"]:
            _fail(path, f"first: names {name!r}, which is not one of its models", did_you_mean(str(name), raw["models"]))
    return Profile(
        name=str(raw["name"]), description=str(raw.get("description", "")), seed=int(raw["seed"]),
        train=dict(raw["train"]), models=dict(raw["models"]), tasks=dict(raw["tasks"]),
        conventions=list(raw.get("conventions", [])), source=path, tune=dict(raw.get("tune") or {}),
        gpu=check_gpu_flags(raw.get("gpu") or {}, f"profile {path}"), grid=grid_settings(raw.get("grid") or {}, f"profile {path}"),
        first=first, budget=_budget(raw.get("budget"), path), seeds=seeds, metrics=parse_metrics(raw.get("metrics"), f"profile {path}"),
        visual=visual_settings(raw.get("visual"), f"profile {path}", {t: c["eval_levels"] for t, c in raw["tasks"].items()}),
    )


def _seeds(raw, path, where: str) -> list[int]:
    """A list of distinct integer training seeds."""
    if not (isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw)
            and len(set(raw)) == len(raw)):
        _fail(path, f"{where} must be a non-empty list of distinct whole numbers >= 0, got {raw!r}", "write e.g. `seeds: [0, 1, 2]`")
    return list(raw)


def entry_seeds(profile: Profile, name: str, task: str) -> list[int]:
    """The training seeds of one entry for one task: its own `seeds:` (a list, or lists per task: `{denoise: [0, 1, 2],
    sr: [0]}`; a task it does not name trains the profile's), else the profile's `seeds:`, else the profile's `seed:`.
    Each seed is its own run (its own run id); the evaluation inputs always use the profile's `seed:`."""
    own = (profile.models[name] or {}).get("seeds")
    if _per_task(own):
        own = own.get(task)
    return list(own or profile.seeds or [profile.seed])


def primary_seed(profile: Profile, name: str, task: str) -> int:
    """The seed whose runs tuning and the budget figures use: the profile's `seed:` when the entry trains with it,
    else its first seed."""
    seeds = entry_seeds(profile, name, task)
    return profile.seed if profile.seed in seeds else seeds[0]


def _check_train(path, train, where: str, per_task: bool = False) -> None:
    """A `train:` section (the profile's, or one entry's own, which overrides it key by key for that entry). Either may
    hold a task's own settings under the task's name (`sr: {steps: 30000}`), which override the rest for that task."""
    if not isinstance(train, dict):
        _fail(path, f"{where} must be a mapping, got {train!r}", "write e.g. `train: {steps: 800, batch: 8}`")
    unknown = set(train) - TRAIN_KEYS - (set() if per_task else set(TASKS))
    if unknown:
        _fail(path, f"unknown keys {sorted(unknown)} in {where}",
              f"allowed: {sorted(TRAIN_KEYS)}" + ("" if per_task else f", or a task ({', '.join(TASKS)}) mapped to its own settings"))
    for task in set(train) & set(TASKS):
        _check_train(path, train[task], f"{where}.{task}", per_task=True)
    for key in ("steps", "lr_milestones"):  # alternatives: one mapping gives one of them, a later one may replace it
        if key in train and ALTERNATIVES[key] in train:
            _fail(path, f"{where} gives both {key} and {ALTERNATIVES[key]}", "keep one of them (a budget in steps, or in TFLOP / fractions of the steps)")
    if train.get("select", "last") not in SELECT:
        _fail(path, f"{where}.select is {train['select']!r}", f"use one of {', '.join(SELECT)} (which weights a run keeps)")
    if train.get("data_protocol", "fresh") not in DATA_PROTOCOLS:
        _fail(path, f"{where}.data_protocol is {train['data_protocol']!r}",
              f"use one of {', '.join(DATA_PROTOCOLS)} (fixed: whole images degraded once; fresh: every crop degraded as drawn)")


def entry_train(profile: Profile, name: str, task: str) -> dict:
    """The training budget of one profile entry for one task, later settings overriding earlier ones key by key: the
    profile's `train:`, its section for the task, the entry's own `train:`, and the entry's section for the task."""
    own = (profile.models[name] or {}).get("train") or {}
    layers = (profile.train, profile.train.get(task) or {}, own, own.get(task) or {})
    merged = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in TASKS:
                merged.pop(ALTERNATIVES.get(key), None)  # `steps` replaces an earlier `tflop` and the other way round
                merged[key] = value
    return merged


def compute_budget(train: dict, arch: str, kwargs: dict, levels, protocol: str, recipe=None, where: str = "train") -> dict:
    """A `train:` budget given as training compute (`tflop`: TFLOP per run, as the dry-run counts them) turned into
    steps per training stage, so that entries of different cost get the same compute; `lr_milestone_fractions`
    become milestones at those fractions of the steps. Settings without either are returned as they are."""
    from bench.training.flops import step_flops

    train = dict(train)

    def given(key):  # the profile's value, else the recipe's (batch and crop decide a step's cost)
        value = train.get(key, recipe.value(key) if recipe is not None else None)
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise HyperbenchError(f"{where}: tflop and lr_milestone_fractions need train.{key}, which neither the profile nor the recipe gives",
                                  f"set train.{key} in the profile")
        return value

    if "tflop" in train:
        tflop = train.pop("tflop")
        if not (isinstance(tflop, (int, float)) and not isinstance(tflop, bool) and tflop > 0):
            raise HyperbenchError(f"{where}: train.tflop is {tflop!r}", "give the training compute per run in TFLOP, a number > 0 (e.g. `tflop: 20`)")
        per_step = step_flops(arch, kwargs, levels, protocol, given("batch"), given("crop"))
        train["steps"] = max(1, int(tflop * 1e12 / (per_step * model_cfg(arch).train_stages)))
    if "lr_milestone_fractions" in train:
        fractions = train.pop("lr_milestone_fractions")
        if not (isinstance(fractions, list) and all(isinstance(f, (int, float)) and 0 < f < 1 for f in fractions)):
            raise HyperbenchError(f"{where}: train.lr_milestone_fractions is {fractions!r}", "give fractions of the steps between 0 and 1, e.g. [0.8]")
        train["lr_milestones"] = [max(1, round(f * given("steps"))) for f in fractions]
    return train


def entry_gpu(profile: Profile, name: str) -> dict:
    """The speed flags of one profile entry: the profile's `gpu:` with the entry's own `gpu:` on top (flags that are on)."""
    own = (profile.models[name] or {}).get("gpu") or {}
    return check_gpu_flags({**profile.gpu, **own}, f"profile {profile.source}, models.{name}")


def _budget(raw, path) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"images"} or not (isinstance(raw.get("images", 10), int) and raw.get("images", 10) > 0):
        _fail(path, f"budget must be a mapping with `images: N` (N > 0), got {raw!r}", "write e.g. `budget: {images: 10}`")
    return dict(raw)


def _read_yaml(path: Path, seen: tuple = ()) -> dict:
    """A profile's mapping; `extends: <profile>` starts from that profile and adds to it (models, task
    settings, train, tune, gpu and grid keys override the base's; conventions are appended)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        _fail(path, f"is not valid YAML ({str(exc).splitlines()[0]})", "fix the YAML syntax (indentation, colons, brackets)")
    if not isinstance(raw, dict):
        _fail(path, "must be a mapping with keys name, seed, train, models, tasks", "see bench/profiles/smoke.yaml for the layout")
    for key in raw:
        if key not in TOP_KEYS:  # a misspelt section would otherwise be ignored (and `extends:` fill in the base's)
            _fail(path, f"has an unknown key {key!r}", did_you_mean(str(key), TOP_KEYS))
    if "extends" not in raw:
        return raw
    base_path = Path(str(raw.pop("extends")))
    if not base_path.suffix:
        base_path = PROFILE_DIR / f"{base_path}.yaml"
    if not base_path.is_file() or base_path.resolve() in seen:
        _fail(path, f"extends {base_path}, which is missing or extends this profile again", "name an existing profile that does not extend this one")
    base = _read_yaml(base_path, seen + (path.resolve(),))
    merged = {**base, **raw}  # scalars (name, description, seed) from the child
    for key in MERGED_SECTIONS:
        merged[key] = {**(base.get(key) or {}), **(raw.get(key) or {})}
    base_tasks, own_tasks = base.get("tasks") or {}, raw.get("tasks") or {}
    merged["tasks"] = {t: {**base_tasks.get(t, {}), **own_tasks.get(t, {})} for t in {**base_tasks, **own_tasks}}
    merged["conventions"] = list(base.get("conventions") or []) + list(raw.get("conventions") or [])
    return merged


def model_arch(profile: Profile, name: str) -> str:
    """Registry name of a profile entry: `model:` in its settings, else the entry name itself."""
    return (profile.models[name] or {}).get("model", name)


def _per_task(value) -> bool:
    """A model setting written per task ({denoise: 4, sr: 2})."""
    return isinstance(value, dict) and bool(value) and all(k in TASKS for k in value)


def model_kwargs(profile: Profile, model: str, task: str) -> dict:
    kwargs = dict(model_cfg(model_arch(profile, model)).task_kwargs.get(task, {}))
    for key, value in (profile.models[model] or {}).items():
        if key in ("model", "weights", "train", "gpu", "seeds", "grid"):
            continue
        if _per_task(value):
            if task not in value:
                raise HyperbenchError(f"profile {profile.source}: models.{model}.{key} gives no value for {task}",
                                      f"add `{task}: ...` to models.{model}.{key} (it has {', '.join(value)})")
            value = value[task]
        kwargs[key] = value
    kwargs["in_channels"] = get_task(task).in_channels
    return kwargs


def expand(profile: Profile, tasks=None, models=None) -> list[Entry]:
    """All table entries (and their runs) of a profile, optionally restricted to tasks/models: one per model, task and
    training seed (`seeds:`), the seeds of a model next to each other."""
    tasks = list(profile.tasks) if not tasks else tasks
    models = list(profile.models) if not models else models
    for t in tasks:
        if t not in profile.tasks:
            raise HyperbenchError(f"task {t!r} is not in profile {profile.name}", did_you_mean(t, profile.tasks))
    for m in models:
        if m not in profile.models:
            raise HyperbenchError(f"model {m!r} is not in profile {profile.name}", did_you_mean(m, profile.models))
    entries = []
    for task in tasks:
        tcfg = profile.tasks[task]
        for model in models:
            arch = model_arch(profile, model)
            cfg = model_cfg(arch)
            if task not in cfg.tasks:
                continue
            kwargs = model_kwargs(profile, model, task)
            weights = (profile.models[model] or {}).get("weights")
            if weights is not None:  # official weights, imported (bench.weights.profile_import), not trained
                if task in weights:
                    entry = Entry(model, task, kwargs, arch=arch, seed=profile.seed)
                    entry.weights = [weights[task]] if isinstance(weights[task], str) else list(weights[task])
                    entries.append(entry)
                continue
            recipe = run_recipe(arch, task)
            primary = primary_seed(profile, model, task)
            for seed in entry_seeds(profile, model, task):
                entry = Entry(model, task, kwargs, arch=arch, seed=seed, primary=seed == primary, grid=dict((profile.models[model] or {}).get("grid") or {}))
                if cfg.protocol == "bank":
                    for level in tcfg["bank_levels"]:
                        entry.runs.append(_run(profile, model, {**kwargs, "levels": [level]}, task, [level], "joint", recipe, seed))
                else:
                    levels = training_levels(recipe, tcfg["train_levels"])
                    entry.runs.append(_run(profile, model, kwargs, task, levels, cfg.protocol, recipe, seed))
                entries.append(entry)
    return entries


def _run(profile: Profile, name: str, kwargs: dict, task: str, levels, protocol: str, recipe, seed: int) -> Run:
    tcfg = profile.tasks[task]
    model = model_arch(profile, name)
    revision = model_cfg(model).revision
    control = control_levels(recipe)
    gpu = entry_gpu(profile, name)
    budget = compute_budget(entry_train(profile, name, task), model, kwargs, levels, protocol, recipe, f"profile {profile.source}, {name} ({task})")
    train = training_settings(recipe, budget, f"profile {profile.source}, {name} ({task})", bool(tcfg.get("valid_dataset")))
    if train.get("select") == "best_validation" and not tcfg.get("valid_dataset"):
        raise HyperbenchError(f"profile {profile.source}: train.select is best_validation, but task {task} names no valid_dataset",
                              f"add `valid_dataset: <a held-out set>` to tasks.{task}, or drop `select:` (the last weights are kept)")
    return Run({
        "format": RUN_FORMAT,
        "model": model,
        "model_kwargs": kwargs,
        "task": task,
        "levels": [float(v) for v in levels],
        "protocol": protocol,
        "train": train,
        "train_dataset": tcfg["train_dataset"],
        "options": training_options(recipe, task, tcfg["options"]),
        **({"control": control} if control else {}),  # the levels at control 0 and 1 (CResMD's official normalisation)
        **({"valid_dataset": tcfg.get("valid_dataset")} if train.get("select") == "best_validation" else {}),
        "seed": seed,  # training only: a profile that adds seeds keeps the runs of the seed it had
        **({"gpu": gpu} if gpu else {}),  # only when a flag is on: run ids of profiles and entries without it stay the same
        **({"revision": revision} if revision else {}),  # only when bumped: other entries keep their run ids
        **({"task_revision": get_task(task).revision} if get_task(task).revision else {}),  # likewise per task
    })
