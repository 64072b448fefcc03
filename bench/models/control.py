"""The control interface of a modulated network between two trained levels (AdaFM lambda, CFSNet
alpha, DNI alpha, CResMD condition). The control is linear in the level between the two levels the
model was trained at, which live in the `endpoints` buffer so a checkpoint maps levels correctly after
loading."""

from __future__ import annotations

import torch
from torch import nn

from bench.common.errors import HyperbenchError


class EndpointControl(nn.Module):
    """Base class: `model(x, level) == model.forward_control(x, model.control_for(level))`.

    The control is `control_at_start` at endpoints[0] and `control_at_end` at endpoints[1], linear in
    between and beyond (not clipped, so extrapolation is possible). Subclasses implement forward_control.
    """

    control_name = "control"
    control_at_start, control_at_end = 0.0, 1.0

    def __init__(self, start: float, end: float):
        super().__init__()
        self.register_buffer("endpoints", torch.tensor([float(start), float(end)]))

    def set_endpoints(self, start: float, end: float) -> None:
        if float(start) == float(end):
            raise HyperbenchError(
                f"{type(self).__name__} needs two different training levels, got {start:g} twice",
                "train it on at least two levels (the first and last of the run's levels are its endpoints)",
            )
        self.endpoints.copy_(torch.tensor([float(start), float(end)]))

    def _controls(self, levels: torch.Tensor) -> torch.Tensor:
        start, end = self.endpoints.tolist()
        t = (levels - start) / (end - start)
        return self.control_at_start + t * (self.control_at_end - self.control_at_start)

    def control_for(self, level: float) -> float:
        return float(self._controls(torch.tensor(float(level), dtype=torch.float64)))

    def forward(self, x, level):
        levels = torch.as_tensor(level, dtype=torch.float64).flatten()  # float64 as in control_for: same numbers
        return self.forward_control(x, self._controls(levels).float())

    def forward_control(self, x, control):
        raise NotImplementedError
