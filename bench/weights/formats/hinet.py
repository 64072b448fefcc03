"""HINet's official checkpoints (megvii-model/HINet): BasicSR files, `{'params': state_dict}`.

Container: BaseModel.save_network stores each network's state dict under its param_key, 'params' by
default, after stripping a `module.` prefix (basicsr/models/base_model.py:186-217 at 1fd9559), called as
save_network(self.net_g, 'net_g', current_iter) by ImageRestorationModel.save; load_network reads
load_net['params'] (the test options set no other param_key). The released files are not in the
repository (Google Drive links), so their container is taken from this code, not from a file.

Names (basicsr/models/archs/hinet_arch.py at 0cfa28b; HINet.__init__ :49-78, UNetConvBlock :128-149,
UNetUpBlock :171-175, SAM :32-37):
  conv_01 / conv_02                      stage-1 / stage-2 input conv           ours: stage{1,2}.conv_in
  down_path_{1,2}.{i}.conv_1 / conv_2     encoder block i (i = 0..depth-1)       ours: stage{s}.encoder.{i}.conv1 / conv2
  down_path_{s}.{i}.identity              1x1 shortcut                           ours: .shortcut
  down_path_{s}.{i}.norm                  HIN, levels hin_position_left..right   ours: .norm
  down_path_2.{i}.csff_enc / csff_dec     cross-stage fusion (stage 2, i < 4)    ours: .fuse_enc / .fuse_dec
  down_path_{s}.{i}.downsample.weight     4x4 stride-2 conv, no bias (i < 4)    ours: .down.weight
  up_path_{s}.{j}.up                      2x2 transposed conv, j = 0 coarsest    ours: stage{s}.decoder.{j}.up
  up_path_{s}.{j}.conv_block.*            decoder block (no HIN)                 ours: stage{s}.decoder.{j}.block.*
  skip_conv_{s}.{j}                       3x3 conv on the skip                   ours: stage{s}.decoder.{j}.skip
  sam12.conv1..conv3, cat12, last         SAM, 1x1 merge, output conv            ours: sam.conv1..3, merge, last
All tensors have the same layout as ours (the transposed conv is (in, out, 2, 2) in both).
"""

from __future__ import annotations

import re

from bench.common.errors import HyperbenchError
from bench.tasks.task import get_task
from bench.weights.official import OfficialFile, OfficialFormat

DEPTH = 5  # our HINet is built with the official default depth only
_SOURCE = "megvii-model/HINet@0cfa28b basicsr/models/archs/hinet_arch.py:49-78, :128-149, :171-175 (names)"
_DRIVE = "megvii-model/HINet experiments/pretrained_models/README.md -> https://drive.google.com/file/d/"
_BLOCK = re.compile(r"down_path_1\.(\d+)\.conv_1\.weight$")
_NORM = re.compile(r"down_path_1\.(\d+)\.norm\.weight$")
_LEAF = {"conv1": "conv_1", "conv2": "conv_2", "shortcut": "identity", "norm": "norm",
         "fuse_enc": "csff_enc", "fuse_dec": "csff_dec", "down": "downsample"}
_TOP = {"sam.conv1": "sam12.conv1", "sam.conv2": "sam12.conv2", "sam.conv3": "sam12.conv3", "merge": "cat12", "last": "last"}


def infer_kwargs(state: dict) -> dict:
    head = state["conv_01.weight"]
    depth = len([k for k in state if _BLOCK.match(k)])
    if depth != DEPTH:
        raise HyperbenchError(f"this HINet checkpoint has depth {depth} (down_path_1.0..{depth - 1}); the suite's hinet is built with depth {DEPTH}",
                              "give a checkpoint of the official default depth (every released HINet file has depth 5)")
    hin = sorted(int(m.group(1)) for k in state if (m := _NORM.match(k)))
    if hin and hin != list(range(hin[0], hin[-1] + 1)):
        raise HyperbenchError(f"HIN at encoder levels {hin} of down_path_1: the official code puts it at one contiguous range",
                              "give an official HINet checkpoint (hin_position_left..hin_position_right)")
    levels = [hin[0], hin[-1]] if hin else [0, -1]  # [0, -1]: no level uses HIN
    return {"width": int(head.shape[0]), "in_channels": int(head.shape[1]), "hin_levels": levels}


