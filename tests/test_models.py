"""Every registered model: forward, backward, no NaN, and the official parameter counts."""

import pytest
import torch

from bench.models.catalog import count_params, create_model, list_models, model_cfg

ALL = list_models()
COUNTS = [(name, oc) for name in ALL for oc in model_cfg(name).official_counts]


def _input(model, size=16):
    return torch.rand(2, model.in_channels if hasattr(model, "in_channels") else 3, size, size)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_no_nan(name):
    torch.manual_seed(0)
    cfg = model_cfg(name)
    model = create_model(name, **cfg.test_kwargs)
    x = _input(model)
    level = [float(cfg.test_kwargs.get("levels", [15.0])[0])] * 2
    out = model(x, torch.tensor(level))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    out.abs().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]  # a bank trains only the chosen member
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name,oc", COUNTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(COUNTS)])
def test_param_count_equals_official(name, oc):
    assert count_params(create_model(name, **oc.kwargs)) == oc.params


def test_registry_counts_equal_the_shared_reference(official_counts):
    hr = official_counts["HyperRes"]
    expected = {
        (16, 3): hr["rgb_meta_blocks16_default"]["params"], (16, 1): hr["gray_meta_blocks16"]["params"],
        (1, 3): hr["rgb_meta_blocks1"]["params"], (1, 1): hr["gray_meta_blocks1"]["params"],
    }
    for (blocks, ch), params in expected.items():
        assert count_params(create_model("hyperres", meta_blocks=blocks, in_channels=ch)) == params
    assert count_params(create_model("plain")) == official_counts["AdaFM"]["basic_model_rgb"]["params"]
    assert create_model("hyperres").main_network_params() == hr["rgb_meta_blocks16_default"]["generated_main_net_per_level"]
    assert create_model("hyperres", meta_blocks=1).main_network_params() == hr["rgb_meta_blocks1"]["generated_main_net_per_level"]


def test_hyperres_weights_are_affine_in_level():
    torch.manual_seed(0)
    model = create_model("hyperres", meta_blocks=1, width=4)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    conv = model.blocks[0].conv1
    w = {z: conv.weights(z)[0] for z in (0.1, 0.2, 0.3)}
    assert torch.allclose(w[0.2] - w[0.1], w[0.3] - w[0.2], atol=1e-6)


def test_hyperres_level_is_divided_by_255():
    torch.manual_seed(0)
    model = create_model("hyperres", meta_blocks=1, width=4)
    seen = []
    model.blocks[0].conv1.forward = lambda x, z, f=model.blocks[0].conv1.forward: (seen.append(z), f(x, z))[1]
    model(torch.rand(1, 3, 8, 8), 51.0)
    assert seen == [pytest.approx(0.2)]


def test_hyperres_mixed_levels_equal_separate_calls():
    torch.manual_seed(0)
    model = create_model("hyperres", meta_blocks=2, width=8)
    x = torch.rand(4, 3, 16, 16)
    levels = torch.tensor([15.0, 75.0, 15.0, 35.0])
    joint = model(x, levels)
    separate = torch.cat([model(x[i : i + 1], float(levels[i])) for i in range(4)])
    assert torch.allclose(joint, separate, atol=1e-6)


def test_bank_dispatches_to_nearest_trained_level():
    torch.manual_seed(0)
    bank = create_model("perlevel", levels=[15, 50], blocks=1, width=4)
    x = torch.rand(1, 3, 8, 8)
    assert bank.nearest_level(20) == 15 and bank.nearest_level(40) == 50
    assert torch.equal(bank(x, 20.0), bank.members["15"](x))
    assert not torch.equal(bank(x, 20.0), bank(x, 45.0))


def test_bad_inputs_are_clear():
    from bench.common.errors import HyperbenchError

    model = create_model("hyperres", meta_blocks=1, width=4)
    with pytest.raises(HyperbenchError, match="3 input channel"):
        model(torch.rand(1, 1, 8, 8), 15.0)
    with pytest.raises(HyperbenchError, match="even height and width"):
        model(torch.rand(1, 3, 9, 8), 15.0)
