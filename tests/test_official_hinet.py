"""Official HINet checkpoints (megvii-model/HINet) in and out of the suite's `hinet`.

The official names and shapes are written here from basicsr/models/archs/hinet_arch.py (HINet.__init__,
UNetConvBlock, UNetUpBlock, SAM), independently of the format's mapping, and so is a forward pass over
the official-named tensors: an imported model must compute what the official network computes."""

import pytest
import torch
from torch.nn import functional as F

from bench.common.errors import HyperbenchError
from bench.models.catalog import create_model
from bench.weights.formats.hinet import FORMAT
from bench.weights.official import to_official, to_suite, unwrap

WIDTH = 8


def official_shapes(wf=WIDTH, in_chn=3, hin=(0, 4), depth=5):
    """Official key -> shape, following HINet.__init__ (the SAM's image channels are hard-coded 3)."""
    shapes = {}

    def conv(name, cout, cin, k, bias=True):
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        if bias:
            shapes[f"{name}.bias"] = (cout,)

    def conv_block(prefix, cin, cout):  # UNetConvBlock's always-present layers
        conv(f"{prefix}.identity", cout, cin, 1)
        conv(f"{prefix}.conv_1", cout, cin, 3)
        conv(f"{prefix}.conv_2", cout, cout, 3)

    conv("conv_01", wf, in_chn, 3)
    conv("conv_02", wf, in_chn, 3)
    for path in (1, 2):
        prev = wf
        for i in range(depth):
            c, p = wf * 2**i, f"down_path_{path}.{i}"
            conv_block(p, prev, c)
            if path == 2 and i + 1 < depth:
                conv(f"{p}.csff_enc", c, c, 3)
                conv(f"{p}.csff_dec", c, c, 3)
            if hin[0] <= i <= hin[1]:
                shapes[f"{p}.norm.weight"] = shapes[f"{p}.norm.bias"] = (c // 2,)
            if i + 1 < depth:
                conv(f"{p}.downsample", c, c, 4, bias=False)
            prev = c
        for j, i in enumerate(reversed(range(depth - 1))):
            c = wf * 2**i
            shapes[f"up_path_{path}.{j}.up.weight"] = (prev, c, 2, 2)
            shapes[f"up_path_{path}.{j}.up.bias"] = (c,)
            conv_block(f"up_path_{path}.{j}.conv_block", prev, c)
            conv(f"skip_conv_{path}.{j}", c, c, 3)
            prev = c
    conv("sam12.conv1", wf, wf, 3)
    conv("sam12.conv2", 3, wf, 3)
    conv("sam12.conv3", wf, 3, 3)
    conv("cat12", wf, 2 * wf, 1)
    conv("last", in_chn, wf, 3)
    return shapes


def official_state(seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    return {k: 0.1 * torch.randn(s, generator=gen) for k, s in official_shapes(**kw).items()}


def official_forward(st, x):
    """(stage-1 image, stage-2 image) as HINet.forward computes them, over the official names."""

    def conv(name, t):
        w = st[f"{name}.weight"]
        return F.conv2d(t, w, st.get(f"{name}.bias"), padding=w.shape[-1] // 2)

    def block(p, t, enc=None, dec=None):
        out = conv(f"{p}.conv_1", t)
        if f"{p}.norm.weight" in st:
            a, b = torch.chunk(out, 2, dim=1)
            out = torch.cat([F.instance_norm(a, weight=st[f"{p}.norm.weight"], bias=st[f"{p}.norm.bias"]), b], dim=1)
        out = F.leaky_relu(conv(f"{p}.conv_2", F.leaky_relu(out, 0.2)), 0.2) + conv(f"{p}.identity", t)
        if enc is not None:
            out = out + conv(f"{p}.csff_enc", enc) + conv(f"{p}.csff_dec", dec)
        if f"{p}.downsample.weight" in st:
            return F.conv2d(out, st[f"{p}.downsample.weight"], stride=2, padding=1), out
        return out

    def unet(path, t, encs1=None, decs1=None):
        encs, decs = [], []
        for i in range(4):
            t, skip = block(f"down_path_{path}.{i}", t, *((encs1[i], decs1[-i - 1]) if encs1 else ()))
            encs.append(skip)
        t = block(f"down_path_{path}.4", t)
        for j in range(4):
            up = F.conv_transpose2d(t, st[f"up_path_{path}.{j}.up.weight"], st[f"up_path_{path}.{j}.up.bias"], stride=2)
            t = block(f"up_path_{path}.{j}.conv_block", torch.cat([up, conv(f"skip_conv_{path}.{j}", encs[-j - 1])], dim=1))
            decs.append(t)
        return t, encs, decs

    x1, encs, decs = unet(1, conv("conv_01", x))
    image = conv("sam12.conv2", x1) + x
    sam = conv("sam12.conv1", x1) * torch.sigmoid(conv("sam12.conv3", image)) + x1
    x2, _, _ = unet(2, conv("cat12", torch.cat([conv("conv_02", x), sam], dim=1)), encs, decs)
    return image, conv("last", x2) + x


def _load(kwargs, ours):
    model = create_model("hinet", **kwargs)
    model.load_state_dict(ours)  # strict: every parameter is set
    return model.eval()


@pytest.mark.parametrize("hin", [(0, 4), (3, 4)])
def test_official_checkpoint_lands_on_the_right_parameters(hin):
    st = official_state(hin=hin)
    kwargs, ours = to_suite(FORMAT, unwrap({"params": st}, FORMAT, "t.pth")[0], "t.pth")
    assert kwargs == {"width": WIDTH, "in_channels": 3, "hin_levels": list(hin)}
    assert len(ours) == len(st)
    for own, official in [
        ("stage1.conv_in.weight", "conv_01.weight"), ("stage2.conv_in.bias", "conv_02.bias"),
        ("stage1.encoder.0.shortcut.weight", "down_path_1.0.identity.weight"),
        ("stage1.encoder.4.norm.bias", "down_path_1.4.norm.bias"),
        ("stage2.encoder.1.conv2.weight", "down_path_2.1.conv_2.weight"),
        ("stage2.encoder.1.fuse_enc.weight", "down_path_2.1.csff_enc.weight"),
        ("stage2.encoder.3.fuse_dec.bias", "down_path_2.3.csff_dec.bias"),
        ("stage1.encoder.2.down.weight", "down_path_1.2.downsample.weight"),
        ("stage1.decoder.0.up.weight", "up_path_1.0.up.weight"),
        ("stage2.decoder.3.skip.weight", "skip_conv_2.3.weight"),
        ("stage2.decoder.2.block.conv1.weight", "up_path_2.2.conv_block.conv_1.weight"),
        ("sam.conv3.weight", "sam12.conv3.weight"), ("merge.weight", "cat12.weight"), ("last.bias", "last.bias"),
    ]:
        assert torch.equal(ours[own], st[official]), (own, official)
    assert "stage1.encoder.0.norm.weight" in ours if hin[0] == 0 else "stage1.encoder.0.norm.weight" not in ours
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = _load(kwargs, ours).stages(x)
        want = official_forward(st, x)
    for g, w in zip(got, want):
        assert g.shape == x.shape and torch.isfinite(g).all()
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hin", [(0, 4), (3, 4)])
def test_round_trip_through_a_file(tmp_path, hin):
    torch.manual_seed(0)
    model = create_model("hinet", width=WIDTH, hin_levels=hin).eval()
    with torch.no_grad():  # the norms start at 1 / 0: make them distinct too
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    kwargs = {"width": WIDTH, "in_channels": 3, "hin_levels": list(hin)}
    obj = to_official(FORMAT, model.state_dict(), kwargs)
    assert list(obj) == ["params"] and set(obj["params"]) == set(official_shapes(hin=hin))
    torch.save(obj, tmp_path / "HINet.pth")
    loaded = torch.load(tmp_path / "HINet.pth", weights_only=True)
    got_kwargs, ours = to_suite(FORMAT, unwrap(loaded, FORMAT, "HINet.pth")[0], "HINet.pth")
    assert got_kwargs == kwargs
    own = model.state_dict()
    assert set(ours) == set(own) and all(torch.equal(ours[k], own[k]) for k in own)
    x = torch.rand(1, 3, 36, 26)  # padded inside the model to 48 x 32, cropped back
    with torch.no_grad():
        assert torch.equal(_load(got_kwargs, ours)(x), model(x))


def test_module_prefix_and_container_accepted_and_width_inferred():
    st = official_state(wf=16)
    for obj in ({"params": {f"module.{k}": v for k, v in st.items()}}, {f"module.{k}": v for k, v in st.items()}, st):
        state, _ = unwrap(obj, FORMAT, "t.pth")
        kwargs, ours = to_suite(FORMAT, state, "t.pth")
        assert kwargs["width"] == 16 and kwargs["in_channels"] == 3
        assert torch.equal(ours["stage1.encoder.3.conv1.weight"], st["down_path_1.3.conv_1.weight"])
        assert ours["stage1.encoder.3.conv1.weight"].shape == (128, 64, 3, 3)


def _fails(state, *names):
    with pytest.raises(HyperbenchError) as exc:
        to_suite(FORMAT, state, "bad.pth")
    for name in names:
        assert name in str(exc.value)
    return str(exc.value)


def test_bad_files_name_the_offending_key():
    st = official_state()
    _fails({**st, "down_path_1.0.extra.weight": torch.zeros(1)}, "unknown", "down_path_1.0.extra.weight")
    _fails({k: v for k, v in st.items() if k != "down_path_2.3.csff_dec.bias"}, "missing", "down_path_2.3.csff_dec.bias")
    _fails({**st, "cat12.weight": torch.zeros(WIDTH, WIDTH, 1, 1)}, "shape", "cat12.weight")
    _fails({k: v for k, v in st.items() if k != "conv_01.weight"}, "conv_01.weight")
    _fails(official_state(depth=4), "depth 4")
    _fails(official_state(in_chn=1), "sam12.conv2.weight")  # a gray official SAM still outputs 3 channels
    with pytest.raises(HyperbenchError, match="SAM"):
        to_official(FORMAT, create_model("hinet", width=4, in_channels=1).state_dict(), {"width": 4, "in_channels": 1})
    with pytest.raises(ValueError):
        FORMAT.official_key("stage1.encoder.0.bogus.weight", {})


def test_released_files_are_recorded_with_their_setting():
    names = {f.name: f for f in FORMAT.files}
    assert set(names) == {"HINet-SIDD-1x.pth", "HINet-SIDD-0.5x.pth", "HINet-GoPro.pth", "HINet-REDS.pth", "HINet-Rain13k.pth"}
    assert all("not the AWGN setting" in f.setting and "drive.google.com" in f.source for f in FORMAT.files)
    assert names["HINet-SIDD-1x.pth"].task == "denoise" and names["HINet-GoPro.pth"].levels == ()