def official_key(key: str, kwargs: dict) -> str | None:
    if m := re.fullmatch(r"stage([12])\.conv_in\.(weight|bias)", key):
        return f"conv_0{m.group(1)}.{m.group(2)}"
    if m := re.fullmatch(r"stage([12])\.encoder\.(\d+)\.(\w+)\.(weight|bias)", key):
        if m.group(3) in _LEAF:
            return f"down_path_{m.group(1)}.{m.group(2)}.{_LEAF[m.group(3)]}.{m.group(4)}"
    if m := re.fullmatch(r"stage([12])\.decoder\.(\d+)\.(up|skip)\.(weight|bias)", key):
        if m.group(3) == "up":
            return f"up_path_{m.group(1)}.{m.group(2)}.up.{m.group(4)}"
        return f"skip_conv_{m.group(1)}.{m.group(2)}.{m.group(4)}"
    if m := re.fullmatch(r"stage([12])\.decoder\.(\d+)\.block\.(\w+)\.(weight|bias)", key):
        if m.group(3) in _LEAF:
            return f"up_path_{m.group(1)}.{m.group(2)}.conv_block.{_LEAF[m.group(3)]}.{m.group(4)}"
    if m := re.fullmatch(r"(.+)\.(weight|bias)", key):
        if m.group(1) in _TOP:
            return f"{_TOP[m.group(1)]}.{m.group(2)}"
    raise ValueError(f"hinet key {key} has no official name")  # the mapping is out of date


def wrap(state: dict, extras: dict) -> dict:
    """The container BasicSR's load_network reads (param_key 'params')."""
    return {"params": state}


def export_refusal(kwargs: dict) -> str | None:
    if kwargs.get("in_channels", 3) != 3:
        return (f"{kwargs['in_channels']} input channels: the official SAM hard-codes 3 image channels "
                "(hinet_arch.py:36-37, conv(n_feat, 3) and conv(3, n_feat))")
    return None


def _file(name: str, drive_id: str, task: str, levels: tuple, setting: str) -> OfficialFile:
    return OfficialFile(name, task, levels, f"{_DRIVE}{drive_id}", setting)


# HINet is not adaptive: one network for every level, which it does not see. A suite hinet run of the
# denoise task carries the task's training levels (the profiles' train_levels); the SIDD files get the
# same ones, which say where the run is evaluated, not what it was trained on. The deblurring and
# deraining files belong to no task of the suite (no levels: importing them needs --levels).
_SIDD = tuple(get_task("denoise").paper_train_levels)
_NOT_AWGN = "not the AWGN setting of the suite's tables"
FILES = (
    _file("HINet-SIDD-1x.pth", "1CU5z-M90Jc-TAcVpEaFjDCYA09fkubGi", "denoise", _SIDD,
          f"SIDD-Medium sRGB real camera noise, one blind network ({_NOT_AWGN}); wf 64, HIN levels 0-4 "
          "(options/test/SIDD/HINet-SIDD-1x.yml:28-32)"),
    _file("HINet-SIDD-0.5x.pth", "1Y5YJQVNL0weifE--5us344bLwzBNS_sU", "denoise", _SIDD,
          f"SIDD-Medium sRGB real camera noise, one blind network ({_NOT_AWGN}); wf 32, HIN levels 0-4 "
          "(options/test/SIDD/HINet-SIDD-0.5x.yml:28-32)"),
    _file("HINet-GoPro.pth", "1dw8PKVkLfISzNtUu3gqGh83NBO83ZQ5n", "deblur", (),
          f"GoPro motion deblurring ({_NOT_AWGN}); wf 64, HIN levels 3-4 (options/test/GoPro/HINet-GoPro.yml:22-26); "
          "tested on 256x256 grids"),
    _file("HINet-REDS.pth", "1uYH8XvLgrn-Vg6L0NjUcO2Fblhqrc8TU", "deblur", (),
          f"REDS deblurring of blurred and JPEG-compressed frames, NTIRE 2021 track 2 ({_NOT_AWGN}, nor the suite's "
          "JPEG levels); wf 64, HIN levels 3-4 (options/test/REDS/HINet-REDS.yml:22-26); tested on 256x256 grids"),
    _file("HINet-Rain13k.pth", "1AVedAkb1B2F2b3XGWlMFFVSsNfQlCwxa", "derain", (),
          f"Rain13k deraining, PSNR on Y ({_NOT_AWGN}); wf 64, HIN levels 0-4 "
          "(options/test/Rain13k/HINet-Test100.yml:28-32); tested on 256x256 grids"),
)

FORMAT = OfficialFormat(
    entry="hinet",
    source=_SOURCE,
    infer_kwargs=infer_kwargs,
    official_key=official_key,
    container_keys=("params",),
    wrap=wrap,
    export_refusal=export_refusal,
    files=FILES,
)
