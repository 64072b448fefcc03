"""CResMD's official checkpoint format (bench/weights/formats/cresmd.py).

The official names below are written from hejingwenhejingwen/CResMD codes/models/archs/CResMDNet_arch.py
(CResMDNet: global_scale, conv_first, recon_trunk.<i> of ResidualBlock_CRes with conv1, conv2,
local_scale, then upconv, HRconv, conv_last), not from the format's mapping function; the released files
are plain state dicts (mmsr save_network). `official_forward` is the official computation written out
with functional ops, so our model is checked to compute the same thing from the same tensors.
"""

from collections import OrderedDict

import pytest
import torch
from torch.nn import functional as F

from bench.common.errors import HyperbenchError
from bench.models.catalog import create_model
from bench.weights.formats.cresmd import FORMAT
from bench.weights.official import to_official, to_suite, unwrap

OUR_PART = {"head": "conv_first", "upconv": "upconv", "hr_conv": "HRconv", "last": "conv_last",
            "global_scale": "global_scale", "conv1": "conv1", "conv2": "conv2", "scale": "local_scale"}


def official_shapes(blocks: int, cond_dim: int, width: int = 8, cin: int = 3) -> dict:
    shapes = {"global_scale.weight": (cin, cond_dim), "global_scale.bias": (cin,),
              "conv_first.weight": (width, cin, 3, 3), "conv_first.bias": (width,)}
    for i in range(blocks):
        for conv in ("conv1", "conv2"):
            shapes[f"recon_trunk.{i}.{conv}.weight"] = (width, width, 3, 3)
            shapes[f"recon_trunk.{i}.{conv}.bias"] = (width,)
        shapes[f"recon_trunk.{i}.local_scale.weight"] = (width, cond_dim)
        shapes[f"recon_trunk.{i}.local_scale.bias"] = (width,)
    shapes.update({"upconv.weight": (4 * width, width, 3, 3), "upconv.bias": (4 * width,),
                   "HRconv.weight": (width, width, 3, 3), "HRconv.bias": (width,),
                   "conv_last.weight": (cin, width, 3, 3), "conv_last.bias": (cin,)})
    return shapes


def official_state(blocks=2, cond_dim=2, width=8, seed=0) -> OrderedDict:
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, 0.1 * torch.randn(s, generator=g)) for k, s in official_shapes(blocks, cond_dim, width).items())


def expected_official(our_key: str) -> str:
    parts = our_key.split(".")
    if parts[0] == "blocks":
        return f"recon_trunk.{parts[1]}.{OUR_PART[parts[2]]}.{parts[3]}"
    return f"{OUR_PART[parts[0]]}.{parts[1]}"


def official_forward(sd: dict, x: torch.Tensor, cond: torch.Tensor, blocks: int) -> torch.Tensor:
    def conv(name, t, stride=1):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=stride, padding=1)

    def linear(name):
        return F.linear(cond, sd[f"{name}.weight"], sd[f"{name}.bias"])[:, :, None, None]

    f = conv("conv_first", x, stride=2)
    for i in range(blocks):
        p = f"recon_trunk.{i}"
        f = f + conv(f"{p}.conv2", F.relu(conv(f"{p}.conv1", f))) * linear(f"{p}.local_scale")
    f = F.relu(F.pixel_shuffle(conv("upconv", f), 2))
    return x + conv("conv_last", F.relu(conv("HRconv", f))) * linear("global_scale")


def imported(obj, source="official.pth"):
    state, _ = unwrap(obj, FORMAT, source)
    kwargs, ours = to_suite(FORMAT, state, source)
    model = create_model("cresmd", **kwargs)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    assert list(missing) == ["endpoints"] and not unexpected
    return kwargs, ours, model


def test_official_names_land_on_our_parameters_and_compute_the_official_output():
    official = official_state(blocks=2, cond_dim=2)
    kwargs, ours, model = imported(official)
    assert kwargs == {"blocks": 2, "width": 8, "in_channels": 3, "cond_dim": 2, "cond_index": 1}
    assert len(ours) == len(official) == 22
    for key, tensor in ours.items():
        assert torch.equal(tensor, official[expected_official(key)]), key
    assert {expected_official(k) for k in ours} == set(official)
    named = {"head.weight": "conv_first.weight", "blocks.1.scale.weight": "recon_trunk.1.local_scale.weight",
             "blocks.0.conv2.bias": "recon_trunk.0.conv2.bias", "hr_conv.weight": "HRconv.weight",
             "last.bias": "conv_last.bias", "global_scale.weight": "global_scale.weight", "upconv.weight": "upconv.weight"}
    state = model.state_dict()
    for our, theirs in named.items():
        assert torch.equal(state[our], official[theirs]), our
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(1))
    cond = torch.tensor([[0.3, 0.6], [0.0, 1.0]])
    with torch.no_grad():
        out = model.forward_control(x, cond)
        assert out.shape == x.shape and torch.isfinite(out).all()
        torch.testing.assert_close(out, official_forward(official, x, cond, 2))
        # a level drives the noise entry: sigma 30 is condition [0, 30 / 50] with the default endpoints (0, 50)
        torch.testing.assert_close(model(x, 30.0), official_forward(official, x, torch.tensor([[0.0, 0.6]] * 2), 2))


