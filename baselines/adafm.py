"""AdaFM (He et al., "Modulating Image Restoration with Continual Levels via Adaptive Feature
Modification Layers", CVPR 2019).

The basic network is the plain per-level network (stride-2 head, 16 res blocks, LR conv + global
skip, pixel-shuffle tail; same parameter names as baselines.plain.PlainResNet). An AdaFM layer, a
depthwise conv in residual form y = x + lambda * dwconv(x), follows each res-block conv and the LR
conv (33 layers). lambda scales the layer's weight and bias (official interpolation), so lambda 0 is
the basic model trained at the start level and lambda 1 the model fine-tuned for the end level.

Level -> lambda: linear between the two trained levels, lambda = (level - start) / (end - start),
not clipped. The levels are stored in the `endpoints` buffer, set by the "adafm" protocol from the
run's first and last level; default (15, 75), the official denoising range (noise15to75).
"""

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from baselines.training import fixed_level_l1, freeze_all_but, placed, train_stages
from bench.models.control import EndpointControl
from bench.models.layers import Head, Tail, as_level_tensor, check_input, conv3x3, kaiming_scaled_init
from bench.models.registry import register_model
from bench.training.protocols import register_protocol

DEFAULT_ENDPOINTS = (15.0, 75.0)  # official denoising start/end levels (noise15to75); protocols overwrite them


class AdaFMLayer(nn.Module):
    """y = x + lambda * (depthwise conv(x) + bias); zero-initialised, so it starts as the identity."""

    def __init__(self, width: int, ksize: int):
        super().__init__()
        self.conv = nn.Conv2d(width, width, ksize, padding=ksize // 2, groups=width)
        self.reset()

    def reset(self) -> None:
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x, lam):
        if self.conv.kernel_size == (1, 1):
            # A 1x1 depthwise conv is a per-channel affine map; computing it elementwise gives the same
            # numbers and avoids oneDNN's very slow depthwise path on CPU (~100x here).
            y = x * self.conv.weight.view(1, -1, 1, 1) + self.conv.bias.view(1, -1, 1, 1)
        else:
            y = self.conv(x)
        return x + lam.view(-1, 1, 1, 1) * y


class AdaFMResBlock(nn.Module):
    def __init__(self, width: int, ksize: int):
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.adafm1 = AdaFMLayer(width, ksize)
        self.conv2 = conv3x3(width, width)
        self.adafm2 = AdaFMLayer(width, ksize)

    def forward(self, x, lam):
        y = torch.relu(self.adafm1(self.conv1(x), lam))
        return x + self.adafm2(self.conv2(y), lam)


class AdaFMNet(EndpointControl):
    control_name = "lambda"

    def __init__(self, blocks: int = 16, width: int = 64, in_channels: int = 3, ksize: int = 1):
        super().__init__(*DEFAULT_ENDPOINTS)
        self.in_channels = in_channels
        self.head = Head(in_channels, width)
        self.blocks = nn.ModuleList(AdaFMResBlock(width, ksize) for _ in range(blocks))
        self.tail = Tail(width, in_channels)
        self.adafm_lr = AdaFMLayer(width, ksize)
        kaiming_scaled_init(self)
        self.reset_adafm()

    def adafm_layers(self) -> list[AdaFMLayer]:
        return [m for m in self.modules() if isinstance(m, AdaFMLayer)]

    def reset_adafm(self) -> None:
        for layer in self.adafm_layers():
            layer.reset()

    def adafm_parameters(self) -> list[nn.Parameter]:
        return [p for layer in self.adafm_layers() for p in layer.parameters()]

    def basic_parameters(self) -> list[nn.Parameter]:
        adafm = {id(p) for p in self.adafm_parameters()}
        return [p for p in self.parameters() if id(p) not in adafm]

    def forward_control(self, x, control):
        check_input(x, self.in_channels, "AdaFM")
        lam = as_level_tensor(control, x.shape[0], x.device)
        skip = self.head(x)
        feat = skip
        for block in self.blocks:
            feat = block(feat, lam)
        # Tail with the AdaFM layer after the LR conv, before the global skip.
        t = self.tail
        feat = self.adafm_lr(t.conv2(feat), lam) + skip
        feat = torch.relu(F.pixel_shuffle(t.conv3(feat), 2))
        return t.conv5(torch.relu(t.conv4(feat)))


@register_protocol("adafm")
def train_adafm(model: AdaFMNet, rundir, crops) -> dict:
    """Stage "basic": the basic model (AdaFM off, lambda 0) at the start level. Stage "adafm": everything
    else frozen, AdaFM layers zero-initialised (the net starts as the basic model) and trained with
    lambda 1 at the end level. train["steps"] steps each, L1 (official AdaFM)."""
    run = rundir.run.config
    start, end = run["levels"][0], run["levels"][-1]
    model.set_endpoints(start, end)
    place = placed(model, run)

    def basic():
        return freeze_all_but(model, model.basic_parameters()), fixed_level_l1(lambda x: model.forward_control(x, 0.0), crops, run, start, place)

    def adafm():
        model.reset_adafm()
        return freeze_all_but(model, model.adafm_parameters()), fixed_level_l1(lambda x: model.forward_control(x, 1.0), crops, run, end, place)

    return train_stages(model, rundir, [("basic", basic), ("adafm", adafm)])


_SRC = "hejingwenhejingwen/AdaFM/codes/models/modules/architecture.py (AdaResNet, norm_type adafm)"
_COUNTS = [
    {"kwargs": {"ksize": 1}, "params": 1_411_011, "source": _SRC, "paper_claim": "1.41e6"},
    {"kwargs": {"ksize": 3}, "params": 1_427_907, "source": _SRC},
    {"kwargs": {"ksize": 5}, "params": 1_461_699, "source": _SRC},
    {"kwargs": {"ksize": 7}, "params": 1_512_387, "source": _SRC},
    {"kwargs": {"ksize": 1, "in_channels": 1}, "params": 1_408_705, "source": _SRC + ", in/out 1 (no official config)"},
]


@register_model(
    family="adafm",
    recipe=str(Path(__file__).with_name("recipes") / "adafm.yaml"),
    paper="He, Dong & Qiao, Modulating Image Restoration with Continual Levels via Adaptive Feature Modification Layers, CVPR 2019",
    licence="none stated: hejingwenhejingwen/AdaFM has no licence file or statement (checked at 64a8fe9)",
    origin="https://github.com/hejingwenhejingwen/AdaFM",
    tasks=("denoise", "dejpeg", "sr"),
    adaptive=True,
    protocol="adafm",
    train_stages=2,
    official_counts=_COUNTS,
    test_kwargs={"blocks": 2, "width": 8},
    notes="lambda = (level - start) / (end - start) between the two trained levels (not clipped); official start->end: noise 15->75, JPEG 80->10, SR x3->x4",
)
def adafm(blocks: int = 16, width: int = 64, in_channels: int = 3, ksize: int = 1):
    return AdaFMNet(blocks=blocks, width=width, in_channels=in_channels, ksize=ksize)
