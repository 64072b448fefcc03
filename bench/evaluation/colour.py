"""Networks evaluated as they were trained on a task of another channel count (official checkpoints).

A colour network on a luma task (an official colour checkpoint in Table 1, whose convention is luma): the
luma image is given as the gray colour image R = G = B, and the luma of the restored colour image
(0.299 R + 0.587 G + 0.114 B on the float output: OpenCV's float RGB2GRAY weights; the uint8 luma images
were made with their 15-bit fixed-point form, bench.data.images.rgb_to_luma) is scored. A gray network
on a colour task (CFSNet's released gray denoiser on CBSD68) restores each colour channel on its own, as
gray denoisers are applied to colour images."""

from __future__ import annotations

import torch
from torch import nn

LUMA = (0.299, 0.587, 0.114)


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def __getattr__(self, name):  # control_for, nearest_level, endpoints...: the wrapped network's
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["model"], name)


class ColourOnLuma(_Wrapper):
    in_channels = 1

    def forward(self, x, level):
        y = self.model(x.expand(-1, 3, -1, -1), level)
        return (y * torch.tensor(LUMA, device=y.device, dtype=y.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)


class GrayOnColour(_Wrapper):
    in_channels = 3

    def forward(self, x, level):
        n, c, h, w = x.shape
        level = torch.as_tensor(level, dtype=torch.float32).flatten()
        per_channel = level.repeat_interleave(c) if level.numel() > 1 else level  # each image's level for its channels
        return self.model(x.reshape(n * c, 1, h, w), per_channel).reshape(n, c, h, w)


def fit_channels(model: nn.Module, in_channels: int, what: str) -> nn.Module:
    """The model as the task sees it: a colour model on a luma task through ColourOnLuma; other
    mismatches are errors."""
    have = getattr(model, "in_channels", in_channels)
    if have == in_channels:
        return model
    if have == 3 and in_channels == 1:
        return ColourOnLuma(model)
    if have == 1 and in_channels == 3:
        return GrayOnColour(model)
    from bench.common.errors import HyperbenchError

    raise HyperbenchError(f"{what} takes {have}-channel images, the task {in_channels}-channel ones",
                          "evaluate it on a task with its channel count")
