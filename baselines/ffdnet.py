"""FFDNet (Zhang, Zuo & Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-based Image
Denoising", TIP 2018): a noise-level-conditioned denoiser.

Odd sizes are padded by replicating the last row/column; the image is pixel-unshuffled by 2 (C -> 4C
channels at half resolution), a constant map sigma/255 is appended, then 3x3 convs with ReLU between
them and a last conv back to 4C channels, pixel-shuffled to the clean image. Colour: 12 convs, 96
channels (852,108 params); gray: 15 convs, 64 channels (485,316).

The control is the noise level itself (control_name "sigma", control_for(level) = level). The
`endpoints` buffer records the sigma range the weights were trained on (default 0-75, the official
range; set by the "ffdnet" protocol); it does not change the mapping.

`load_official_ffdnet(path)` reads the official MatConvNet weights (MATLAB v7.3 / HDF5, e.g.
FFDNet_color.mat, FFDNet_gray.mat, FFDNet_Clip_*.mat) at run time; nothing is copied into the repo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from baselines.training import draw_levels, placed
from bench.common.errors import HyperbenchError
from bench.models.layers import as_level_tensor
from bench.models.registry import register_model
from bench.training.crops import Objective
from bench.training.loop import optimise
from bench.training.protocols import register_protocol

OFFICIAL_SIZES = {3: (96, 12), 1: (64, 15)}  # in_channels -> (width, convs)
TRAINED_RANGE = (0.0, 75.0)


class FFDNet(nn.Module):
    control_name = "sigma"

    def __init__(self, in_channels: int = 3, width: int | None = None, convs: int | None = None):
        super().__init__()
        default_width, default_convs = OFFICIAL_SIZES.get(in_channels, OFFICIAL_SIZES[3])
        width, convs = width or default_width, convs or default_convs
        if convs < 2:
            raise HyperbenchError(f"FFDNet needs at least 2 convs, got {convs}", "use convs >= 2 (official: 12 colour, 15 gray)")
        self.in_channels = in_channels
        sizes = [4 * in_channels + 1] + [width] * (convs - 1) + [4 * in_channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(sizes, sizes[1:]))
        self.register_buffer("endpoints", torch.tensor(TRAINED_RANGE))
        for conv in self.convs:  # KAIR's training init: orthogonal, gain 0.2
            nn.init.orthogonal_(conv.weight, gain=0.2)
            nn.init.zeros_(conv.bias)

    def control_for(self, level: float) -> float:
        return float(level)

    def forward(self, x, level):
        return self.forward_control(x, level)

    def forward_control(self, x, sigma):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise HyperbenchError(
                f"FFDNet was built for N x {self.in_channels} x H x W input, got shape {tuple(x.shape)}",
                f"convert the image or build the model with in_channels={x.shape[1] if x.ndim == 4 else 3}",
            )
        h, w = x.shape[-2:]
        y = F.pixel_unshuffle(F.pad(x, (0, w % 2, 0, h % 2), mode="replicate"), 2)
        sigma = as_level_tensor(sigma, x.shape[0], x.device) / 255.0
        y = torch.cat([y, sigma.view(-1, 1, 1, 1).expand(-1, 1, *y.shape[-2:])], dim=1)
        for conv in self.convs[:-1]:
            y = torch.relu(conv(y))
        return F.pixel_shuffle(self.convs[-1](y), 2)[..., :h, :w]


@register_protocol("ffdnet")
def train_ffdnet(model: FFDNet, rundir, crops) -> dict:
    """KAIR: every patch gets its own sigma drawn uniformly from [first, last] training level; L1."""
    run = rundir.run.config
    train = run["train"]
    lo, hi = sorted((run["levels"][0], run["levels"][-1]))
    model.endpoints.copy_(torch.tensor([lo, hi]))
    place = placed(model, run)

    def loss_fn(batch):
        x, y, lv = place.batch(*batch, 1)
        with place.autocast():
            return F.l1_loss(model(x, lv), y)

    draws = crops.drawn_batches(lambda rng, n: draw_levels(rng, n, lo, hi, False), f"ffdnet uniform {lo:g}..{hi:g}")
    final = optimise(model, model.parameters(), Objective(draws, loss_fn), train["steps"], train, rundir, "ffdnet", run["seed"])
    return {"final_loss": final, "steps": train["steps"]}


def _swap_subpixel_order(t: torch.Tensor, n_image_channels: int) -> torch.Tensor:
    """MatConvNet orders the 4 sub-images of a channel (0,0),(1,0),(0,1),(1,1) (row offset fastest),
    PyTorch (0,0),(0,1),(1,0),(1,1): swap the 2nd and 3rd of every group of 4 along dim 0."""
    order = list(range(t.shape[0]))
    for g in range(0, n_image_channels, 4):
        order[g + 1], order[g + 2] = order[g + 2], order[g + 1]
    return t[order]


def _read_mat_convs(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight [out, in, kh, kw], bias [out]) of every conv layer of a MatConvNet simplenn v7.3 file."""
    import h5py

    if not h5py.is_hdf5(path):
        raise HyperbenchError(f"{path} is not a MATLAB v7.3 (HDF5) file", "give one of FFDNet_color.mat, FFDNet_gray.mat, FFDNet_Clip_color.mat, FFDNet_Clip_gray.mat")
    with h5py.File(path, "r") as f:
        if "net" not in f or "layers" not in f["net"]:
            raise HyperbenchError(f"{path} holds no MatConvNet net.layers", "give an official FFDNet .mat file")
        convs, types = [], []
        for ref in f["net"]["layers"][()].flatten():
            layer = f[ref]
            kind = "".join(map(chr, layer["type"][()].flatten()))
            types.append(kind)
            if kind == "conv":
                w_ref, b_ref = layer["weights"][()].flatten()
                # h5py reverses MATLAB's axes: [kh, kw, in, out] arrives as [out, in, kw, kh].
                convs.append((np.swapaxes(f[w_ref][()], 2, 3), f[b_ref][()].flatten()))
    if types[:2] != ["SubP", "concat"] or types[-1] != "SubP" or not convs:
        raise HyperbenchError(f"{path} is not an FFDNet (layers {types[:3]}...)", "give an official FFDNet .mat file")
    return convs


