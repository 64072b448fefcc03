"""Building blocks shared by the HyperRes family and the plain per-level networks."""

import torch
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def kaiming_scaled_init(module: nn.Module, scale: float = 0.1) -> None:
    """Kaiming-normal (fan_in) x scale for every Conv and Linear weight, zero biases.

    This is the official HyperRes/AdaFM init (x0.1); without the scale, residual stacks diverge.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3 -> + input (no norm, no activation after the add)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.conv2 = conv3x3(width, width)

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(x)))


class Head(nn.Module):
    """Stride-2 3x3 conv into feature space (half resolution)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv1 = conv3x3(in_channels, width, stride=2)

    def forward(self, x):
        return self.conv1(x)


class Tail(nn.Module):
    """LR conv + global feature skip, then x2 pixel-shuffle back to full resolution and two convs."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.conv2 = conv3x3(width, width)
        self.conv3 = conv3x3(width, 4 * width)
        self.conv4 = conv3x3(width, width)
        self.conv5 = conv3x3(width, out_channels)

    def forward(self, body, skip):
        x = self.conv2(body) + skip
        x = torch.relu(nn.functional.pixel_shuffle(self.conv3(x), 2))
        return self.conv5(torch.relu(self.conv4(x)))


def check_input(x: torch.Tensor, in_channels: int, name: str, even: bool = True) -> None:
    """Clear errors for inputs the stride-2 head / pixel-shuffle tail cannot take; `even=False` for
    networks that take any size (stride-1 convolutions only, or padding of their own)."""
    from bench.common.errors import HyperbenchError

    if x.ndim != 4:
        raise HyperbenchError(f"{name} expects a batch N x C x H x W, got shape {tuple(x.shape)}", "add a batch dimension")
    if x.shape[1] != in_channels:
        kind = "RGB" if in_channels == 3 else "single-channel (gray/Y)"
        raise HyperbenchError(
            f"{name} was built for {in_channels} input channel(s) ({kind}) but got {x.shape[1]}",
            f"convert the image (RGB <-> luma) or build the model with in_channels={x.shape[1]}",
        )
    h, w = x.shape[-2:]
    if even and (h % 2 or w % 2 or min(h, w) < 4):
        raise HyperbenchError(
            f"{name} needs even height and width of at least 4 (stride-2 head, x2 pixel shuffle), got {h}x{w}",
            "modcrop the image to a multiple of 2 (bench.data.images.modcrop)",
        )
    if min(h, w) < 1:
        raise HyperbenchError(f"{name} got an empty image ({h}x{w})", "give an image of at least 1 x 1 pixels")


def as_level_tensor(level, n: int, device) -> torch.Tensor:
    """A level given as a number, a sequence or a tensor -> float tensor of shape [n]."""
    t = torch.as_tensor(level, dtype=torch.float32, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"got {t.numel()} levels for a batch of {n}")
    if not torch.isfinite(t).all():
        raise ValueError("level must be finite")
    return t


