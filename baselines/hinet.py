"""HINet (Chen et al., "HINet: Half Instance Normalization Network for Image Restoration", CVPRW 2021),
a non-adaptive reference.

Two stages, each a U-Net of depth 5 (channels width * 2^i). Encoder block: 3x3 conv, instance norm
(affine) on the first half of the channels at the HIN levels (default 0-4), LeakyReLU 0.2, 3x3 conv,
LeakyReLU 0.2, plus a 1x1 conv shortcut; 4x4 stride-2 conv (no bias) down. Decoder: 2x2 transposed
conv up, concat with the 3x3-conv-processed skip, block without HIN. A supervised attention module
(SAM) gives the stage-1 image and gated features; stage 2 starts from conv(input) fused (1x1 conv)
with them, and its encoder adds 3x3 convs of the stage-1 encoder and decoder features (cross-stage
feature fusion). Final 3x3 conv + input (global residual). Default PyTorch init: the official
orthogonal initialiser is defined but never called.

`model(x, level)` ignores the level and returns the stage-2 image; `stages(x)` gives both images for
the loss: L1 per stage, summed (the official denoising recipe, options/train/SIDD/HINet.yml; the
deblurring configs use a PSNR loss instead). Inputs of any size (odd ones too) are padded by
replication to a multiple of 16 (four down-samplings), at least 32 so the coarsest instance norm sees
more than one pixel, and cropped back.
"""

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from baselines.plain import PerLevelBank
from baselines.training import placed
from bench.models.layers import as_level_tensor, check_input, conv3x3
from bench.models.registry import register_model
from bench.training.crops import Objective
from bench.training.loop import optimise
from bench.training.protocols import register_protocol

