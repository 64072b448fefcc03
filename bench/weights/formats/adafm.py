"""AdaFM-Net's official checkpoints (hejingwenhejingwen/AdaFM, `norm_type: adafm`) for our `adafm` model.

The names are the basic model's (bench/weights/formats/plain.py) with an AdaFM layer wherever the basic
model has its parameter-free norm: conv_block is [conv, norm, act] (block.py:95-108), so the layer after
block i's first conv is `model.1.sub.{i}.res.1`, after its second conv `model.1.sub.{i}.res.4`, and after
the LR conv `model.1.sub.{nb+1}` (architecture.py:15). The layer's only parameter is the depthwise conv
`transformer` (block.py:141-151: Conv2d(nf, nf, k, padding=(k-1)//2, groups=nf), forward
`transformer(x) + x`); its weight is [nf, 1, k, k] as ours, so no tensor is converted.

The official layer has no lambda: codes/interpolate.py:45-52 and codes/scripts/net_interp.py:13-15 multiply
every `transformer` weight and bias by the coefficient, i.e. y = x + lambda * (dwconv(x) + b), which is our
AdaFMLayer. A released file holds the lambda-1 (end-level) layers; its other tensors are the basic model
trained at the start level (SR_model.py:40-49 freezes them while the layers train).
"""

from __future__ import annotations

import re

from bench.weights.formats.plain import DEFAULTS, SOURCE, basic_key, infer_basic
from bench.weights.official import OfficialFile, OfficialFormat

_REPO = "https://github.com/hejingwenhejingwen/AdaFM/tree/master/experiments/pretrained_models/"


def _layer(blocks: int) -> str:
    """The LR conv's AdaFM layer: present in every AdaFM-Net whatever its block count."""
    return f"model.1.sub.{blocks + 1}.transformer"


def infer_kwargs(state: dict) -> dict:
    kwargs = infer_basic(state)
    # A basic-model file lacks this key, so to_suite reports it as not an AdaFM-Net (KeyError -> "lacks ...").
    kwargs["ksize"] = int(state[_layer(kwargs["blocks"]) + ".weight"].shape[-1])
    return kwargs


def official_key(key: str, kwargs: dict) -> str | None:
    blocks = kwargs.get("blocks", DEFAULTS["blocks"])
    if key == "endpoints":
        return None  # our level range; an official file has none (the coefficient is set by hand)
    if m := re.fullmatch(r"blocks\.(\d+)\.adafm([12])\.conv\.(weight|bias)", key):
        return f"model.1.sub.{m.group(1)}.res.{1 if m.group(2) == '1' else 4}.transformer.{m.group(3)}"
    if m := re.fullmatch(r"adafm_lr\.conv\.(weight|bias)", key):
        return f"{_layer(blocks)}.{m.group(1)}"
    if name := basic_key(key, blocks):
        return name
    raise ValueError(f"adafm key {key} has no official name")  # the mapping is out of date


def export_refusal(kwargs: dict) -> str | None:
    # nf, nb, in_nc/out_nc and adafm_ksize are read from the options json (networks.py:88-90); only the
    # padding (k-1)//2 (block.py:146) limits the kernel: an even one changes the feature size.
    ksize = kwargs.get("ksize", 1)
    if ksize % 2 == 0:
        return f"ksize {ksize}: the official AdaFM layer pads (k-1)//2 (block.py:146), so only odd kernel sizes keep the feature size"
    return None


FORMAT = OfficialFormat(
    entry="adafm",
    source=SOURCE + ", block.py:141-151 (AdaptiveFM), norm_type adafm",
    infer_kwargs=infer_kwargs,
    official_key=official_key,
    # The official file is a bare state dict (see formats/plain.py); `params` / `state_dict` wrappers are accepted too.
    container_keys=("params", "state_dict"),
    export_refusal=export_refusal,
    files=(
        # README.md:36-37 (at 64a8fe9): AdaFM-Net "that deals with denoising from sigma15 to sigma75";
        # trained with train_basic.json / train_adafm.json (nf 64, nb 16, RGB, adafm_ksize 1). Not in the
        # searched snapshot (>= 4 MiB), so no sha256.
        OfficialFile("noise15to75.pth", "denoise", (15, 75), _REPO + "noise15to75.pth",
                     "RGB AWGN, basic model at sigma 15 (lambda 0), AdaFM layers at sigma 75 (lambda 1), DIV2K; "
                     "noisy inputs clipped and rounded to 8 bits (codes/scripts/generate_LR_noise.m)"),
    ),
)
