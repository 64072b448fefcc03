"""Official CFSNet checkpoints (qibao77/CFSNet) in and out of the suite's cfsnet.

The expected names are written here from the official modules, not from the format's mapping: the CFSNet
module holds `main` (MainNet: head, body[i].body = Sequential(conv, ReLU, conv), end) and `tuning_blocks`
(TuningBlockModule: control_alpha, adaptive_alpha[i], tuning_blocks[i].conv0/conv1); files are plain
state dicts (CFSNetModel.save_network)."""

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from bench.common.errors import HyperbenchError
from bench.models.catalog import create_model
from bench.weights.formats.cfsnet import FORMAT
from bench.weights.official import to_official, to_suite, unwrap

BLOCKS, WIDTH = 2, 8


def official_shapes(blocks=BLOCKS, width=WIDTH, channels=3) -> dict:
    """Official name -> shape of a denoise/deblock CFSNet (models/modules/*.py)."""
    conv = (width, width, 3, 3)
    shapes = {"main.head.weight": (width, channels, 3, 3), "main.end.weight": (channels, width, 3, 3),
              "tuning_blocks.control_alpha.0.weight": (256, 512), "tuning_blocks.control_alpha.1.weight": (128, 256),
              "tuning_blocks.control_alpha.2.weight": (width, 128)}
    for i in range(blocks):
        for j in (0, 2):
            shapes[f"main.body.{i}.body.{j}.weight"] = conv
            shapes[f"main.body.{i}.body.{j}.bias"] = (width,)
        for j in (0, 1):
            shapes[f"tuning_blocks.adaptive_alpha.{i}.{j}.weight"] = (width, width)
            shapes[f"tuning_blocks.tuning_blocks.{i}.conv{j}.weight"] = conv
    return shapes


def official_state(seed=0, **kw) -> OrderedDict:
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, 0.1 * torch.randn(s, generator=g)) for k, s in official_shapes(**kw).items())


def official_forward(s: dict, x: torch.Tensor, alpha: float, residual: bool) -> torch.Tensor:
    """The official CFSNet.forward (architecture.py) written on the official names."""
    def conv(t, name, bias=None):
        return F.conv2d(t, s[name], None if bias is None else s[bias], padding=1)

    code = alpha * torch.ones(x.shape[0], 512)
    for j in range(3):
        code = code @ s[f"tuning_blocks.control_alpha.{j}.weight"].T
    head = out = conv(x, "main.head.weight")
    i = 0
    while f"main.body.{i}.body.0.weight" in s:
        a = code @ s[f"tuning_blocks.adaptive_alpha.{i}.0.weight"].T @ s[f"tuning_blocks.adaptive_alpha.{i}.1.weight"].T
        a = a[:, :, None, None]
        b = f"main.body.{i}.body."
        main = out + conv(F.relu(conv(out, b + "0.weight", b + "0.bias")), b + "2.weight", b + "2.bias")
        t = f"tuning_blocks.tuning_blocks.{i}."
        tuning = conv(F.relu(conv(out, t + "conv0.weight")), t + "conv1.weight")
        out = main * (1 - a) + tuning * a
        i += 1
    out = conv(out + head, "main.end.weight")
    return x - out if residual else out


def imported(obj, name="ckpt.pth"):
    state, extras = unwrap(obj, FORMAT, name)
    return to_suite(FORMAT, state, name)


def model_with(kwargs, ours):
    model = create_model("cfsnet", **kwargs)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    assert missing == ["endpoints"] and not unexpected
    return model.eval()


def test_import_places_each_official_tensor_and_matches_the_official_forward():
    official = official_state()
    kwargs, ours = imported(official)
    assert kwargs == {"main_blocks": BLOCKS, "width": WIDTH, "in_channels": 3}
    pairs = {"main.head.weight": "main.head.weight", "main.end.weight": "main.end.weight",
             "main.blocks.0.conv1.weight": "main.body.0.body.0.weight",
             "main.blocks.1.conv2.bias": "main.body.1.body.2.bias",
             "tuning.control_alpha.2.weight": "tuning_blocks.control_alpha.2.weight",
             "tuning.adaptive_alpha.1.0.weight": "tuning_blocks.adaptive_alpha.1.0.weight",
             "tuning.blocks.0.conv1.weight": "tuning_blocks.tuning_blocks.0.conv0.weight",
             "tuning.blocks.1.conv2.weight": "tuning_blocks.tuning_blocks.1.conv1.weight"}
    for our_key, official_key in pairs.items():
        assert torch.equal(ours[our_key], official[official_key]), our_key
    # every official tensor lands on exactly one of our parameters
    assert len(ours) == len(official)
    for key, tensor in official.items():
        assert sum(t.shape == tensor.shape and torch.equal(t, tensor) for t in ours.values()) == 1, key

    model = model_with(kwargs, ours)
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        for alpha in (0.0, 0.5, 1.0, -0.3):
            expected = official_forward(official, x, alpha, residual=True)
            assert torch.allclose(model.forward_control(x, alpha), expected, rtol=1e-4, atol=1e-5), alpha
        model.set_endpoints(25, 50)
        assert torch.allclose(model(x, 50.0), official_forward(official, x, 1.0, residual=True), rtol=1e-4, atol=1e-5)


