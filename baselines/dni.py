"""DNI (Wang et al., "Deep Network Interpolation for Continuous Imagery Effect Transition", CVPR 2019).

Two endpoint networks of the same architecture (here baselines.plain.PlainResNet, the AdaFM basic
model) and every parameter interpolated: theta = alpha * theta_A + (1 - alpha) * theta_B. Both
copies are stored, so the count is twice the base network (2,813,574 for the 16-block RGB base).

Level -> alpha: A is trained at the start level and B at the end level, so alpha = (end - level) /
(end - start) (1 at the start level, 0 at the end level), linear between them and clipped to [0, 1]
beyond them: a level outside the endpoints gets the nearest endpoint network, and `nearest_level` says
so (the evaluation records it as the input level, as for a per-level bank; the tables mark it with a
dagger). DNI is an interpolation (xinntao/DNI README.md: alpha is the "interpolation coefficient");
extrapolated weights, alpha * A + (1 - alpha) * B with alpha outside [0, 1], push every layer past
both trained networks, and already at alpha 1.75 or -1 the output is a flat image (quick SR, endpoints
x3 and x4, Set5: x2 5.38 dB at alpha 2 against 26.40 for endpoint A; x6 10.47 dB at alpha -2 against
24.24 for endpoint B). `forward_control(x, alpha)` still applies the README rule at any alpha. The
endpoints live in the `endpoints` buffer, set by the "dni" protocol; default (15, 75) as AdaFM's
denoising range.
"""

from pathlib import Path

import torch
from torch.func import functional_call

from baselines.plain import PlainResNet
from baselines.training import fixed_level_l1, freeze_all_but, placed, train_stages
from bench.models.control import EndpointControl
from bench.models.layers import as_level_tensor, check_input
from bench.models.registry import register_model
from bench.training.protocols import register_protocol

DEFAULT_ENDPOINTS = (15.0, 75.0)


class DNI(EndpointControl):
    control_name = "alpha"
    control_at_start, control_at_end = 1.0, 0.0
    control_range = (0.0, 1.0)  # interpolation only (the optimal-control search keeps to it too)

    def _controls(self, levels: torch.Tensor) -> torch.Tensor:
        return super()._controls(levels).clamp(*self.control_range)

    def nearest_level(self, level: float) -> float:
        """The level the network is given: `level` within the endpoints, else the nearest endpoint."""
        lo, hi = sorted(self.endpoints.tolist())
        return min(max(float(level), lo), hi)

    def __init__(self, blocks: int = 16, width: int = 64, in_channels: int = 3):
        super().__init__(*DEFAULT_ENDPOINTS)
        self.in_channels = in_channels
        self.net_a = PlainResNet(blocks=blocks, width=width, in_channels=in_channels)
        self.net_b = PlainResNet(blocks=blocks, width=width, in_channels=in_channels)

    def interpolated(self, alpha: float) -> dict:
        """The interpolated parameters alpha * A + (1 - alpha) * B, keyed as in PlainResNet."""
        b = dict(self.net_b.named_parameters())
        return {k: alpha * p + (1 - alpha) * b[k] for k, p in self.net_a.named_parameters()}

    def _run(self, x, alpha: float):
        if alpha == 1.0:  # exact endpoints: no interpolation needed (and no gradient into the other net)
            return self.net_a(x)
        if alpha == 0.0:
            return self.net_b(x)
        return functional_call(self.net_a, self.interpolated(alpha), (x,))

    def forward_control(self, x, control):
        check_input(x, self.in_channels, "DNI")
        alpha = as_level_tensor(control, x.shape[0], x.device)
        values = torch.unique(alpha)
        if values.numel() == 1:
            return self._run(x, float(values[0]))
        out = torch.empty_like(x)
        for v in values:  # one interpolated network per distinct alpha
            idx = (alpha == v).nonzero(as_tuple=True)[0]
            out[idx] = self._run(x[idx], float(v))
        return out


@register_protocol("dni")
def train_dni(model: DNI, rundir, crops) -> dict:
    """Stage "A": endpoint A at the first level. Stage "B": B initialised from A and fine-tuned at the
    last level (how the DNI paper obtains its second endpoint). train["steps"] steps each, L1."""
    run = rundir.run.config
    start, end = run["levels"][0], run["levels"][-1]
    model.set_endpoints(start, end)
    place = placed(model, run)

    def endpoint_a():
        return freeze_all_but(model, model.net_a.parameters()), fixed_level_l1(model.net_a, crops, run, start, place)

    def endpoint_b():
        model.net_b.load_state_dict(model.net_a.state_dict())
        return freeze_all_but(model, model.net_b.parameters()), fixed_level_l1(model.net_b, crops, run, end, place)

    return train_stages(model, rundir, [("A", endpoint_a), ("B", endpoint_b)])


@register_model(
    family="dni",
    recipe=str(Path(__file__).with_name("recipes") / "dni.yaml"),
    paper="Wang, Yu, Dong, Tang, Loy & Qiao, Deep Network Interpolation for Continuous Imagery Effect Transition, CVPR 2019",
    licence="none stated: xinntao/DNI has no licence file or statement (README only, checked at 65c2d0d)",
    origin="https://github.com/xinntao/DNI",
    tasks=("denoise", "dejpeg", "sr"),
    adaptive=True,
    protocol="dni",
    train_stages=2,
    revision=1,  # 1: alpha clipped to [0, 1] (no training change; the new run ids make stored evaluations redone)
    official_counts=[
        {"kwargs": {"blocks": 16, "in_channels": 3}, "params": 2_813_574, "source": "2 x the AdaFM basic model (1,406,787); xinntao/DNI stores two endpoint nets"},
        {"kwargs": {"blocks": 16, "in_channels": 1}, "params": 2_808_962, "source": "2 x the AdaFM basic model in/out 1 (1,404,481)"},
    ],
    test_kwargs={"blocks": 2, "width": 8},
    notes="base network = the per-level plain network; alpha = (end - level) / (end - start) clipped to [0, 1], alpha 1 = endpoint A (first level)",
)
def dni(blocks: int = 16, width: int = 64, in_channels: int = 3):
    return DNI(blocks=blocks, width=width, in_channels=in_channels)
