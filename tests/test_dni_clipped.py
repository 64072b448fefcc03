"""DNI interpolates, it does not extrapolate (issue 28, part 6).

With endpoints at x3 and x4, SR at x2, x5 and x6 asked for alpha 2, -1 and -2: weights pushed past both
trained networks, a flat output (quick, Set5: 5.39 / 11.79 / 11.32 dB against inputs of 34.40 / 24.91 /
24.12). Alpha is now clipped to [0, 1]: beyond its endpoints DNI runs the nearest endpoint network, and
`nearest_level` reports that level so the evaluation records it as the input level.
"""

import pytest
import torch
from torch.func import functional_call

from bench.evaluation.evaluate import input_level
from bench.models.catalog import create_model
from bench.tasks.task import get_task
from bench.tuning.tune import control_bracket

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: threads only add hand-offs (tests/conftest.py)


def _dni(start, end):
    torch.manual_seed(0)
    model = create_model("dni", blocks=1, width=8)
    with torch.no_grad():
        for p in model.net_b.parameters():
            p.add_(0.05 * torch.randn_like(p))  # B differs from A, as after fine-tuning
    model.set_endpoints(start, end)
    return model.eval()


def test_levels_beyond_the_endpoints_get_the_nearest_endpoint_network():
    model = _dni(3.0, 4.0)  # DNI's SR endpoints: A at x3, B at x4
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x, 2.0), model.net_a(x))
        assert torch.equal(model(x, 6.0), model.net_b(x))
        assert torch.equal(model(x, torch.tensor([2.0, 6.0])), torch.cat([model.net_a(x[:1]), model.net_b(x[1:])]))
        mid = functional_call(model.net_a, model.interpolated(0.5), (x,))
        assert torch.allclose(model(x, 3.5), mid, atol=1e-6)  # between them: the README rule
    assert [input_level(model, v) for v in (2, 3, 3.5, 4, 5, 6)] == [3.0, 3.0, 3.5, 4.0, 4.0, 4.0]


def test_reversed_endpoints_clip_the_same_way():
    model = _dni(80.0, 10.0)  # deJPEG: A at q80, B at q10
    assert [model.control_for(q) for q in (90, 80, 45, 10, 5)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert [model.nearest_level(q) for q in (90, 45, 5)] == [80.0, 45.0, 10.0]


def test_forward_control_keeps_the_readme_rule_and_tuning_keeps_to_interpolation():
    model = _dni(3.0, 4.0)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():  # an explicit alpha outside [0, 1] is still theta = alpha A + (1 - alpha) B
        assert torch.allclose(model.forward_control(x, 2.0), functional_call(model.net_a, model.interpolated(2.0), (x,)), atol=1e-6)
    ref, lo, hi = control_bracket(model, get_task("sr"), 2.0, 0.5)
    assert (ref, lo, hi) == (1.0, 1.0, 1.0)  # x2 +- 1: all of it at or below x3, i.e. endpoint A
    ref, lo, hi = control_bracket(model, get_task("sr"), 4.0, 0.5)
    assert (ref, lo, hi) == (0.0, 0.0, 1.0)