def load_official_ffdnet(path) -> FFDNet:
    """An FFDNet holding the official MatConvNet weights of `path` (colour or gray, direct-output models)."""
    path = Path(path)
    if not path.is_file():
        raise HyperbenchError(f"FFDNet weights {path} not found", "give the path to an official .mat file, e.g. ../shared/reference/weights/ffdnet_FFDNet_color.mat")
    convs = _read_mat_convs(path)
    in_maps, out_sub = convs[0][0].shape[1], convs[-1][0].shape[0]
    if in_maps != out_sub + 1 or out_sub not in (4, 12):
        raise HyperbenchError(
            f"{path}: {in_maps} input and {out_sub} output channels are not the one-sigma-map FFDNet layout",
            "use FFDNet_color/FFDNet_gray (or the Clip variants); model_color.mat, model_gray.mat and FFDNet_3D_RGB.mat are other designs",
        )
    model = FFDNet(in_channels=out_sub // 4, width=convs[0][0].shape[0], convs=len(convs))
    with torch.no_grad():
        for i, (conv, (w, b)) in enumerate(zip(model.convs, convs)):
            w, b = torch.from_numpy(np.ascontiguousarray(w)).float(), torch.from_numpy(b).float()
            if i == 0:  # input channels: sub-images first, the sigma map stays last
                w = _swap_subpixel_order(w.transpose(0, 1), out_sub).transpose(0, 1)
            if i == len(convs) - 1:
                w, b = _swap_subpixel_order(w, out_sub), _swap_subpixel_order(b, out_sub)
            conv.weight.copy_(w)
            conv.bias.copy_(b)
        # model_gray.mat has the same layout but predicts the noise: it maps a flat 0.5 image to about 0.
        flat = torch.full((1, model.in_channels, 16, 16), 0.5)
        if model(flat, 5.0).mean() < 0.25:
            raise HyperbenchError(f"{path} predicts the noise, not the clean image", "use FFDNet_gray.mat / FFDNet_color.mat (direct-output models)")
    return model.eval()


@register_model(
    family="ffdnet",
    recipe=str(Path(__file__).with_name("recipes") / "ffdnet.yaml"),
    paper="Zhang, Zuo & Zhang, FFDNet: Toward a Fast and Flexible Solution for CNN-based Image Denoising, IEEE TIP 2018",
    licence="cszn/FFDNet: none stated (no licence file, checked at 2958d98); the PyTorch port cszn/KAIR: MIT (LICENSE at 8c753ae, Copyright (c) 2019 Kai Zhang)",
    origin="https://github.com/cszn/FFDNet (MATLAB weights), https://github.com/cszn/KAIR (PyTorch training)",
    tasks=("denoise",),
    adaptive=True,
    protocol="ffdnet",
    official_counts=[
        {"kwargs": {"in_channels": 3}, "params": 852_108, "source": "cszn/KAIR/models/network_ffdnet.py (nc 96, nb 12) = cszn/FFDNet/models/FFDNet_color.mat"},
        {"kwargs": {"in_channels": 1}, "params": 485_316, "source": "cszn/KAIR/models/network_ffdnet.py (nc 64, nb 15) = cszn/FFDNet/models/FFDNet_gray.mat"},
    ],
    test_kwargs={"width": 8, "convs": 3},
    notes="controlled by sigma itself (sigma/255 map); weights= loads the official MATLAB v7.3 weights",
)
def ffdnet(in_channels: int = 3, width: int | None = None, convs: int | None = None, weights: str | None = None):
    if weights is not None:
        model = load_official_ffdnet(weights)
        if model.in_channels != in_channels:
            raise HyperbenchError(f"{weights} is a {model.in_channels}-channel FFDNet, asked for in_channels={in_channels}", f"pass in_channels={model.in_channels}")
        return model
    return FFDNet(in_channels=in_channels, width=width, convs=convs)
