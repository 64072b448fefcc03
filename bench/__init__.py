"""hyperbench: a reproducibility benchmark for adaptive image restoration (HyperRes and its baselines).

The names below are the stable API for plugins (see docs/adding-a-baseline.md): import them from
`bench`, not from the modules that define them. They are loaded on first use, so importing `bench`
(every command line start does) costs nothing until a name is needed.
"""

import importlib

from bench.version import __version__

_EXPORTS = {
    # the model registry and the catalogue of entries
    "register_model": "bench.models.registry",
    "ModelCfg": "bench.models.registry",
    "OfficialCount": "bench.models.registry",
    "create_model": "bench.models.catalog",
    "list_models": "bench.models.catalog",
    "model_cfg": "bench.models.catalog",
    "count_params": "bench.models.catalog",
    "param_count": "bench.models.catalog",
    # levels and inputs
    "get_task": "bench.tasks.task",
    "Task": "bench.tasks.task",
    "as_level_tensor": "bench.models.layers",
    "check_input": "bench.models.layers",
    # building blocks: initialisation, the per-level bank, the control interface of modulated networks
    "kaiming_scaled_init": "bench.models.layers",
    "conv3x3": "bench.models.layers",
    "PerLevelBank": "bench.models.bank",
    "EndpointControl": "bench.models.control",
    # training: a protocol of one's own, on the suite's resumable, deterministic loop
    "register_protocol": "bench.training.protocols",
    "optimise": "bench.training.loop",
    "degraded_batch": "bench.training.crops",
    "HyperbenchError": "bench.common.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
