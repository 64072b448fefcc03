"""Training compute of a run: FLOPs of one training step, counted with torch's FlopCounterMode.

The forward FLOPs of one crop are counted on two small inputs and fitted as a + b * pixels (the weight
generation of a hypernetwork is the constant part), then scaled to the run's crop. A training step is
taken as 3 forwards (the backward pass costs about two), times the crops of a step (batch x levels for
jointly trained runs). FLOP counts are analytic, so they are the same on every machine.
"""

from __future__ import annotations

import json

from bench.models.catalog import create_model

PROBE_SIDES = (32, 64)  # the smallest sides every entry takes (HINet pads to 32)
BACKWARD_FACTOR = 3  # forward + backward of a step, in forwards


def forward_flops_fit(arch: str, kwargs_json: str, level: float) -> tuple[float, float]:
    """(constant, per pixel) forward FLOPs of one image, from two probe sizes (kwargs as JSON: a cache key). The
    count depends on the shapes alone, not on the level's value, so one count serves every level of a model."""
    return _fit(arch, kwargs_json, level) if (arch, kwargs_json) not in _FITS else _FITS[(arch, kwargs_json)]


_FITS: dict = {}


def _fit(arch: str, kwargs_json: str, level: float) -> tuple[float, float]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(arch, **json.loads(kwargs_json)).eval()
    counts = []
    for side in PROBE_SIDES:
        x = torch.zeros(1, model.in_channels, side, side)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, torch.tensor([float(level)]))
        counts.append(counter.get_total_flops())
    (s0, s1), (f0, f1) = PROBE_SIDES, counts
    per_pixel = (f1 - f0) / (s1 * s1 - s0 * s0)
    _FITS[(arch, kwargs_json)] = (f0 - per_pixel * s0 * s0, per_pixel)
    return _FITS[(arch, kwargs_json)]


def step_flops(arch: str, model_kwargs: dict, levels, protocol: str, batch: int, crop: int) -> float:
    """FLOPs of one training step of a run (all its crops, forward and backward)."""
    const, per_pixel = forward_flops_fit(arch, json.dumps(model_kwargs, sort_keys=True), float(levels[0]))
    crops = batch * (len(levels) if protocol == "joint" else 1)
    return BACKWARD_FACTOR * (const + per_pixel * crop**2) * crops
