"""Model registry in the timm style.

An entry is a factory function decorated with `register_model(...)`, which records a `ModelCfg`
(paper, licence, origin, official parameter counts, tasks, whether the model is adaptive and how it
is trained). Built-in entries and the `baselines` package arrive exactly as third-party plugins do:
through the entry-point group `hyperbench.models` (each entry point names a module to import).
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from bench.errors import HyperbenchError, did_you_mean

ENTRY_POINT_GROUP = "hyperbench.models"


@dataclass(frozen=True)
class OfficialCount:
    """An official parameter count for one configuration (the keyword arguments that build it)."""

    kwargs: dict
    params: int
    source: str
    paper_claim: str = ""


@dataclass(frozen=True)
class ModelCfg:
    name: str
    family: str
    paper: str
    licence: str
    origin: str
    tasks: tuple[str, ...]
    adaptive: bool
    # How the entry is trained: "joint" (all training levels at once), "bank" (one network per
    # level), or the name of a protocol registered in bench.protocols by the plugin.
    protocol: str
    official_counts: tuple[OfficialCount, ...] = ()
    # Small keyword arguments that build a quick-to-run variant for tests (forward/backward checks).
    test_kwargs: dict = field(default_factory=dict)
    # Keyword arguments the official code sets per task (e.g. CFSNet predicts the noise for denoising
    # only); profiles build each task's model with them unless they set the key themselves.
    task_kwargs: dict = field(default_factory=dict)
    # Bump when a change to the entry's training code changes what its runs produce: it enters the run
    # config (when > 0), so old runs are not reused. Runs of other entries keep their ids.
    revision: int = 0
    notes: str = ""


_REGISTRY: dict[str, tuple[Callable, ModelCfg]] = {}
_plugins_loaded = False


def register_model(**cfg_fields):
    """Decorator: register `fn(**kwargs) -> nn.Module` under `fn.__name__` with a ModelCfg."""

    def wrap(fn):
        fields = dict(cfg_fields)
        name = fields.pop("name", fn.__name__)
        if name in _REGISTRY and _REGISTRY[name][0] is not fn:
            raise ValueError(f"model {name!r} is registered twice")
        counts = tuple(OfficialCount(**c) if isinstance(c, dict) else c for c in fields.pop("official_counts", ()))
        cfg = ModelCfg(name=name, official_counts=counts, tasks=tuple(fields.pop("tasks")), **fields)
        _REGISTRY[name] = (fn, cfg)
        return fn

    return wrap


def load_plugins() -> None:
    """Import every module named in the `hyperbench.models` entry-point group (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    importlib.import_module("bench.hyperres")
    importlib.import_module("bench.noisenet")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not take the whole suite down
            import warnings

            warnings.warn(f"hyperbench plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)


def list_models(pattern: str = "*", adaptive: bool | None = None, task: str | None = None) -> list[str]:
    """Registered names matching an fnmatch pattern (e.g. 'ada*'), sorted."""
    load_plugins()
    names = []
    for name, (_, cfg) in _REGISTRY.items():
        if not fnmatch.fnmatch(name, pattern):
            continue
        if adaptive is not None and cfg.adaptive != adaptive:
            continue
        if task is not None and task not in cfg.tasks:
            continue
        names.append(name)
    return sorted(names)


def model_cfg(name: str) -> ModelCfg:
    load_plugins()
    if name not in _REGISTRY:
        raise HyperbenchError(f"unknown model {name!r}", did_you_mean(name, _REGISTRY) + " (see `hyperbench list`)")
    return _REGISTRY[name][1]


def create_model(name: str, **kwargs):
    """Build a registered model; the module gets `.cfg` (ModelCfg) and `.build_kwargs` attributes."""
    cfg = model_cfg(name)
    fn = _REGISTRY[name][0]
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