DEPTH = 5
SLOPE = 0.2
class UNetBlock(nn.Module):
    """Two 3x3 convs with LeakyReLU and a 1x1 shortcut; optional half instance norm, cross-stage
    fusion inputs and a stride-2 down conv (then it returns (down, features))."""

    def __init__(self, cin: int, cout: int, half_norm: bool = False, down: bool = False, fusion: bool = False):
        super().__init__()
        self.conv1 = conv3x3(cin, cout)
        self.conv2 = conv3x3(cout, cout)
        self.shortcut = nn.Conv2d(cin, cout, 1)
        self.norm = nn.InstanceNorm2d(cout // 2, affine=True) if half_norm else None
        self.fuse_enc = conv3x3(cout, cout) if fusion else None
        self.fuse_dec = conv3x3(cout, cout) if fusion else None
        self.down = nn.Conv2d(cout, cout, 4, stride=2, padding=1, bias=False) if down else None

    def forward(self, x, enc=None, dec=None):
        y = self.conv1(x)
        if self.norm is not None:
            half = y.shape[1] // 2
            y = torch.cat([self.norm(y[:, :half]), y[:, half:]], dim=1)
        y = F.leaky_relu(self.conv2(F.leaky_relu(y, SLOPE)), SLOPE) + self.shortcut(x)
        if self.fuse_enc is not None:
            y = y + self.fuse_enc(enc) + self.fuse_dec(dec)
        if self.down is None:
            return y
        return self.down(y), y


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.skip = conv3x3(cout, cout)
        self.block = UNetBlock(2 * cout, cout)

    def forward(self, x, skip):
        return self.block(torch.cat([self.up(x), self.skip(skip)], dim=1))


class UNet(nn.Module):
    """One HINet stage: input conv, encoder (with HIN), decoder."""

    def __init__(self, in_channels: int, width: int, hin_levels, fusion: bool):
        super().__init__()
        lo, hi = hin_levels
        chans = [width * 2**i for i in range(DEPTH)]
        self.conv_in = conv3x3(in_channels, width)
        self.encoder = nn.ModuleList(
            UNetBlock(chans[max(i - 1, 0)], chans[i], half_norm=lo <= i <= hi, down=i < DEPTH - 1, fusion=fusion and i < DEPTH - 1)
            for i in range(DEPTH)
        )
        self.decoder = nn.ModuleList(UpBlock(chans[i + 1], chans[i]) for i in reversed(range(DEPTH - 1)))

    def forward(self, feat, fused=None):
        """feat: features after the input conv; fused: (encoder, decoder) features of the previous stage."""
        encs = []
        for i, block in enumerate(self.encoder[:-1]):
            extra = (fused[0][i], fused[1][i]) if fused else (None, None)
            feat, skip = block(feat, *extra)
            encs.append(skip)
        feat = self.encoder[-1](feat)
        decs = []
        for block, skip in zip(self.decoder, reversed(encs)):
            feat = block(feat, skip)
            decs.append(feat)
        return feat, encs, decs[::-1]  # decoder features listed from the finest level, like encs


class SupervisedAttention(nn.Module):
    def __init__(self, width: int, channels: int):
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.conv2 = conv3x3(width, channels)
        self.conv3 = conv3x3(channels, width)

    def forward(self, feat, image):
        restored = self.conv2(feat) + image
        return self.conv1(feat) * torch.sigmoid(self.conv3(restored)) + feat, restored


class HINet(nn.Module):
    def __init__(self, width: int = 64, in_channels: int = 3, hin_levels=(0, 4)):
        super().__init__()
        self.in_channels = in_channels
        self.stage1 = UNet(in_channels, width, hin_levels, fusion=False)
        self.stage2 = UNet(in_channels, width, hin_levels, fusion=True)
        self.sam = SupervisedAttention(width, in_channels)
        self.merge = nn.Conv2d(2 * width, width, 1)
        self.last = conv3x3(width, in_channels)

    def stages(self, x):
        """(stage-1 image, stage-2 image), both the size of x."""
        check_input(x, self.in_channels, "HINet", even=False)  # any size: padded to the U-Net's multiple here
        h, w = x.shape[-2:]
        # The official network does not pad (megvii-model/HINet basicsr/models/archs/hinet_arch.py, HINet.forward
        # needs sides divisible by 16); its deraining and deblurring test configs (options/test/Rain13k/HINet-Rain100H.yml,
        # GoPro/HINet-GoPro.yml: grids: true, crop_size: 256) run overlapping 256 x 256 tiles and average them
        # (basicsr/models/image_restoration_model.py, ImageRestorationModel.grids, line 123 at 033ed3a), which fails
        # on images under 256 pixels (Set5); SIDD's test inputs are 256 x 256 crops. So ours pads by replication to
        # the multiple and crops back: sizes already divisible (and at least 32) are unchanged.
        image = F.pad(x, (0, _padded(w) - w, 0, _padded(h) - h), mode="replicate")
        feat1, encs, decs = self.stage1(self.stage1.conv_in(image))
        sam_feat, out1 = self.sam(feat1, image)
        feat2 = self.merge(torch.cat([self.stage2.conv_in(image), sam_feat], dim=1))
        feat2, _, _ = self.stage2(feat2, fused=(encs, decs))
        out2 = self.last(feat2) + image
        return out1[..., :h, :w], out2[..., :h, :w]

    def forward(self, x, level=None):
        return self.stages(x)[1]

    def training_loss(self, x, y, level=None):
        return sum(F.l1_loss(out, y) for out in self.stages(x))  # official SIDD recipe: L1 on both stages


def _padded(n: int) -> int:
    step = 2 ** (DEPTH - 1)
    return max(-(-n // step) * step, 2 * step)


class HINetBank(PerLevelBank):
    """One HINet per level; trains each member with the HINet loss (the optimiser recipe is the run's)."""

    def training_loss(self, x, y, level):
        levels = as_level_tensor(level, x.shape[0], x.device)
        total = 0.0
        for v in torch.unique(levels):
            idx = (levels == v).nonzero(as_tuple=True)[0]
            total = total + self.member(float(v)).training_loss(x[idx], y[idx]) * (len(idx) / len(levels))
        return total


@register_protocol("hinet")
def train_hinet_blind(model: HINet, rundir, crops) -> dict:
    """Blind: one network for all training levels; each patch gets a level drawn from the run's levels."""
    run = rundir.run.config
    train = run["train"]
    place = placed(model, run)

    def loss_fn(batch):
        x, y, _ = place.batch(*batch, 1)
        with place.autocast():
            return model.training_loss(x, y)

    def draw(rng, n):
        return [float(v) for v in rng.choice(run["levels"], size=n)]

    draws = crops.drawn_batches(draw, f"hinet one of {run['levels']}")
    final = optimise(model, model.parameters(), Objective(draws, loss_fn), train["steps"], train, rundir, "hinet", run["seed"])
    return {"final_loss": final, "steps": train["steps"]}


_SRC = "megvii-model/HINet/basicsr/models/archs/hinet_arch.py"
_COUNTS = [
    {"kwargs": {"width": 64}, "params": 88_669_702, "source": _SRC + " (options/train/SIDD/HINet.yml, Rain13k)"},
    {"kwargs": {"width": 32}, "params": 22_176_518, "source": _SRC + " (options/train/SIDD/HINet_0.5x.yml)"},
    {"kwargs": {"width": 64, "hin_levels": (3, 4)}, "params": 88_668_806, "source": _SRC + " (options/train/GoPro/HINet.yml)"},
]
_ORIGIN = dict(
    family="hinet",
    recipe=str(Path(__file__).with_name("recipes") / "hinet.yaml"),
    paper="Chen, Lu, Zhang, Chu & Chen, HINet: Half Instance Normalization Network for Image Restoration, CVPRW 2021",
    licence="MIT (megvii-model/HINet README, LICENSE section, at 0cfa28b; no licence file; built on BasicSR, Apache-2.0)",
    origin="https://github.com/megvii-model/HINet",
    tasks=("denoise", "dejpeg", "sr"),
    adaptive=False,
    revision=2,  # 1: official optimiser recipe (betas, cosine, clipping); 2: SIDD denoising recipe (L1 on both stages)
)


@register_model(protocol="hinet", official_counts=_COUNTS, test_kwargs={"width": 4},
                notes="blind: one network trained over all training levels (level drawn per patch); ignores the level", **_ORIGIN)
def hinet(width: int = 64, in_channels: int = 3, hin_levels=(0, 4)):
    return HINet(width=width, in_channels=in_channels, hin_levels=tuple(hin_levels))


@register_model(
    protocol="bank",
    official_counts=[{"kwargs": {"levels": [15.0], "width": 32}, "params": 22_176_518, "source": _SRC + " (one HINet 0.5x per level)"}],
    test_kwargs={"levels": [15.0, 50.0], "width": 4},
    notes="one HINet per level (trained with the HINet loss); the nearest trained level answers",
    **_ORIGIN,
)
def hinet_bank(levels=(15.0,), width: int = 64, in_channels: int = 3, hin_levels=(0, 4)):
    return HINetBank(levels, lambda: HINet(width=width, in_channels=in_channels, hin_levels=tuple(hin_levels)))
