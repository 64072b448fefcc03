"""CResMD (He et al., "Interactive Multi-Dimensional Modulation for Image Restoration", ECCV 2020).

Stride-2 head conv, 32 residual blocks with controllable residual connections (block output
x + res * s, s = Linear(cond_dim, 64)(condition), one scale per channel), pixel-shuffle tail, and a
controllable image residual: output = input + body * Linear(cond_dim, C)(condition). Kaiming x0.1
init including the scale layers, zero biases, so condition 0 starts as the identity mapping.
The official model is RGB only (scale layer hard-wired to 3); in_channels=1 (deJPEG on luma) sizes
that layer to 1 channel.

Level -> condition: the level normalised over the run's training range, (level - lo) / (hi - lo),
linear and not clipped. With cond_dim > 1 (the official 2-D blur+noise and 3-D models) the level
drives entry `cond_index` and the other entries stay 0 (that degradation absent). The range lives in
the `endpoints` buffer, set by the "cresmd" protocol; default (0, 50), the official noise cond_norm.

Loss: L1 as the official code, except deJPEG (the recipe's `loss`): the official code trains JPEG only
inside its 3-D blur+noise+JPEG model, and a JPEG-only model trained with L1 returns its input. JPEG
leaves many pixels exactly unchanged (30 % of the CBSD432 luma training pixels), and at those L1's
gradient pulls the output back to the input. At initialisation that pull on the image-residual scale
(a single one for luma) is 15 to 100 times what the rest of the image gives it, and within a few
hundred steps the scale (or, held away from 0, the body's output) reaches 0. Charbonnier (eps 1e-3)
is L1 above about 0.26 on 0-255 and smooth at 0, and trains.
"""

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from baselines.training import control_endpoints, draw_levels, placed
from bench.common.errors import HyperbenchError
from bench.models.control import EndpointControl
from bench.models.layers import as_level_tensor, check_input, conv3x3, kaiming_scaled_init
from bench.models.registry import register_model
from bench.tasks.task import get_task
from bench.training.crops import Objective
from bench.training.loop import optimise
from bench.training.protocols import register_protocol

DEFAULT_ENDPOINTS = (0.0, 50.0)


class ControllableResBlock(nn.Module):
    def __init__(self, width: int, cond_dim: int):
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.conv2 = conv3x3(width, width)
        self.scale = nn.Linear(cond_dim, width)

    def forward(self, x, cond):
        return x + self.conv2(torch.relu(self.conv1(x))) * self.scale(cond)[:, :, None, None]


class CResMD(EndpointControl):
    control_name = "condition"

    def __init__(self, blocks: int = 32, width: int = 64, in_channels: int = 3, cond_dim: int = 1, cond_index: int = 0):
        super().__init__(*DEFAULT_ENDPOINTS)
        if not 0 <= cond_index < cond_dim:
            raise HyperbenchError(f"CResMD cond_index {cond_index} is outside the {cond_dim}-dimensional condition", f"use 0..{cond_dim - 1}")
        self.in_channels, self.cond_dim, self.cond_index = in_channels, cond_dim, cond_index
        self.head = conv3x3(in_channels, width, stride=2)
        self.blocks = nn.ModuleList(ControllableResBlock(width, cond_dim) for _ in range(blocks))
        self.upconv = conv3x3(width, 4 * width)
        self.hr_conv = conv3x3(width, width)
        self.last = conv3x3(width, in_channels)
        self.global_scale = nn.Linear(cond_dim, in_channels)
        kaiming_scaled_init(self)

    def condition_vector(self, control, n: int, device) -> torch.Tensor:
        """Per-sample control -> N x cond_dim condition (other dimensions 0); an N x cond_dim tensor passes through."""
        if torch.is_tensor(control) and control.ndim == 2:
            if control.shape != (n, self.cond_dim):
                raise ValueError(f"condition of shape {tuple(control.shape)} for a batch of {n} and cond_dim {self.cond_dim}")
            return control.to(device=device, dtype=torch.float32)
        cond = torch.zeros(n, self.cond_dim, device=device)
        cond[:, self.cond_index] = as_level_tensor(control, n, device)
        return cond

    def forward_control(self, x, control):
        check_input(x, self.in_channels, "CResMD")
        cond = self.condition_vector(control, x.shape[0], x.device)
        feat = self.head(x)
        for block in self.blocks:
            feat = block(feat, cond)
        feat = torch.relu(F.pixel_shuffle(self.upconv(feat), 2))
        body = self.last(torch.relu(self.hr_conv(feat)))
        return x + body * self.global_scale(cond)[:, :, None, None]


