"""Official AdaFM checkpoints (hejingwenhejingwen/AdaFM) read into and written from `adafm` (AdaFM-Net) and
`plain` (the AdaFM basic model, also DNI's endpoint networks).

The official names and the official forward pass are written here from the facts of the official code,
independently of bench/weights/formats: AdaResNet (codes/models/modules/architecture.py:12-28) is one
flattened Sequential `model`: 0 stride-2 conv; 1 = ShortcutBlock whose `sub` holds the nb ResNetBlocks
(`res` = conv 0, norm 1, ReLU 2, conv 3, norm 4) then the LR conv (sub.nb) and its norm (sub.nb+1);
2 conv nf -> 4nf, 3 PixelShuffle, 4 ReLU, 5 conv, 6 ReLU, 7 conv. The norm is parameter-free for the basic
model and an AdaFM layer (depthwise conv `transformer`, y = x + transformer(x)) for AdaFM-Net; the official
interpolation scales the transformer weight and bias by lambda (codes/interpolate.py:45-52).
"""

import pytest
import torch
from torch.nn import functional as F

from bench.common.errors import HyperbenchError
from bench.models.catalog import create_model
from bench.weights.formats import adafm, plain
from bench.weights.official import to_official, to_suite, unwrap

FORMATS = {"adafm": adafm.FORMAT, "plain": plain.FORMAT}
CASES = [("plain", None), ("adafm", 1), ("adafm", 3)]  # (entry, AdaFM kernel size; None: basic model)
SMALL = {"blocks": 2, "width": 8, "in_channels": 3}


def official_shapes(blocks, width, in_channels, ksize=None):
    """name -> shape of the official state dict; ksize None gives the basic model (no AdaFM layers)."""

    def conv(name, cout, cin, k=3):
        return {f"{name}.weight": (cout, cin, k, k), f"{name}.bias": (cout,)}

    def fm(name):  # AdaFM layer: depthwise, one k x k filter per channel
        return conv(f"{name}.transformer", width, 1, ksize) if ksize else {}

    shapes = conv("model.0", width, in_channels)
    for i in range(blocks):
        shapes |= conv(f"model.1.sub.{i}.res.0", width, width) | fm(f"model.1.sub.{i}.res.1")
        shapes |= conv(f"model.1.sub.{i}.res.3", width, width) | fm(f"model.1.sub.{i}.res.4")
    shapes |= conv(f"model.1.sub.{blocks}", width, width) | fm(f"model.1.sub.{blocks + 1}")
    return shapes | conv("model.2", 4 * width, width) | conv("model.5", width, width) | conv("model.7", in_channels, width)


def official_state(seed=0, **kw):
    """Distinct random tensors under the official names (small enough for a stable forward pass)."""
    g = torch.Generator().manual_seed(seed)
    return {k: 0.05 * torch.randn(s, generator=g) for k, s in official_shapes(**kw).items()}


