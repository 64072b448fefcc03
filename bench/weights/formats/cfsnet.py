"""CFSNet's official checkpoints (qibao77/CFSNet, ICCV 2019), denoise/deblock configuration.

Container: a plain state dict. CFSNetModel.save_network (models/CFSNet_model.py:277-285 at 5166a07)
unwraps DataParallel and torch.saves `network.state_dict()`; load_network (:294-297) calls
`load_state_dict(torch.load(path))` on it, so no wrapper dict is read or written (a DataParallel
`module.` prefix is still removed by `unwrap`).

Names (the CFSNet module holds `main` and `tuning_blocks`, models/modules/architecture.py:17-18):
  main.head.weight                               head conv, no bias (main_net.py:37)
  main.body.{i}.body.{0,2}.{weight,bias}         res block convs (main_net.py:18-22, 39-43: Sequential
                                                 conv, ReLU, conv, so the convs are entries 0 and 2)
  main.end.weight                                end conv, no bias (main_net.py:52)
  tuning_blocks.control_alpha.{0,1,2}.weight     Linear 512-256-128-C, no bias (tuning_blocks.py:28-32)
  tuning_blocks.adaptive_alpha.{i}.{0,1}.weight  Linear C-C-C per block, no bias (tuning_blocks.py:33-38)
  tuning_blocks.tuning_blocks.{i}.conv{0,1}.weight  tuning block convs (tuning_blocks.py:9-12, 39-41)
Every tensor has our layout. Block i computes main_i(x) * (1 - a_i) + tuning_i(x) * a_i with
a_i = adaptive_alpha_i(control_alpha(alpha * ones(512))) (architecture.py:23-25, tuning_blocks.py:53-58,
CFSNet_model.py:237), then end(out + head) (architecture.py:32): our CFSNet's computation.

The SR configuration (task_type 'sr') adds `main.tail` (conv + pixel-shuffle upsampler) and one more
tuning block and adaptive_alpha (main_net.py:45-50, tuning_blocks.py:42-51); our model has no
upsampler, so SR checkpoints are refused.

`residual` is not in the file: the official code subtracts the output from the input for task_type
'denoise' only (CFSNet_model.py:249-250), so the task, not the tensors, decides it.
"""

from __future__ import annotations

import re

from bench.common.errors import HyperbenchError
from bench.weights.official import OfficialFile, OfficialFormat

_DRIVE = "https://drive.google.com/drive/folders/12O5FDgZ99jdbyeyLeAgiM-4ygsoAeq0l (qibao77/CFSNet README.md:85 at 28ca762)"
_BLOCK = re.compile(r"main\.body\.(\d+)\.body\.0\.weight$")


def infer_kwargs(state: dict) -> dict:
    tail = sorted(k for k in state if k.startswith("main.tail."))
    if tail:
        raise HyperbenchError(f"this is an official CFSNet super-resolution checkpoint ({tail[0]}): its upsampler "
                              "(main.tail, models/modules/main_net.py) is not part of the suite's cfsnet",
                              "import a denoise or deblock checkpoint (task_type 'denoise' / 'deblock')")
    head = state["main.head.weight"]
    blocks = [int(m.group(1)) for k in state if (m := _BLOCK.match(k))]
    return {"main_blocks": len(blocks), "width": int(head.shape[0]), "in_channels": int(head.shape[1])}


def official_key(key: str, kwargs: dict) -> str | None:
    if key == "endpoints":
        return None
    if key in ("main.head.weight", "main.end.weight"):
        return key
    if m := re.fullmatch(r"main\.blocks\.(\d+)\.conv([12])\.(weight|bias)", key):
        return f"main.body.{m.group(1)}.body.{0 if m.group(2) == '1' else 2}.{m.group(3)}"
    if m := re.fullmatch(r"tuning\.(control_alpha\.\d+|adaptive_alpha\.\d+\.\d+)\.weight", key):
        return f"tuning_blocks.{m.group(1)}.weight"
    if m := re.fullmatch(r"tuning\.blocks\.(\d+)\.conv([12])\.weight", key):
        return f"tuning_blocks.tuning_blocks.{m.group(1)}.conv{int(m.group(2)) - 1}.weight"
    raise ValueError(f"cfsnet key {key} has no official name")  # the mapping is out of date


FORMAT = OfficialFormat(
    entry="cfsnet",
    source="qibao77/CFSNet models/modules/architecture.py, main_net.py, tuning_blocks.py; "
           "models/CFSNet_model.py (save_network / load_network: a plain state dict)",
    infer_kwargs=infer_kwargs,
    official_key=official_key,
    container_keys=(),
    files=(
        # The README links one Drive folder; the repo names neither the files in it nor their hashes.
        # Names below: the official run name (settings/train/README.md) and the name CFSNetModel.save gives.
        OfficialFile("denoise_gray/latest_G.pth", "denoise", (25, 50), _DRIVE,
                     "gray AWGN, step 1 sigma 25 (alpha 0), step 2 sigma 50 (alpha 1), BSD500; residual "
                     "(predicts the noise); settings/train/README.md:22-39, settings/test/test_denoise.json (in_channel 1)"),
        OfficialFile("deblock/latest_G.pth", "dejpeg", (10, 40), _DRIVE,
                     "JPEG on the Y channel (1-channel network), step 1 q10 (alpha 0), step 2 q40 (alpha 1), BSD500 "
                     "train400; predicts the image (residual False); settings/train/README.md:41-57, "
                     "settings/test/test_deblock.json"),
    ),
)