def charbonnier_loss(out, target, eps: float) -> torch.Tensor:
    """mean(sqrt((out - target)^2 + eps^2)): L1 where the error exceeds about eps, smooth at 0."""
    return torch.sqrt((out - target).float() ** 2 + eps * eps).mean()


def training_loss(spec: dict | None):
    """The run's loss: L1 (official), or `{kind: charbonnier, eps}` where the recipe gives it (deJPEG:
    a JPEG-only model trained with L1 collapses to the identity, see the recipe)."""
    if not spec or spec.get("kind", "l1") == "l1":
        return F.l1_loss
    if spec["kind"] == "charbonnier":
        eps = float(spec["eps"])
        return lambda out, target: charbonnier_loss(out, target, eps)
    raise HyperbenchError(f"CResMD has no loss {spec['kind']!r}", "use l1 or charbonnier (with eps)")


@register_protocol("cresmd")
def train_cresmd(model: CResMD, rundir, crops) -> dict:
    """Joint training over the continuous range: every patch gets its own level, drawn over the run's
    first..last level as its recipe says (official: Beta(0.5, 1), light degradations most often), and
    the matching condition (official normalisation: sigma / 50, (102 - q) / 92); L1, or the loss the
    recipe gives (deJPEG: Charbonnier, eps 1e-3)."""
    run = rundir.run.config
    task, train = get_task(run["task"]), run["train"]
    first, last = run["levels"][0], run["levels"][-1]
    model.set_endpoints(*control_endpoints(run))
    place = placed(model, run)

    def draw(rng, n):
        return draw_levels(rng, n, first, last, task.integer_levels, train.get("level_distribution"))

    criterion = training_loss(train.get("loss"))

    def loss_fn(batch):
        x, y, lv = place.batch(*batch, 1)
        with place.autocast():
            return criterion(model(x, lv), y)

    described = f"cresmd levels {first:g}..{last:g} {train.get('level_distribution')}"
    objective = Objective(crops.drawn_batches(draw, described), loss_fn)
    final = optimise(model, model.parameters(), objective, train["steps"], train, rundir, "cresmd", run["seed"])
    return {"final_loss": final, "steps": train["steps"]}


_SRC = "hejingwenhejingwen/CResMD/codes/models/archs/CResMDNet_arch.py"
_COUNTS = [
    {"kwargs": {"cond_dim": 1}, "params": 2_555_657, "source": _SRC + ", cond_dim 1 (single degradation; no official config)", "paper_claim": "32 residual blocks"},
    {"kwargs": {"cond_dim": 2}, "params": 2_557_708, "source": _SRC + " (train_CResMD.yml, 2-D blur+noise)", "paper_claim": "32 residual blocks"},
    {"kwargs": {"cond_dim": 3}, "params": 2_559_759, "source": _SRC + " (3-D blur+noise+JPEG)"},
]


@register_model(
    family="cresmd",
    recipe=str(Path(__file__).with_name("recipes") / "cresmd.yaml"),
    paper="He, Dong & Qiao, Interactive Multi-Dimensional Modulation for Image Restoration, ECCV 2020 (CResMD)",
    licence="none stated: hejingwenhejingwen/CResMD has no licence file or statement (checked at 2e229cf)",
    origin="https://github.com/hejingwenhejingwen/CResMD",
    tasks=("denoise", "dejpeg"),
    adaptive=True,
    protocol="cresmd",
    official_counts=_COUNTS,
    test_kwargs={"blocks": 2, "width": 8},
    notes="condition = (level - lo) / (hi - lo) over the training range; levels sampled per patch, continuous; deJPEG trains with Charbonnier (eps 1e-3), not L1 (see its recipe)",
)
def cresmd(blocks: int = 32, width: int = 64, in_channels: int = 3, cond_dim: int = 1, cond_index: int = 0):
    return CResMD(blocks=blocks, width=width, in_channels=in_channels, cond_dim=cond_dim, cond_index=cond_index)
