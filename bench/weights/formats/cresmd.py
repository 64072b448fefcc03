"""CResMD's official checkpoints (hejingwenhejingwen/CResMD): experiments/pretrain_models/2D_modulation.pth
(blur + noise) and 3D_modulation.pth (blur + noise + JPEG), read by the test options as `pretrain_model_G`
(codes/options/test/test_CResMD.yml, modulation_CResMD.yml: CResMDNet, in_nc 3, nf 64, nb 32, cond_dim 2).

Container: a plain state dict. The mmsr code CResMD is built on (README.md, "based on mmsr") wraps the
net in DataParallel (codes/models/SR_model.py:30) and saves `network.module.state_dict()` moved to the
CPU with no wrapper dict; loading strips a `module.` prefix (mmsr codes/models/base_model.py:74-94, read
from open-mmlab/mmagic@037933b). The defaults `params` / `state_dict` are accepted too (later BasicSR).

Names (codes/models/archs/CResMDNet_arch.py, networks.py:27-29 @2e229cf; the CResMD copy of the arch file is not
in the index, lines below are of the same author's copy hejingwenhejingwen/CSRNet@3eef25c, whose
CResMDNet and ResidualBlock_CRes match the description in shared/reference/official_implementations.md
section 3): `global_scale` Linear(cond_dim, 3) (:43), `conv_first` (:45, stride 2), `recon_trunk`, an
nn.Sequential of nb ResidualBlock_CRes (:48, arch_util.make_layer), each `conv1`, `conv2`, `local_scale`
Linear(cond_dim, nf) (:83-87), then `upconv` (:50), `HRconv` (:53), `conv_last` (:54). Same layouts as
ours: no conversion. The computation is ours too: block x + conv2(relu(conv1(x))) * local_scale(c)
(:97-100), output x + conv_last(relu(HRconv(relu(shuffle(upconv(f)))))) * global_scale(c) (:66-72).

Condition vector: [blur, noise(, JPEG)], the labels of the degraded file name in that order, each
divided by `cond_norm` (codes/data/LQGT_cond_dataset.py:64-73); cond_norm is [40, 50] for 2-D and
[40, 50, 92] for 3-D (README.md:60 and codes/options/train/train_CResMD.yml:14-15 @27e4542). Labels:
10 x blur sigma, noise sigma (generate_2groups.m:111 @217f86d writes kernel then noise label), JPEG 102 - q
(q 100..10 step 2, 0 = no JPEG; the 3-D generator is only in the fork Mr-MRahul/CRESMD,
codes/data_scripts/generate_3groups.m:20-24). So denoise drives entry 1 (modulation_CResMD.yml:7:
"0 for deblurring, 1 for denoising"), dejpeg entry 2 of the 3-D model; the other entries stay 0.
"""

from __future__ import annotations

import re

from bench.weights.official import OfficialFile, OfficialFormat

_GET = "https://github.com/hejingwenhejingwen/CResMD/blob/HEAD/experiments/pretrain_models/"
_BLOCK = re.compile(r"recon_trunk\.(\d+)\.conv1\.weight$")
_PLAIN = {"head": "conv_first", "upconv": "upconv", "hr_conv": "HRconv", "last": "conv_last", "global_scale": "global_scale"}
_PART = {"conv1": "conv1", "conv2": "conv2", "scale": "local_scale"}
NOISE, JPEG = 1, 2  # the condition entries of the official vector [blur, noise, JPEG]


def infer_kwargs(state: dict) -> dict:
    """Shapes give blocks, width, channels and cond_dim. The entry the level drives is not in the file:
    noise (1) for the released 2-D / 3-D models, which is right for denoise; a deJPEG import of the 3-D
    model needs cond_index 2 (JPEG), which only the task can tell."""
    head, scale = state["conv_first.weight"], state["global_scale.weight"]
    blocks = [int(m.group(1)) for k in state if (m := _BLOCK.match(k))]
    cond_dim = int(scale.shape[1])
    return {"blocks": max(blocks) + 1 if blocks else 0, "width": int(head.shape[0]), "in_channels": int(head.shape[1]),
            "cond_dim": cond_dim, "cond_index": NOISE if cond_dim > NOISE else 0}


def for_task(kwargs: dict, task: str) -> dict:
    """The condition entry the task's level drives: JPEG (2) for deJPEG, noise (1) otherwise."""
    if task != "dejpeg":
        return kwargs
    if kwargs["cond_dim"] <= JPEG:
        from bench.common.errors import HyperbenchError

        raise HyperbenchError(f"this CResMD has a {kwargs['cond_dim']}-D condition without a JPEG entry",
                              "import the 3-D model (3D_modulation.pth) for deJPEG")
    return {**kwargs, "cond_index": JPEG}


def official_key(key: str, kwargs: dict) -> str | None:
    if key == "endpoints":  # the level range of our control: the official code takes the condition itself
        return None
    if m := re.fullmatch(r"blocks\.(\d+)\.(conv1|conv2|scale)\.(weight|bias)", key):
        return f"recon_trunk.{m.group(1)}.{_PART[m.group(2)]}.{m.group(3)}"
    if m := re.fullmatch(r"(head|upconv|hr_conv|last|global_scale)\.(weight|bias)", key):
        return f"{_PLAIN[m.group(1)]}.{m.group(2)}"
    raise ValueError(f"cresmd key {key} has no official name")  # the mapping is out of date


def export_refusal(kwargs: dict) -> str | None:
    if kwargs.get("width", 64) != 64:
        return f"width {kwargs['width']}: CResMDNet_arch.py reshapes each block's scales to 64 channels (local_scale.view(-1, 64, 1, 1))"
    if kwargs.get("in_channels", 3) != 3:
        return f"{kwargs['in_channels']} input channels: CResMDNet_arch.py reshapes the image scales to 3 (global_scale.view(-1, 3, 1, 1))"
    return None


_2D = "RGB, 2-D blur+noise model, condition [blur/40, noise/50]"
_3D = "RGB, 3-D blur+noise+JPEG model, condition [blur/40, noise/50, (102-q)/92]"
_DATA = "one random degradation mix per DIV2K sub-image (MATLAB; noise clipped and 8-bit rounded)"

FORMAT = OfficialFormat(
    entry="cresmd",
    source="hejingwenhejingwen/CResMD codes/models/archs/CResMDNet_arch.py (CResMDNet, ResidualBlock_CRes), "
           "codes/models/networks.py:27-29, mmsr codes/models/base_model.py save_network (plain state dict)",
    infer_kwargs=infer_kwargs,
    official_key=official_key,
    export_refusal=export_refusal,
    for_task=for_task,
    files=(
        OfficialFile("2D_modulation.pth", "denoise", (0, 50), _GET + "2D_modulation.pth",
                     f"{_2D}; denoise drives entry 1 (sigma/50, cond_index 1), blur 0; {_DATA}"),
        OfficialFile("3D_modulation.pth", "denoise", (0, 50), _GET + "3D_modulation.pth",
                     f"{_3D}; denoise drives entry 1 (sigma/50, cond_index 1), blur and JPEG 0; {_DATA}"),
        OfficialFile("3D_modulation.pth", "dejpeg", (100, 10), _GET + "3D_modulation.pth",
                     f"{_3D}; dejpeg drives entry 2 ((102-q)/92, cond_index 2), blur and noise 0; colour JPEG "
                     f"(MATLAB imwrite, q 100..10 step 2): the file is RGB, the suite's deJPEG task is luma"),
    ),
)
