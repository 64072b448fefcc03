"""The adaptive baselines (AdaFM, CFSNet, DNI, CResMD), HINet and FFDNet: official parameter counts,
the control interface, each model's defining property, and each training protocol end to end."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from baselines.plain import PlainResNet
from baselines.training import draw_levels
from bench.common.checkpoint import load_tensors
from bench.common.errors import HyperbenchError
from bench.data.loading import PatchSampler, load_dataset
from bench.evaluation.evaluate import load_trained
from bench.models.catalog import count_params, create_model
from bench.tasks.degradations import seeded_rng
from bench.tasks.task import get_task
from bench.training.crops import degraded_batch
from bench.training.runs import RUN_FORMAT, Run, RunDir
from bench.training.trainer import train_run

ADAPTIVE = ["adafm", "cfsnet", "dni", "cresmd", "ffdnet"]
TINY = {
    "adafm": {"blocks": 2, "width": 8},
    "cfsnet": {"main_blocks": 2, "width": 8},
    "dni": {"blocks": 2, "width": 8},
    "cresmd": {"blocks": 2, "width": 8},
    "ffdnet": {"width": 8, "convs": 3},
    "hinet": {"width": 4},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: threads only add hand-offs (tests/conftest.py)


def _tiny(name, **kwargs):
    torch.manual_seed(0)
    model = create_model(name, **{**TINY[name], **kwargs})
    if hasattr(model, "set_endpoints"):
        model.set_endpoints(15.0, 50.0)
    return model


def _randomise(params, scale=0.1):
    with torch.no_grad():
        for p in params:
            p.normal_(0, scale)


# --- parameter counts ---------------------------------------------------------------------------


def _count(name, **kwargs):
    with torch.device("meta"):  # counting only: no memory, no init cost (HINet wf 64 has 88.7 M)
        return count_params(create_model(name, **kwargs))


def test_counts_equal_the_shared_reference(official_counts):
    ref = official_counts
    expected = [
        ("adafm", {"ksize": 1}, ref["AdaFM"]["adafm_net_rgb_ksize1"]),
        ("adafm", {"ksize": 3}, ref["AdaFM"]["adafm_net_rgb_ksize3"]),
        ("adafm", {"ksize": 5}, ref["AdaFM"]["adafm_net_rgb_ksize5"]),
        ("adafm", {"ksize": 7}, ref["AdaFM"]["adafm_net_rgb_ksize7"]),
        ("adafm", {"in_channels": 1}, ref["AdaFM"]["adafm_net_gray_ksize1_not_in_official_configs"]),
        ("cfsnet", {"in_channels": 3}, ref["CFSNet"]["denoise_rgb_10main_10tuning"]),
        ("cfsnet", {"in_channels": 1}, ref["CFSNet"]["denoise_gray_10main_10tuning"]),
        ("cfsnet", {"in_channels": 1}, ref["CFSNet"]["deblock_gray_10main_10tuning"]),
        ("cresmd", {"cond_dim": 1}, ref["CResMD"]["CResMDNet_cond1_single_degradation_not_in_official_configs"]),
        ("cresmd", {"cond_dim": 2}, ref["CResMD"]["CResMDNet_2D_blur_noise"]),
        ("cresmd", {"cond_dim": 3}, ref["CResMD"]["CResMDNet_3D_blur_noise_jpeg"]),
        ("hinet", {"width": 64}, ref["HINet"]["SIDD_1x_wf64"]),
        ("hinet", {"width": 32}, ref["HINet"]["SIDD_0.5x_wf32"]),
        ("hinet", {"width": 64, "hin_levels": (3, 4)}, ref["HINet"]["GoPro_REDS_wf64_hin3-4"]),
        ("hinet_bank", {"levels": [25.0], "width": 32}, ref["HINet"]["SIDD_0.5x_wf32"]),
        ("ffdnet", {"in_channels": 3}, ref["FFDNet"]["color_nc96_nb12"]),
        ("ffdnet", {"in_channels": 1}, ref["FFDNet"]["gray_nc64_nb15"]),
    ]
    for name, kwargs, entry in expected:
        assert _count(name, **kwargs) == entry["params"], (name, kwargs)
    assert _count("dni") == 2 * ref["AdaFM"]["basic_model_rgb"]["params"]
    assert _count("dni", in_channels=1) == 2 * ref["AdaFM"]["basic_model_gray_not_in_official_configs"]["params"]


def test_branch_counts_equal_the_shared_reference(official_counts):
    with torch.device("meta"):
        adafm, cfsnet = create_model("adafm"), create_model("cfsnet")
    assert sum(p.numel() for p in adafm.basic_parameters()) == official_counts["AdaFM"]["basic_model_rgb"]["params"]
    cfs = official_counts["CFSNet"]["denoise_rgb_10main_10tuning"]
    assert count_params(cfsnet.main) == cfs["main_branch"] and count_params(cfsnet.tuning) == cfs["tuning_branch"]


# --- the control interface ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ADAPTIVE)
def test_level_call_equals_forward_control(name):
    model = _tiny(name)
    _randomise(model.parameters())
    x = torch.rand(2, model.in_channels, 16, 16)
    assert isinstance(model.control_name, str) and model.control_name
    with torch.no_grad():
        for level in (5.0, 15.0, 30.0, 50.0, 80.0):  # inside, at and beyond the trained endpoints
            assert torch.equal(model(x, level), model.forward_control(x, model.control_for(level)))
        levels = torch.tensor([15.0, 42.0])
        separate = torch.cat([model(x[i : i + 1], float(levels[i])) for i in range(2)])
        assert torch.allclose(model(x, levels), separate, atol=1e-6)


def test_controls_are_linear_between_endpoints_and_extrapolate():
    for name in ("adafm", "cfsnet", "cresmd"):
        model = _tiny(name)
        assert [model.control_for(v) for v in (15, 32.5, 50, 85)] == [0.0, 0.5, 1.0, 2.0]
    dni = _tiny("dni")
    assert [dni.control_for(v) for v in (5, 15, 32.5, 50, 85)] == [1.0, 1.0, 0.5, 0.0, 0.0]  # interpolation only: clipped
    assert _tiny("ffdnet").control_for(37.5) == 37.5
    with pytest.raises(HyperbenchError, match="two different training levels"):
        _tiny("adafm").set_endpoints(25, 25)


def test_adafm_lambda_zero_is_the_basic_model():
    model = _tiny("adafm")
    _randomise(model.adafm_parameters())
    basic = PlainResNet(blocks=2, width=8)
    basic.load_state_dict({k: v for k, v in model.state_dict().items() if "adafm" not in k and k != "endpoints"})
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model.forward_control(x, 0.0), basic(x), atol=1e-6)
        assert not torch.allclose(model.forward_control(x, 1.0), basic(x), atol=1e-4)
        model.reset_adafm()  # zero AdaFM layers: every lambda is the basic model (start of stage 2)
        assert torch.allclose(model.forward_control(x, 0.7), basic(x), atol=1e-6)


def test_cfsnet_alpha_zero_is_the_main_branch():
    model = _tiny("cfsnet")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        main_only, tuned = model.forward_control(x, 0.0), model.forward_control(x, 1.0)
        _randomise(model.tuning.parameters())
        assert torch.equal(model.forward_control(x, 0.0), main_only)
        assert not torch.allclose(model.forward_control(x, 1.0), tuned, atol=1e-4)
        model.main["end"].weight.zero_()
        assert torch.equal(model.forward_control(x, 0.5), x)  # residual denoising: image = input - predicted noise


def test_dni_interpolates_every_parameter():
    model = _tiny("dni")
    _randomise(model.net_b.parameters())
    x = torch.rand(2, 3, 16, 16)
    mixed = PlainResNet(blocks=2, width=8)
    b = model.net_b.state_dict()
    mixed.load_state_dict({k: 0.3 * v + 0.7 * b[k] for k, v in model.net_a.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(model.forward_control(x, 1.0), model.net_a(x))
        assert torch.equal(model.forward_control(x, 0.0), model.net_b(x))
        assert torch.allclose(model.forward_control(x, 0.3), mixed(x), atol=1e-6)
        assert torch.equal(model(x, 15.0), model.net_a(x))  # endpoint A belongs to the first level


def test_cresmd_condition_zero_is_the_identity_and_fills_its_dimension():
    model = _tiny("cresmd")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x, 15.0), x)  # zero-bias scale layers: no residual at condition 0
        assert not torch.equal(model(x, 50.0), x)
    two_d = create_model("cresmd", blocks=1, width=8, cond_dim=2, cond_index=1)
    cond = two_d.condition_vector(torch.tensor([0.25, 0.5]), 2, "cpu")
    assert cond.tolist() == [[0.0, 0.25], [0.0, 0.5]]
    with pytest.raises(HyperbenchError, match="cond_index"):
        create_model("cresmd", cond_dim=1, cond_index=1)


def test_hinet_stages_loss_and_sizes():
    model = _tiny("hinet")
    x, y = torch.rand(2, 3, 20, 36), torch.rand(2, 3, 20, 36)  # not multiples of 16: padded and cropped back
    with torch.no_grad():
        first, second = model.stages(x)
        assert first.shape == second.shape == x.shape
        assert torch.equal(model(x, 15.0), second) and torch.equal(model(x, 50.0), second)
        expected = (first - y).abs().mean() + (second - y).abs().mean()  # official SIDD recipe: L1 summed over both stages
        assert model.training_loss(x, y) == pytest.approx(float(expected), rel=1e-6)


def test_cfsnet_takes_odd_sizes():
    """Stride-1 convolutions only: any size; away from the bottom and right edges an odd image gives what
    the even image it holds gives (their zero padding differs only there)."""
    model = _tiny("cfsnet", main_blocks=1)
    _randomise(model.tuning.parameters())
    x = torch.rand(2, 3, 33, 35)
    with torch.no_grad():
        odd, even = model(x, 30.0), model(x[..., :32, :34], 30.0)
    assert odd.shape == x.shape
    edge = 4  # head, the block's two convs (its tuning branch's two likewise), end conv: one pixel each
    assert torch.allclose(odd[..., : 32 - edge, : 34 - edge], even[..., : 32 - edge, : 34 - edge], atol=1e-6)


def _hinet_unpadded(model, x):
    """The official HINet path (hinet_arch.py HINet.forward): no padding, for sizes it takes as they are."""
    feat1, encs, decs = model.stage1(model.stage1.conv_in(x))
    sam_feat, out1 = model.sam(feat1, x)
    feat2, _, _ = model.stage2(model.merge(torch.cat([model.stage2.conv_in(x), sam_feat], dim=1)), fused=(encs, decs))
    return out1, model.last(feat2) + x


def test_hinet_pads_odd_sizes_and_leaves_divisible_ones_alone():
    model = _tiny("hinet")
    x = torch.rand(1, 3, 32, 48)  # multiples of 16, at least 32: no padding
    odd = torch.rand(1, 3, 33, 35)
    padded = F.pad(odd, (0, 48 - 35, 0, 48 - 33), mode="replicate")
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model.stages(x), _hinet_unpadded(model, x)))
        out = model(odd, 25.0)
        assert out.shape == odd.shape
        assert torch.equal(out, _hinet_unpadded(model, padded)[1][..., :33, :35])
    with pytest.raises(HyperbenchError, match="empty image"):
        model(torch.rand(1, 3, 0, 8))


def test_ffdnet_odd_sizes_and_sigma_map():
    model = _tiny("ffdnet")
    _randomise(model.parameters())
    x = torch.rand(2, 3, 15, 17)
    with torch.no_grad():
        assert model(x, 25.0).shape == x.shape
        assert not torch.allclose(model(x, 10.0), model(x, 50.0))
    with pytest.raises(HyperbenchError, match="built for N x 3"):
        model(torch.rand(1, 1, 8, 8), 25.0)


def test_ffdnet_loader_errors_are_clear(tmp_path):
    from baselines.ffdnet import load_official_ffdnet

    with pytest.raises(HyperbenchError, match="not found"):
        load_official_ffdnet(tmp_path / "missing.mat")
    bogus = tmp_path / "bogus.mat"
    bogus.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(HyperbenchError, match="v7.3"):
        load_official_ffdnet(bogus)


def test_uniform_levels_respect_integer_tasks():
    rng = np.random.default_rng(0)
    q = draw_levels(rng, 200, 80, 10, integer=True)
    assert all(v == int(v) and 10 <= v <= 80 for v in q) and len(set(q)) > 20
    s = draw_levels(rng, 200, 15, 50, integer=False)
    assert all(15 <= v <= 50 for v in s) and len(set(s)) == 200


# --- training protocols ---------------------------------------------------------------------------

TRAIN = {"batch": 2, "crop": 32, "lr": 2e-3, "lr_milestones": [], "lr_gamma": 0.1, "checkpoint_every": 0}
PROTOCOL_CASES = [
    # name, protocol, model kwargs, training levels, steps per stage
    ("adafm", "adafm", {"blocks": 1, "width": 8}, [15.0, 50.0], 20),
    ("cfsnet", "cfsnet", {"main_blocks": 1, "width": 8}, [15.0, 50.0], 60),
    ("dni", "dni", {"blocks": 1, "width": 8}, [15.0, 50.0], 20),
    # CResMD starts as the identity (x0.1 init, zero-bias scale layers): a tiny one needs a few hundred steps to leave it.
    ("cresmd", "cresmd", {"blocks": 1, "width": 8}, [15.0, 50.0], 350),
    ("ffdnet", "ffdnet", {"width": 8, "convs": 3}, [15.0, 50.0], 20),
    ("hinet", "hinet", {"width": 4}, [15.0, 50.0], 8),
    ("hinet_bank", "joint", {"width": 4, "levels": [50.0]}, [50.0], 8),
]


def _run(tmp_path, name, protocol, kwargs, levels, steps, **train):
    task = get_task("denoise")
    config = {
        "format": RUN_FORMAT, "model": name, "model_kwargs": {**kwargs, "in_channels": 3}, "task": "denoise",
        "levels": levels, "protocol": protocol, "train": {**TRAIN, "steps": steps, **train},
        "train_dataset": "skimage-train", "options": task.options(), "seed": 0,
    }
    return RunDir(tmp_path / "runs", Run(config))


def _l1_at(model, level):
    task = get_task("denoise")
    rng = seeded_rng("held-out batch")
    patches = PatchSampler(load_dataset("skimage-train"), 32).sample(8, rng)
    x, y, _ = degraded_batch(patches, task, [level], rng, task.options())
    with torch.no_grad():
        return float(F.l1_loss(model(x, level), y))


@pytest.mark.parametrize("name,protocol,kwargs,levels,steps", PROTOCOL_CASES, ids=[c[0] for c in PROTOCOL_CASES])
def test_protocol_trains_and_endpoints_survive_loading(tmp_path, name, protocol, kwargs, levels, steps):
    rundir = _run(tmp_path, name, protocol, kwargs, levels, steps)
    torch.manual_seed(0)  # train_run seeds the same way: this is the untrained starting point
    untrained = create_model(name, **rundir.run.config["model_kwargs"])
    summary = train_run(rundir)
    trained = load_trained(rundir)
    end = levels[-1]
    assert _l1_at(trained, end) < 0.9 * _l1_at(untrained, end)
    assert np.isfinite(summary["final_loss"])
    if hasattr(trained, "endpoints"):
        assert trained.endpoints.tolist() == [levels[0], levels[-1]]
        assert not torch.equal(untrained.endpoints, trained.endpoints)  # the checkpoint carries them
    if "stage_losses" in summary:
        assert len(summary["stage_losses"]) == 2 and summary["steps"] == 2 * steps
    if name.startswith("hinet"):
        assert summary["final_loss"] > 0  # L1 on both stages (the official denoising recipe), not the deblurring PSNR loss


def test_staged_training_resumes_in_its_stage_and_freezes_the_first(tmp_path, monkeypatch):
    import baselines.training as control

    real_optimise, calls = control.optimise, []

    def interrupted(model, params, loss_fn, steps, train, rundir, stage, seed):
        calls.append(stage)
        if stage == "adafm":
            real_optimise(model, params, loss_fn, 2, train, rundir, stage, seed)
            raise KeyboardInterrupt
        return real_optimise(model, params, loss_fn, steps, train, rundir, stage, seed)

    case = ("adafm", "adafm", {"blocks": 1, "width": 8}, [15.0, 50.0], 4)
    rundir = _run(tmp_path / "a", *case)
    monkeypatch.setattr(control, "optimise", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_run(rundir)
    saved, meta = load_tensors(rundir.state_file)
    assert meta["stage"] == "adafm" and meta["step"] == 2
    calls.clear()
    monkeypatch.setattr(control, "optimise", lambda *a: (calls.append(a[6]), real_optimise(*a))[1])
    train_run(rundir)
    assert calls == ["adafm"]  # the finished basic stage is not redone
    resumed = load_trained(rundir).state_dict()
    monkeypatch.setattr(control, "optimise", real_optimise)
    uninterrupted = _run(tmp_path / "b", *case)
    train_run(uninterrupted)
    for key, value in load_trained(uninterrupted).state_dict().items():
        assert torch.equal(resumed[key], value), key
        if "adafm" not in key and key != "endpoints":  # stage 2 trains only the AdaFM layers
            assert torch.equal(saved[f"model.{key}"], value), key
    assert any(resumed[k].abs().sum() > 0 for k in resumed if "adafm" in k)