def test_round_trip_through_a_saved_official_file(tmp_path):
    torch.manual_seed(0)
    model = create_model("cresmd", blocks=2, width=64, cond_dim=3, cond_index=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # no zero biases: every tensor distinct
    kwargs = {"blocks": 2, "width": 64, "in_channels": 3, "cond_dim": 3, "cond_index": 1}
    official = to_official(FORMAT, model.state_dict(), kwargs)
    assert set(official) == set(official_shapes(2, 3, width=64))
    path = tmp_path / "3D_modulation.pth"
    torch.save(official, path)
    back, ours, again = imported(torch.load(path, weights_only=True), str(path))
    assert back == kwargs
    again.endpoints.copy_(model.endpoints)
    before, after = model.state_dict(), again.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x, 25.0), again(x, 25.0))


def test_export_refuses_what_the_official_code_cannot_build():
    small = create_model("cresmd", blocks=1, width=8)
    with pytest.raises(HyperbenchError, match="width 8"):
        to_official(FORMAT, small.state_dict(), {"blocks": 1, "width": 8})
    gray = create_model("cresmd", blocks=1, in_channels=1)
    with pytest.raises(HyperbenchError, match="1 input channels"):
        to_official(FORMAT, gray.state_dict(), {"blocks": 1, "in_channels": 1})


@pytest.mark.parametrize("wrap", [
    lambda s: OrderedDict(s),  # as mmsr's save_network writes it
    lambda s: OrderedDict((f"module.{k}", v) for k, v in s.items()),  # a DataParallel state dict
    lambda s: {"params": {f"module.{k}": v for k, v in s.items()}},  # a BasicSR-style container
])
def test_containers_and_module_prefix_are_accepted(wrap):
    official = official_state(blocks=1, cond_dim=3)
    kwargs, ours, _ = imported(wrap(official))
    assert kwargs["cond_dim"] == 3 and torch.equal(ours["blocks.0.scale.weight"], official["recon_trunk.0.local_scale.weight"])


@pytest.mark.parametrize("cond_dim", [1, 2, 3])
def test_cond_dim_is_read_from_the_scale_layers(cond_dim):
    kwargs, _, model = imported(official_state(blocks=3, cond_dim=cond_dim, width=4))
    assert kwargs == {"blocks": 3, "width": 4, "in_channels": 3, "cond_dim": cond_dim, "cond_index": 1 if cond_dim > 1 else 0}
    assert model.blocks[2].scale.in_features == cond_dim


def _unknown(s):
    s["recon_trunk.0.bn.weight"] = torch.ones(8)
    return "recon_trunk.0.bn.weight"


def _missing(s):
    del s["recon_trunk.1.local_scale.bias"]
    return "recon_trunk.1.local_scale.bias"


def _shape(s):
    s["HRconv.weight"] = torch.zeros(8, 8, 1, 1)
    return "HRconv.weight"


def _no_head(s):
    del s["conv_first.weight"]
    return "conv_first.weight"


@pytest.mark.parametrize("spoil", [_unknown, _missing, _shape, _no_head])
def test_bad_files_name_the_offending_key(spoil):
    state = official_state(blocks=2, cond_dim=2)
    key = spoil(state)
    with pytest.raises(HyperbenchError) as err:
        imported(state, "bad.pth")
    assert key in str(err.value) and "bad.pth" in str(err.value)


def test_release_records():
    records = {(f.name, f.task): f for f in FORMAT.files}
    assert set(records) == {("2D_modulation.pth", "denoise"), ("3D_modulation.pth", "denoise"), ("3D_modulation.pth", "dejpeg")}
    assert records["2D_modulation.pth", "denoise"].levels == (0, 50) and records["3D_modulation.pth", "dejpeg"].levels == (100, 10)
    assert all(f.source.endswith(f.name) for f in FORMAT.files)
