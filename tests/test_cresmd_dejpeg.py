"""CResMD deJPEG trains with Charbonnier, not L1 (issue 28, part 6).

A JPEG-only CResMD trained with L1 returned its input exactly at every quality (quick and long
tables): JPEG leaves many pixels unchanged, and on those L1's gradient pulls the image-residual scale
towards 0 while the body is still near its x0.1 initialisation. The recipe's deJPEG section gives a
Charbonnier loss (baselines/recipes/cresmd.yaml), carried into the run config as `train.loss`.
"""

import pytest
import torch
from torch.nn import functional as F

from baselines.cresmd import charbonnier_loss, training_loss
from bench.common.errors import HyperbenchError
from bench.models.catalog import create_model
from bench.training.settings import run_recipe, training_settings

BUDGET = {"steps": 10, "batch": 2, "crop": 32, "lr": 1e-3}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: threads only add hand-offs (tests/conftest.py)


def test_dejpeg_runs_carry_charbonnier_and_denoise_runs_stay_l1():
    dejpeg = training_settings(run_recipe("cresmd", "dejpeg"), BUDGET, "test")
    assert dejpeg["loss"] == {"kind": "charbonnier", "eps": 1e-3}
    denoise = training_settings(run_recipe("cresmd", "denoise"), BUDGET, "test")
    assert "loss" not in denoise  # its run ids stay as they were
    for entry in ("adafm", "dni", "perlevel"):  # text losses (L1) add nothing to other entries' configs
        assert "loss" not in training_settings(run_recipe(entry, "dejpeg"), BUDGET, "test")


def test_training_loss_is_l1_unless_the_run_names_another():
    out, target = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    assert training_loss(None) is F.l1_loss and training_loss({"kind": "l1"}) is F.l1_loss
    charb = training_loss({"kind": "charbonnier", "eps": 1e-3})
    assert abs(float(charb(out, target)) - float(F.l1_loss(out, target))) < 2e-3  # L1 for errors well above eps
    assert float(charbonnier_loss(target, target, 1e-3)) == pytest.approx(1e-3)
    with pytest.raises(HyperbenchError, match="no loss"):
        training_loss({"kind": "mse"})


def _unchanged_pixels_gradient(criterion):
    """At initialisation, the gradient on the luma model's one image-residual scale from a batch whose
    input equals its target (the pixels JPEG leaves unchanged), and the scale's weight."""
    torch.manual_seed(0)
    model = create_model("cresmd", blocks=2, width=8, in_channels=1)
    model.set_endpoints(102.0, 10.0)
    x = torch.rand(4, 1, 16, 16)
    criterion(model(x, torch.tensor([90.0, 70.0, 40.0, 10.0])), x).backward()
    return float(model.global_scale.weight.grad), float(model.global_scale.weight.detach())


def test_l1_pulls_the_residual_scale_to_zero_on_unchanged_pixels_and_charbonnier_does_not():
    grad, weight = _unchanged_pixels_gradient(F.l1_loss)
    assert grad * weight > 0  # descent shrinks |weight|: towards the identity
    l1_pull = abs(grad)
    grad, _ = _unchanged_pixels_gradient(training_loss({"kind": "charbonnier", "eps": 1e-3}))
    assert abs(grad) < 0.02 * l1_pull  # smooth at 0: an output near the input feels almost no pull
