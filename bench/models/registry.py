"""Model registry in the timm style: the store of entries and the decorator that fills it.

An entry is a factory function decorated with `register_model(...)`, which records a `ModelCfg`
(paper, licence, origin, official parameter counts, tasks, whether the model is adaptive and how it
is trained). This module imports no model: model modules import it. Finding the entries (entry
points, the built-ins) and looking them up is `bench.models.catalog`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


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
    # level), or the name of a protocol registered with bench.training.protocols.register_protocol.
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
    # How many times a run trains the profile's `steps` (staged protocols: AdaFM, CFSNet, DNI train two stages).
    train_stages: int = 1
    # Path of the entry's official training recipe (YAML, see bench.training.recipes); "" when it has none.
    recipe: str = ""


_REGISTRY: dict[str, tuple[Callable, ModelCfg]] = {}


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


def registered() -> dict[str, tuple[Callable, ModelCfg]]:
    """The entries registered so far: name -> (factory, ModelCfg). Look-ups go through the catalog."""
    return _REGISTRY
