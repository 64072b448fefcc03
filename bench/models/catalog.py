"""The model catalogue: finds every entry (built-in and plugin) and answers look-ups.

Entries arrive through the entry-point group `hyperbench.models`: every module named there is imported
once, and importing it registers its entries (`bench.models.registry.register_model`). This
distribution's own entry modules are listed in `BUILTIN` as well (the same as its entry points in
pyproject.toml; a test keeps the two equal) and are imported from this tree directly, so the built-in
models are found when the installed entry-point metadata is absent (a tree run without installing it)
or stale (an editable install made before a module moved).
"""

from __future__ import annotations

import fnmatch
import importlib
import warnings
from importlib.metadata import entry_points

from bench.common.errors import HyperbenchError, did_you_mean
from bench.models.registry import ModelCfg, registered

ENTRY_POINT_GROUP = "hyperbench.models"
OWN_PACKAGES = ("bench", "baselines")  # this distribution's packages: their entry modules are BUILTIN
BUILTIN = {
    "hyperres": "bench.models.hyperres",
    "noisenet": "bench.models.noisenet",
    "plain": "baselines.plain",
    "adafm": "baselines.adafm",
    "cfsnet": "baselines.cfsnet",
    "dni": "baselines.dni",
    "cresmd": "baselines.cresmd",
    "hinet": "baselines.hinet",
    "ffdnet": "baselines.ffdnet",
}
_loaded = False


def plugin_entry_points() -> list:
    """The group's entry points into other packages. Those into this distribution's packages are
    passed over: BUILTIN imports them from the tree, and metadata installed before a module moved
    would name a module that is gone."""
    return [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.module.split(".")[0] not in OWN_PACKAGES]


def load_models() -> None:
    """Import the built-in entry modules and every plugin module of the entry-point group (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN.values():
        importlib.import_module(module)
    for ep in plugin_entry_points():
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not take the whole suite down
            warnings.warn(f"hyperbench plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)


def list_models(pattern: str = "*", adaptive: bool | None = None, task: str | None = None) -> list[str]:
    """Registered names matching an fnmatch pattern (e.g. 'ada*'), sorted."""
    load_models()
    names = []
    for name, (_, cfg) in registered().items():
        if not fnmatch.fnmatch(name, pattern):
            continue
        if adaptive is not None and cfg.adaptive != adaptive:
            continue
        if task is not None and task not in cfg.tasks:
            continue
        names.append(name)
    return sorted(names)


def model_cfg(name: str) -> ModelCfg:
    load_models()
    if name not in registered():
        raise HyperbenchError(f"unknown model {name!r}", did_you_mean(name, registered()) + " (see `hyperbench list`)")
    return registered()[name][1]


def create_model(name: str, **kwargs):
    """Build a registered model; the module gets `.cfg` (ModelCfg) and `.build_kwargs` attributes."""
    cfg = model_cfg(name)
    fn = registered()[name][0]
    try:
        model = fn(**kwargs)
    except TypeError as exc:
        raise HyperbenchError(f"model {name!r} does not accept these arguments: {exc}", "check the model's keyword arguments in your profile") from exc
    model.cfg = cfg
    model.build_kwargs = dict(kwargs)
    return model


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def param_count(name: str, **kwargs) -> int:
    """Parameter count of an entry, built on the meta device (no memory, no initialisation work)."""
    import torch

    with torch.device("meta"):
        return count_params(create_model(name, **kwargs))
