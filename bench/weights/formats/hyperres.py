"""HyperRes' official checkpoints (ifryed/HyperRes): a dict with `state_dict` and `sigmas` (the training
levels), written by train_main.py and read by test_main.py / test_blind_noise.py (`checkpoint['state_dict']`,
`checkpoint['sigmas']`, `checkpoint['epoch']`, `checkpoint['best_prec1']`).

Names (models/HyperRes.py): the plain convs are wrapped in ModuleParallel (`conv1.module.weight`, likewise
conv2..conv5); `res_blocks_meta` is an nn.Sequential whose entry 0 is a parameter-free identity, so our
block i is `res_blocks_meta.{i+1}`, its generators `hy_conv1.fc` / `hy_conv2.fc` (nn.Linear(1, out*(in*9+1)),
weights first, then biases: the layout of our HyperConv.generator). Gray models have a 1-channel conv1/conv5.
"""

from __future__ import annotations

import re

from bench.weights.official import OfficialFile, OfficialFormat

_REPO = "https://github.com/ifryed/HyperRes/blob/main/pre_trained/"
_BLOCK = re.compile(r"res_blocks_meta\.(\d+)\.hy_conv1\.fc\.weight$")


def infer_kwargs(state: dict) -> dict:
    head = state["conv1.module.weight"]
    blocks = [int(m.group(1)) for k in state if (m := _BLOCK.match(k))]
    return {"meta_blocks": len(blocks), "width": int(head.shape[0]), "in_channels": int(head.shape[1])}


def official_key(key: str, kwargs: dict) -> str | None:
    if m := re.fullmatch(r"blocks\.(\d+)\.conv([12])\.generator\.(weight|bias)", key):
        return f"res_blocks_meta.{int(m.group(1)) + 1}.hy_conv{m.group(2)}.fc.{m.group(3)}"
    if m := re.fullmatch(r"(?:head|tail)\.(conv[1-5])\.(weight|bias)", key):
        return f"{m.group(1)}.module.{m.group(2)}"
    raise ValueError(f"hyperres key {key} has no official name")  # the mapping is out of date


def wrap(state: dict, extras: dict) -> dict:
    """The container test_main.py reads; `sigmas` are the training levels in task units."""
    return {"epoch": int(extras.get("epoch", 0)), "arch": "HyperRes", "state_dict": state,
            "best_prec1": float(extras.get("best_prec1", 0.0)), "sigmas": [float(v) for v in extras["sigmas"]]}


def export_refusal(kwargs: dict) -> str | None:
    if kwargs.get("width", 64) != 64:
        return f"width {kwargs['width']}: models/HyperRes.py hard-codes 64 channels (self.inplanes = 64)"
    if kwargs.get("in_channels", 3) not in (1, 3):
        return f"{kwargs['in_channels']} input channels: the official code builds RGB (3) or gray (1) only"
    return None


FORMAT = OfficialFormat(
    entry="hyperres",
    source="ifryed/HyperRes models/HyperRes.py (HyperRes.__init__, HyperConv.fc), train_main.py (save_checkpoint)",
    infer_kwargs=infer_kwargs,
    official_key=official_key,
    container_keys=("state_dict",),
    wrap=wrap,
    export_refusal=export_refusal,
    files=(
        OfficialFile("noise_4.pth", "denoise", (15, 35, 55, 75), _REPO + "noise_4.pth", "RGB AWGN, DIV2K"),
        OfficialFile("sr_4.pth", "sr", (2, 3, 4, 5), _REPO + "sr_4.pth", "RGB bicubic x2-x5 (OpenCV), DIV2K"),
        OfficialFile("jpeg_4_color.pth", "dejpeg", (10, 30, 50, 80), _REPO + "jpeg_4_color.pth",
                     "colour JPEG (Table 1 evaluates luma: the colour model is evaluated on RGB as trained)"),
    ),
)
