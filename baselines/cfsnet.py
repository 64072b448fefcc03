"""CFSNet (Wang et al., "CFSNet: Toward a Controllable Feature Space for Image Restoration", ICCV 2019),
denoising/deblocking configuration (stride 1, 10 main + 10 tuning blocks, 64 channels).

Main branch: head conv (no bias), res blocks (convs with bias), end conv (no bias) on body + head
features. Tuning branch: per block a conv-ReLU-conv (no bias, no skip) and a coupling vector
a_i = adaptive_alpha_i(control_alpha(alpha * ones(512))) from bias-free linear layers without
activations (512->256->128->64, then 64->64->64), so a_i = alpha * v_i. Block i outputs
main_i(x) * (1 - a_i) + tuning_i(x) * a_i; alpha 0 is the main branch alone.
With `residual` (the official denoising config) the network predicts the degradation and the image
is input - output; the official deblock/SR configs predict the image (residual=False).

Level -> alpha: linear between the two trained levels, alpha = (level - start) / (end - start), not
clipped (the CFSNet README itself uses alpha outside [0, 1]). Stored in the `endpoints` buffer, set
by the "cfsnet" protocol; default (25, 50), the official denoising steps (sigma 25, then 50).
"""

from pathlib import Path

import torch
from torch import nn

from baselines.training import fixed_level_l1, freeze_all_but, placed, train_stages
from bench.models.control import EndpointControl
from bench.models.layers import ResBlock, as_level_tensor, check_input, conv3x3, kaiming_scaled_init
from bench.models.registry import register_model
from bench.training.protocols import register_protocol

DEFAULT_ENDPOINTS = (25.0, 50.0)
CONTROL_FEATURES = 512  # length of the control vector alpha * ones(512) (official)


class TuningBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = conv3x3(width, width, bias=False)
        self.conv2 = conv3x3(width, width, bias=False)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


def linear_chain(*sizes) -> nn.Sequential:
    """Bias-free linear layers without activations (official CFSNet control MLPs)."""
    return nn.Sequential(*(nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:])))


class CFSNet(EndpointControl):
    control_name = "alpha"

    def __init__(self, main_blocks: int = 10, width: int = 64, in_channels: int = 3, residual: bool = True):
        super().__init__(*DEFAULT_ENDPOINTS)
        self.in_channels, self.residual = in_channels, residual
        self.main = nn.ModuleDict({
            "head": conv3x3(in_channels, width, bias=False),
            "blocks": nn.ModuleList(ResBlock(width) for _ in range(main_blocks)),
            "end": conv3x3(width, in_channels, bias=False),
        })
        self.tuning = nn.ModuleDict({
            "control_alpha": linear_chain(CONTROL_FEATURES, 256, 128, width),
            "adaptive_alpha": nn.ModuleList(linear_chain(width, width, width) for _ in range(main_blocks)),
            "blocks": nn.ModuleList(TuningBlock(width) for _ in range(main_blocks)),
        })
        kaiming_scaled_init(self)  # official: Kaiming x0.1 for every conv and linear layer

    def forward_control(self, x, control):
        check_input(x, self.in_channels, "CFSNet", even=False)  # stride-1 convs only: any size
        alpha = as_level_tensor(control, x.shape[0], x.device)
        code = self.tuning["control_alpha"](alpha[:, None].expand(-1, CONTROL_FEATURES))
        head = self.main["head"](x)
        feat = head
        for main, tuning, adaptive in zip(self.main["blocks"], self.tuning["blocks"], self.tuning["adaptive_alpha"]):
            a = adaptive(code)[:, :, None, None]
            feat = main(feat) * (1 - a) + tuning(feat) * a
        out = self.main["end"](feat + head)
        return x - out if self.residual else out


@register_protocol("cfsnet")
def train_cfsnet(model: CFSNet, rundir, crops) -> dict:
    """Step "main": the main branch with alpha 0 at the first level. Step "tuning": main branch frozen,
    the tuning blocks and coupling MLPs trained with alpha 1 at the last level. L1 on the restored
    image (for residual denoising this equals L1 on the predicted noise, the official target)."""
    run = rundir.run.config
    start, end = run["levels"][0], run["levels"][-1]
    model.set_endpoints(start, end)
    place = placed(model, run)

    def main():
        return freeze_all_but(model, model.main.parameters()), fixed_level_l1(lambda x: model.forward_control(x, 0.0), crops, run, start, place)

    def tuning():
        return freeze_all_but(model, model.tuning.parameters()), fixed_level_l1(lambda x: model.forward_control(x, 1.0), crops, run, end, place)

    return train_stages(model, rundir, [("main", main), ("tuning", tuning)])


_SRC = "qibao77/CFSNet/models/modules/architecture.py"
_COUNTS = [
    {"kwargs": {"in_channels": 3}, "params": 1_733_248, "source": _SRC + " (settings/train/train_denoise.json)", "paper_claim": "1.73e6"},
    {"kwargs": {"in_channels": 1}, "params": 1_730_944, "source": _SRC + " (denoise gray / deblock Y configs)"},
]


@register_model(
    family="cfsnet",
    recipe=str(Path(__file__).with_name("recipes") / "cfsnet.yaml"),
    paper="Wang, Chen, Li & Tian, CFSNet: Toward a Controllable Feature Space for Image Restoration, ICCV 2019",
    licence="none stated: qibao77/CFSNet has no licence file or statement (checked at 28ca762)",
    origin="https://github.com/qibao77/CFSNet",
    tasks=("denoise", "dejpeg", "sr"),
    adaptive=True,
    protocol="cfsnet",
    train_stages=2,
    official_counts=_COUNTS,
    test_kwargs={"main_blocks": 2, "width": 8},
    task_kwargs={"dejpeg": {"residual": False}, "sr": {"residual": False}},  # official: only denoising predicts the noise (residual=True)
    notes="denoise/deblock topology (stride 1, no upsampler; SR input is pre-upsampled); alpha = (level - start) / (end - start)",
)
def cfsnet(main_blocks: int = 10, width: int = 64, in_channels: int = 3, residual: bool = True):
    return CFSNet(main_blocks=main_blocks, width=width, in_channels=in_channels, residual=residual)
