"""HyperRes' blind noise-level estimator ("NoiseNet") and its trainer (its official weights: noisenet_official).

Architecture (facts from ifryed/HyperRes models/NoiseNet.py, see ../shared/reference/weights/README.md;
our own code): stride-2 3x3 conv 3 -> 64, four [residual block, 2x2 max-pool] stages, flatten
64 x 4 x 4, then Linear 1024 -> 32 -> 16 -> 1. The output is the AWGN sigma on the 0-255 scale.
The state-dict keys match the official `noise_detect.pth`, which loads strictly.

The FC head needs a fixed 128 x 128 input. The official forward takes one random crop (numpy RNG);
here `estimate` averages `crops` crops whose positions are seeded from (seed, H, W), so the same
image always gets the same estimate. Images smaller than a crop are mirror-tiled up to it, which
keeps the noise statistics and adds no seams.

Training (protocol "noisenet"): L1 between the estimate and the sigma, one integer sigma drawn
uniformly from [levels[0], levels[1]] (official: 0..100) per crop, noise added to 0-255 pixels,
clipped, not re-quantised (the official data convention). Adam with weight decay 0 (the official
script's weight_decay 0.9 would pull every weight to zero), the final bias starts at the mid-range
sigma so the L1 regression starts centred.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bench.common.errors import HyperbenchError
from bench.data.images import to_tensor
from bench.models.layers import ResBlock, conv3x3, kaiming_scaled_init
from bench.models.registry import register_model
from bench.tasks.degradations import add_noise, seeded_rng
from bench.training.loop import optimise
from bench.training.protocols import register_protocol

CROP = 128  # the official FC head sees 64 channels x 4 x 4 after a stride-2 conv and four 2x2 pools


class NoiseNet(nn.Module):
    """`estimate(x)` -> sigma (0-255) per image; `model(x, level)` -> that sigma as a noise-level map."""

    def __init__(self, width: int = 64, crop: int = CROP, crops: int = 8, seed: int = 0):
        super().__init__()
        if crop % 32 or crop < 32:
            raise HyperbenchError(f"NoiseNet crop {crop} is not a multiple of 32", "use crop=128 (the official size) or another multiple of 32")
        if crops < 1:
            raise HyperbenchError(f"NoiseNet needs at least one crop, got crops={crops}", "use crops >= 1 (8 is the default)")
        self.in_channels = 3
        self.crop, self.crops, self.seed = crop, crops, seed
        self.conv1 = conv3x3(3, width, stride=2)
        stages = []
        for _ in range(4):
            stages += [ResBlock(width), nn.MaxPool2d(2)]
        self.conv_seq = nn.Sequential(*stages)
        side = crop // 32
        self.fc_seq = nn.Sequential(nn.Linear(width * side * side, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))
        kaiming_scaled_init(self)
        nn.init.constant_(self.fc_seq[4].bias, 50.0)  # mid-range of the official sigma range 0..100

    def forward_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """crop x crop patches (N x 3 x crop x crop) -> N sigma estimates."""
        feat = self.conv_seq(self.conv1(crops))
        return self.fc_seq(feat.flatten(1))[:, 0]

    def crop_positions(self, h: int, w: int) -> list[tuple[int, int]]:
        if h == self.crop and w == self.crop:
            return [(0, 0)]
        rng = seeded_rng("noisenet-crops", self.seed, h, w)
        return [(int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))) for _ in range(self.crops)]

    def crops_of(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W in [0, 1] -> the seeded crops, crop-major: (crops * N) x 3 x crop x crop."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise HyperbenchError(f"NoiseNet expects RGB batches N x 3 x H x W, got shape {tuple(x.shape)}", "give an RGB image (replicate a gray one to 3 channels)")
        x = mirror_tile(x, self.crop)
        return torch.cat([x[..., t : t + self.crop, s : s + self.crop] for t, s in self.crop_positions(x.shape[-2], x.shape[-1])])

    def estimate(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W in [0, 1] -> N sigma estimates: the mean over the seeded crops."""
        return self.forward_crops(self.crops_of(x)).view(-1, x.shape[0]).mean(0)

    def forward(self, x, level=None):
        # The zoo interface is image in, image-shaped out: a constant noise-level map per image (the
        # input a non-blind denoiser such as FFDNet takes). The level is ignored: this model finds it.
        return self.estimate(x)[:, None, None, None].expand_as(x)


def mirror_tile(x: torch.Tensor, size: int) -> torch.Tensor:
    """Extend H and W to at least `size` by appending mirrored copies (no seams, same noise statistics)."""
    while x.shape[-2] < size:
        x = torch.cat([x, x.flip(-2)], dim=-2)
    while x.shape[-1] < size:
        x = torch.cat([x, x.flip(-1)], dim=-1)
    return x


@register_model(
    family="noise-estimator",
    paper="Aharon & Ben-Artzi, HyperRes (arXiv 2206.05970), Sec. 4.4 blind setting",
    licence="GPL-3.0 (ifryed/HyperRes LICENSE at its head); MIT at cb41fd8, the stored copy read here (LICENSE, Copyright (c) 2021 Shai Aharon)",
    origin="https://github.com/ifryed/HyperRes (models/NoiseNet.py, pre_trained/noise_detect.pth)",
    tasks=(),  # not a restoration model: it never forms a table entry
    adaptive=False,
    protocol="noisenet",
    official_counts=[{"kwargs": {}, "params": 330_561, "source": "ifryed/HyperRes/models/NoiseNet.py"}],
    test_kwargs={"width": 8, "crop": 32, "crops": 2},
    notes="blind AWGN sigma estimator (0-255); forward returns the estimate as a noise-level map the size of the input",
)
def noisenet(width: int = 64, crop: int = CROP, crops: int = 8, seed: int = 0):
    return NoiseNet(width=width, crop=crop, crops=crops, seed=seed)


@register_protocol("noisenet")
def train_noisenet(model, rundir, sampler) -> dict:
    """L1 regression of sigma on crop x crop patches (the sampler's crop must equal the model's)."""
    run = rundir.run.config
    train, options = run["train"], run["options"]
    lo, hi = (int(v) for v in run["levels"])
    if sampler.crop != model.crop:
        raise HyperbenchError(f"the noisenet trainer needs {model.crop}x{model.crop} crops, got {sampler.crop}", f"set train crop: {model.crop}")

    def loss_fn(rng):
        patches = sampler.sample(train["batch"], rng)
        sigmas = rng.integers(lo, hi + 1, size=len(patches)).astype(np.float64)
        noisy = [to_tensor(add_noise(p, s, rng, clip=options["clip"], quantise=options["quantise"])) for p, s in zip(patches, sigmas)]
        target = torch.as_tensor(sigmas, dtype=torch.float32)
        return F.l1_loss(model.forward_crops(torch.cat(noisy)), target)

    final = optimise(model, model.parameters(), loss_fn, train["steps"], train, rundir, "noisenet", run["seed"])
    return {"final_loss": final, "steps": train["steps"]}