def official_forward(sd, x, lam, blocks):
    """The official AdaResNet forward, from the official names (lambda scales every AdaFM layer)."""

    def conv(name, h, stride=1, groups=1):
        w = sd[f"{name}.weight"]
        return F.conv2d(h, w, sd[f"{name}.bias"], stride=stride, padding=(w.shape[-1] - 1) // 2, groups=groups)

    def fm(name, h):
        if f"{name}.transformer.weight" not in sd:  # basic model: identity
            return h
        return h + lam * conv(f"{name}.transformer", h, groups=h.shape[1])

    fea = h = conv("model.0", x, stride=2)
    for i in range(blocks):
        r = torch.relu(fm(f"model.1.sub.{i}.res.1", conv(f"model.1.sub.{i}.res.0", h)))
        h = h + fm(f"model.1.sub.{i}.res.4", conv(f"model.1.sub.{i}.res.3", r))
    h = fea + fm(f"model.1.sub.{blocks + 1}", conv(f"model.1.sub.{blocks}", h))
    h = torch.relu(F.pixel_shuffle(conv("model.2", h), 2))
    return conv("model.7", torch.relu(conv("model.5", h)))


def ours(entry, model, x, lam):
    return model.forward_control(x, lam) if entry == "adafm" else model(x)


def imported(entry, obj, source="test.pth"):
    kwargs, state = to_suite(FORMATS[entry], unwrap(obj, FORMATS[entry], source)[0], source)
    model = create_model(entry, **kwargs).eval()
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert missing == (["endpoints"] if entry == "adafm" else [])
    return kwargs, state, model


def _kw(ksize):
    return SMALL | ({"ksize": ksize} if ksize else {})


@pytest.mark.parametrize("entry,ksize", CASES)
def test_import_puts_every_official_tensor_on_its_parameter(entry, ksize):
    sd = official_state(**SMALL, ksize=ksize)
    kwargs, state, model = imported(entry, sd)
    assert kwargs == _kw(ksize)
    # Named ones: the first conv, an AdaFM layer of a block and of the LR conv, the LR conv, the last conv.
    named = {"head.conv1.weight": "model.0.weight", "blocks.1.conv2.bias": "model.1.sub.1.res.3.bias",
             "tail.conv2.weight": "model.1.sub.2.weight", "tail.conv3.weight": "model.2.weight",
             "tail.conv4.bias": "model.5.bias", "tail.conv5.weight": "model.7.weight"}
    if ksize:
        named |= {"blocks.0.adafm1.conv.weight": "model.1.sub.0.res.1.transformer.weight",
                  "blocks.1.adafm2.conv.bias": "model.1.sub.1.res.4.transformer.bias",
                  "adafm_lr.conv.weight": "model.1.sub.3.transformer.weight"}
    for our_key, official in named.items():
        assert torch.equal(state[our_key], sd[official]), our_key
    # Every tensor is used once (all are distinct), and the forward pass equals the official one at
    # several lambdas, which no misplaced tensor would give.
    assert len(state) == len(sd) and all(sum(torch.equal(t, v) for t in state.values()) == 1 for v in sd.values())
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for lam in (0.0, 0.3, 1.0) if ksize else (None,):
            torch.testing.assert_close(ours(entry, model, x, lam), official_forward(sd, x, lam, SMALL["blocks"]))


@pytest.mark.parametrize("entry,ksize", CASES)
def test_round_trip_through_a_saved_official_file(entry, ksize, tmp_path):
    torch.manual_seed(0)
    model = create_model(entry, **_kw(ksize)).eval()
    if ksize:  # AdaFM layers start at zero: give them values so a misplaced one would show
        for p in model.adafm_parameters():
            torch.nn.init.normal_(p, std=0.05)
    state = {k: v for k, v in model.state_dict().items() if k != "endpoints"}
    path = tmp_path / "official.pth"
    torch.save(to_official(FORMATS[entry], state, _kw(ksize)), path)
    loaded = torch.load(path, weights_only=True)
    # The official code saves the bare state dict (BaseModel.save_network).
    assert {k: tuple(v.shape) for k, v in loaded.items()} == official_shapes(**SMALL, ksize=ksize)
    _, back, again = imported(entry, loaded, str(path))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        for lam in (0.0, 0.7) if ksize else (None,):
            assert torch.equal(ours(entry, again, x, lam), ours(entry, model, x, lam))
            torch.testing.assert_close(ours(entry, model, x, lam), official_forward(loaded, x, lam, SMALL["blocks"]))


@pytest.mark.parametrize("entry,ksize", CASES)
@pytest.mark.parametrize("container", ["module", "params", "state_dict"])
def test_dataparallel_prefix_and_wrappers_are_accepted(entry, ksize, container):
    sd = official_state(**SMALL, ksize=ksize)
    obj = {f"module.{k}": v for k, v in sd.items()} if container == "module" else {container: sd, "iter": 5}
    _, state, _ = imported(entry, obj)
    assert torch.equal(state["tail.conv5.bias"], sd["model.7.bias"])


def _problem(entry, sd):
    with pytest.raises(HyperbenchError) as err:
        to_suite(FORMATS[entry], unwrap(sd, FORMATS[entry], "bad.pth")[0], "bad.pth")
    return str(err.value)


@pytest.mark.parametrize("entry,ksize", CASES)
def test_bad_files_name_the_offending_key(entry, ksize):
    good = official_state(**SMALL, ksize=ksize)
    unknown = good | {"model.1.sub.0.res.2.weight": torch.zeros(8, 8, 3, 3)}  # res.2 is the ReLU
    assert "unknown keys (model.1.sub.0.res.2.weight" in _problem(entry, unknown)
    missing = {k: v for k, v in good.items() if k != "model.5.bias"}
    assert "missing keys (model.5.bias)" in _problem(entry, missing)
    shape = good | {"model.7.weight": torch.zeros(1, 8, 3, 3)}  # 1 output channel for an RGB input
    assert "model.7.weight: (1, 8, 3, 3), expected (3, 8, 3, 3)" in _problem(entry, shape)
    assert "lacks 'model.0.weight'" in _problem(entry, {k: v for k, v in good.items() if k != "model.0.weight"})


def test_basic_and_adafm_files_are_told_apart():
    basic, ada = official_state(**SMALL), official_state(**SMALL, ksize=1)
    assert "lacks 'model.1.sub.3.transformer.weight'" in _problem("adafm", basic)
    assert "unknown keys (model.1.sub.0.res.1.transformer.bias" in _problem("plain", ada)
    # one AdaFM layer with another kernel than the rest (the LR conv's layer sets ksize)
    odd = ada | {"model.1.sub.0.res.4.transformer.weight": torch.zeros(8, 1, 3, 3)}
    assert "model.1.sub.0.res.4.transformer.weight: (8, 1, 3, 3), expected (8, 1, 1, 1)" in _problem("adafm", odd)


def test_default_size_matches_the_official_counts_and_exports_from_partial_kwargs():
    # 140 / 74 tensors and 1,411,011 / 1,406,787 parameters: AdaFM-Net (ksize 1) and the basic model.
    for entry, ksize, n_keys, n_params in (("adafm", 1, 140, 1_411_011), ("plain", None, 74, 1_406_787)):
        shapes = official_shapes(16, 64, 3, ksize)
        assert len(shapes) == n_keys and sum(torch.Size(s).numel() for s in shapes.values()) == n_params
        model = create_model(entry)
        state = {k: v for k, v in model.state_dict().items() if k != "endpoints"}
        exported = to_official(FORMATS[entry], state, {})  # a run's model_kwargs may omit the defaults
        assert {k: tuple(v.shape) for k, v in exported.items()} == shapes
        kwargs, back = to_suite(FORMATS[entry], exported, "default.pth")
        assert kwargs == {"blocks": 16, "width": 64, "in_channels": 3} | ({"ksize": 1} if ksize else {})
        assert all(torch.equal(back[k], state[k]) for k in state)
        assert torch.equal(back["adafm_lr.conv.weight" if ksize else "tail.conv2.weight"],
                           exported["model.1.sub.17.transformer.weight" if ksize else "model.1.sub.16.weight"])


def test_export_refusal_and_release_records():
    with pytest.raises(HyperbenchError, match="ksize 2"):
        to_official(adafm.FORMAT, {}, {"ksize": 2})
    assert adafm.FORMAT.export_refusal({"ksize": 5, "width": 32, "blocks": 4, "in_channels": 1}) is None
    (release,) = adafm.FORMAT.files
    assert (release.name, release.task, release.levels) == ("noise15to75.pth", "denoise", (15, 75))
    assert plain.FORMAT.files == ()  # the official repository releases no basic model
    with pytest.raises(ValueError):
        adafm.FORMAT.official_key("blocks.0.conv9.weight", SMALL)
    with pytest.raises(ValueError):
        plain.FORMAT.official_key("adafm_lr.conv.weight", SMALL)