def test_round_trip_through_a_file_is_exact(tmp_path):
    kwargs = {"main_blocks": BLOCKS, "width": WIDTH, "in_channels": 3}
    model = create_model("cfsnet", **kwargs)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():  # biases non-zero, all tensors distinct
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    model.set_endpoints(25, 50)
    model.eval()

    exported = to_official(FORMAT, model.state_dict(), kwargs)
    assert sorted(exported) == sorted(official_shapes())  # a plain state dict with the official names
    assert {k: tuple(v.shape) for k, v in exported.items()} == official_shapes()
    path = tmp_path / "latest_G.pth"
    torch.save(exported, path)
    back_kwargs, ours = imported(torch.load(path, weights_only=True), str(path))
    assert back_kwargs == kwargs

    own = model.state_dict()
    assert set(ours) == set(own) - {"endpoints"}
    for key, tensor in ours.items():
        assert torch.equal(tensor, own[key]), key
    again = model_with(back_kwargs, ours)
    again.set_endpoints(25, 50)
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        for level in (25.0, 37.5, 50.0, 60.0):
            assert torch.equal(again(x, level), model(x, level)), level


def test_module_prefix_and_plain_container_accepted_gray_and_rgb_inferred():
    official = official_state(channels=1)
    kwargs, ours = imported(OrderedDict((f"module.{k}", v) for k, v in official.items()))
    assert kwargs == {"main_blocks": BLOCKS, "width": WIDTH, "in_channels": 1}
    assert torch.equal(ours["main.head.weight"], official["main.head.weight"])
    model = model_with(kwargs, ours)
    with torch.no_grad():
        assert model.forward_control(torch.rand(1, 1, 8, 8), 0.5).shape == (1, 1, 8, 8)

    kwargs, _ = imported(dict(official_state(blocks=3, width=4, channels=3)))
    assert kwargs == {"main_blocks": 3, "width": 4, "in_channels": 3}


def test_deblock_config_predicts_the_image():
    official = official_state(channels=1)
    kwargs, ours = imported(official)
    model = create_model("cfsnet", **kwargs, residual=False)
    model.load_state_dict(ours, strict=False)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.forward_control(x, 0.7), official_forward(official, x, 0.7, residual=False),
                              rtol=1e-4, atol=1e-5)


def test_wrapped_or_sr_checkpoints_are_refused():
    with pytest.raises(HyperbenchError, match="holds no tensors"):  # the official code reads a plain state dict only
        imported({"state_dict": official_state(), "epoch": 3})
    sr = official_state()
    sr["main.tail.0.weight"] = torch.zeros(WIDTH, WIDTH, 3, 3)
    sr["main.tail.1.0.weight"] = torch.zeros(4 * WIDTH, WIDTH, 1, 1)
    with pytest.raises(HyperbenchError, match=r"super-resolution.*main\.tail\.0\.weight"):
        imported(sr)


@pytest.mark.parametrize("damage, key", [
    ("unknown", "tuning_blocks.tuning_blocks.2.conv0.weight"),
    ("unknown", "main.body.0.body.1.weight"),
    ("missing", "main.body.1.body.2.bias"),
    ("missing", "tuning_blocks.adaptive_alpha.0.1.weight"),
    ("shape", "tuning_blocks.tuning_blocks.1.conv1.weight"),
    ("shape", "main.end.weight"),
])
def test_bad_files_name_the_offending_key(damage, key):
    official = official_state()
    if damage == "unknown":
        official[key] = torch.zeros(WIDTH, WIDTH, 3, 3)
    elif damage == "missing":
        del official[key]
    else:
        official[key] = torch.zeros(official[key].shape[0] + 1, *official[key].shape[1:])
    with pytest.raises(HyperbenchError) as err:
        imported(official)
    assert key in str(err.value)
    assert {"unknown": "unknown keys", "missing": "missing keys", "shape": "another shape"}[damage] in str(err.value)


def test_missing_head_is_named():
    official = official_state()
    del official["main.head.weight"]
    with pytest.raises(HyperbenchError, match=r"lacks 'main\.head\.weight'"):
        imported(official)


def test_release_records():
    assert {(f.task, tuple(f.levels)) for f in FORMAT.files} == {("denoise", (25, 50)), ("dejpeg", (10, 40))}
    assert all("12O5FDgZ99jdbyeyLeAgiM-4ygsoAeq0l" in f.source for f in FORMAT.files)
