"""The AdaFM basic model's official names (hejingwenhejingwen/AdaFM, `norm_type: basic`) for our `plain`
network; the per-level networks and DNI's two endpoint networks are read and written in this naming.

The official network is one flattened nn.Sequential `model` (codes/models/modules/architecture.py:27-28;
block.sequential, block.py:79-92, unwraps every nn.Sequential it is given, so parameter-free modules still
take an index):

    model.0                  fea_conv, 3x3 stride 2 (architecture.py:12)
    model.1.sub.{i}.res.0    block i, first conv (ResNetBlock, block.py:116-134: res = [conv, norm, ReLU, conv, norm])
    model.1.sub.{i}.res.3    block i, second conv (res.1 and res.4 are the parameter-free `Basic` norm, block.py:154-161)
    model.1.sub.{nb}         LR_conv (architecture.py:15), inside the global shortcut (ShortcutBlock.sub, block.py:62-70)
    model.2                  upsampler conv nf -> 4 nf; model.3 PixelShuffle, model.4 ReLU (block.py:169-182)
    model.5                  HR_conv0 (+ ReLU at model.6) (architecture.py:24)
    model.7                  HR_conv1, nf -> out_nc (architecture.py:25)

The file is the bare state dict: BaseModel.save_network takes the network out of DataParallel and saves
`network.state_dict()` (ifryed/AdaFM@1c894a7 codes/models/base_model.py:51-59, a fork; the upstream
base_model.py is not in the searched snapshot, but upstream codes/scripts/net_interp.py:8-17 reads the file
as such a dict). The official repository releases no basic model, so `files` is empty: give --levels.
"""

from __future__ import annotations

import re

from bench.weights.official import OfficialFormat

SOURCE = ("hejingwenhejingwen/AdaFM codes/models/modules/architecture.py:12-28 (AdaResNet), "
          "block.py:79-134 (sequential, conv_block, ResNetBlock), models/networks.py:82-99 (define_G)")
_BLOCK = re.compile(r"model\.1\.sub\.(\d+)\.res\.0\.weight$")
_TAIL = {"conv3": "model.2", "conv4": "model.5", "conv5": "model.7"}  # upsampler conv, HR_conv0, HR_conv1
DEFAULTS = {"blocks": 16, "width": 64, "in_channels": 3}  # a run's model_kwargs may leave these out


def infer_basic(state: dict) -> dict:
    """blocks, width, in_channels from the names and shapes shared by the basic model and AdaFM-Net."""
    head = state["model.0.weight"]
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    return {"blocks": len(blocks), "width": int(head.shape[0]), "in_channels": int(head.shape[1])}


def basic_key(key: str, blocks: int) -> str | None:
    """The official name of one of our convs shared with the basic model; None for any other key."""
    if m := re.fullmatch(r"head\.conv1\.(weight|bias)", key):
        return f"model.0.{m.group(1)}"
    if m := re.fullmatch(r"blocks\.(\d+)\.conv([12])\.(weight|bias)", key):
        return f"model.1.sub.{m.group(1)}.res.{0 if m.group(2) == '1' else 3}.{m.group(3)}"
    if m := re.fullmatch(r"tail\.conv2\.(weight|bias)", key):  # the LR conv follows the nb blocks in `sub`
        return f"model.1.sub.{blocks}.{m.group(1)}"
    if m := re.fullmatch(r"tail\.(conv[345])\.(weight|bias)", key):
        return f"{_TAIL[m.group(1)]}.{m.group(2)}"
    return None


def official_key(key: str, kwargs: dict) -> str | None:
    name = basic_key(key, kwargs.get("blocks", DEFAULTS["blocks"]))
    if name is None:
        raise ValueError(f"plain key {key} has no official name")  # the mapping is out of date
    return name


FORMAT = OfficialFormat(
    entry="plain",
    source=SOURCE + ", norm_type basic",
    infer_kwargs=infer_basic,
    official_key=official_key,
    # The official file has no container; `params` (later BasicSR) and `state_dict` wrappers are accepted too.
    container_keys=("params", "state_dict"),
    # nf, nb, in_nc and out_nc all come from the options json (networks.py:88-90), so every plain model exports.
    files=(),
)
