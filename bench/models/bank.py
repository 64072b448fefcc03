"""The per-level bank: one independent network per trained level, as a single model.

`model(x, level)` runs the member trained for the nearest level (the evaluation records that level as
the input level). Entries registered with `protocol="bank"` return one: the profile trains one run per
level of `bank_levels`, and the evaluation fills the bank member by member from those runs.
"""

import torch
from torch import nn


def level_key(level: float) -> str:
    return f"{float(level):g}"


class PerLevelBank(nn.Module):
    """One independent network per level; `model(x, level)` dispatches to the nearest trained level."""

    def __init__(self, levels, make_member):
        super().__init__()
        if not levels:
            raise ValueError("a per-level bank needs at least one level")
        self.levels = sorted(float(v) for v in levels)
        self.members = nn.ModuleDict({level_key(v): make_member() for v in self.levels})
        self.in_channels = next(iter(self.members.values())).in_channels

    def nearest_level(self, level: float) -> float:
        return min(self.levels, key=lambda v: (abs(v - float(level)), v))

    def member(self, level: float) -> nn.Module:
        return self.members[level_key(self.nearest_level(level))]

    def forward(self, x, level):
        levels = torch.as_tensor(level, dtype=torch.float32).flatten()
        if levels.numel() == 1:
            return self.member(float(levels[0]))(x)
        out = None
        for v in torch.unique(levels):
            idx = (levels == v).nonzero(as_tuple=True)[0]
            part = self.member(float(v))(x[idx])
            if out is None:  # the members' output dtype (bf16 under autocast), not the input's
                out = x.new_empty(x.shape, dtype=part.dtype)
            out[idx] = part
        return out
