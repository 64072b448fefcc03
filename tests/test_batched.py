"""HyperRes' batched paths equal the per-level loop: the joint step (K levels as one grouped computation),
the level sweep (shared head and first conv), the evaluation over many levels of one image; and the
analytic FLOP count `hyperbench perf` divides by."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from bench.apps.perf import conv_flops, hyperres_forward_flops, hyperres_sweep_flops, run_perf
from bench.data.loading import Image
from bench.evaluation.evaluate import evaluate, restore_levels
from bench.models.hyperres import HyperRes
from bench.tasks.task import get_task

LEVELS = [15.0, 35.0, 55.0, 75.0]


def _model(blocks=3, width=16, in_channels=3, seed=0):
    """Random weights with a level-dependent part as large as the level-independent one."""
    torch.manual_seed(seed)
    model = HyperRes(meta_blocks=blocks, width=width, in_channels=in_channels)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.05 if "generator.weight" not in name else 0.5)
    return model


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _loss_and_grads(model, x, y, lv, batched):
    model.level_batching = batched
    model.zero_grad(set_to_none=True)
    loss = F.l1_loss(model(x, lv), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("order", ["level-major", "shuffled"])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
def test_batched_joint_step_equals_per_level_loop(order, fmt):
    model = _model()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(len(LEVELS) * 3, 3, 16, 16, generator=gen)
    y = torch.rand(x.shape, generator=gen)
    lv = torch.tensor(LEVELS).repeat_interleave(3)  # level-major, as degraded_batch builds a joint batch
    if order == "shuffled":
        perm = torch.randperm(len(lv), generator=gen)
        x, y, lv = x[perm], y[perm], lv[perm]
    x, y = x.contiguous(memory_format=fmt), y.contiguous(memory_format=fmt)
    loss_loop, grads_loop = _loss_and_grads(model, x, y, lv, batched=False)
    loss_batched, grads_batched = _loss_and_grads(model, x, y, lv, batched=True)
    assert abs(float(loss_batched - loss_loop)) <= 1e-5 * float(loss_loop)
    assert grads_loop.keys() == grads_batched.keys()
    for name, g in grads_loop.items():
        assert g.abs().sum() > 0, name
        assert _rel(grads_batched[name], g) < 1e-5, name


def test_batched_path_is_used_and_uneven_batches_fall_back_to_the_loop(monkeypatch):
    model = _model()
    x = torch.rand(5, 3, 8, 8)
    calls = []
    original = HyperRes.body_batched
    monkeypatch.setattr(HyperRes, "body_batched", lambda self, *a: calls.append(1) or original(self, *a))
    model.level_batching = True
    even = model(x[:4], torch.tensor([15.0, 15.0, 35.0, 35.0]))
    uneven = model(x, torch.tensor([15.0, 15.0, 15.0, 35.0, 35.0]))  # 3 + 2 samples: the loop answers
    assert len(calls) == 1
    model.level_batching = False
    assert torch.allclose(even, model(x[:4], torch.tensor([15.0, 15.0, 35.0, 35.0])), rtol=1e-5, atol=1e-6)
    assert torch.allclose(uneven, model(x, torch.tensor([15.0, 15.0, 15.0, 35.0, 35.0])), rtol=1e-5, atol=1e-6)
    model.level_batching = None  # default: the loop on CPU (faster there, see bench/apps/perf.py)
    model(x[:4], torch.tensor([15.0, 15.0, 35.0, 35.0]))
    assert len(calls) == 1 and not model.batches_levels(x)


@pytest.mark.parametrize("chunk", [None, 1, 3, 7])
def test_sweep_equals_per_level_loop(chunk):
    model = _model(in_channels=1).eval()
    x = torch.rand(2, 1, 12, 16)
    levels = [5.0, 15.0, 40.0, 64.5, 75.0, 90.0, 110.0]
    with torch.no_grad():
        swept = model.sweep(x, levels, levels_per_chunk=chunk)
        model.level_batching = False
        loop = torch.stack([model(x, level) for level in levels])
    assert swept.shape == (len(levels), 2, 1, 12, 16)
    assert _rel(swept, loop) < 1e-5
    assert (swept - loop).abs().max() < 1e-5


def test_sweep_keeps_channels_last_and_matches():
    model = _model().eval()
    x = torch.rand(1, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        swept = model.sweep(x, LEVELS, levels_per_chunk=4)
        loop = torch.stack([model(x, level) for level in LEVELS])
    assert _rel(swept, loop) < 1e-5


def _conv_flops_of(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def test_analytic_flops_equal_torch_flop_counter():
    model = _model(blocks=2, width=8)
    x = torch.rand(3, 3, 20, 12)
    assert hyperres_forward_flops(model, 3, 20, 12) == _conv_flops_of(lambda: model(x, 25.0))


def test_sweep_shares_the_head_and_the_first_conv():
    """K levels of one input: one head conv instead of K, two first-block convs instead of K."""
    model = _model(blocks=2, width=8)
    x = torch.rand(1, 3, 16, 16)
    k = 6
    per_level = hyperres_forward_flops(model, 1, 16, 16)
    head = conv_flops(1, 3, 8, 8, 8)
    first = conv_flops(1, 8, 8, 8, 8)
    swept = _conv_flops_of(lambda: model.sweep(x, torch.linspace(5, 100, k).tolist()))
    assert swept == k * per_level - (k - 1) * head - (k - 2) * first == hyperres_sweep_flops(model, k, 16, 16)


def test_evaluation_with_batched_levels_equals_the_loop():
    task = get_task("denoise")
    rng = np.random.default_rng(0)
    images = [Image(f"img{i}", rng.integers(0, 256, (18, 22, 3), dtype=np.uint8)) for i in range(2)]
    loop_model, batched_model = _model(), _model()
    loop_model.level_batching, batched_model.level_batching = False, True
    levels = [5.0, 25.0, 50.0]
    loop = evaluate(task, {"hyperres": loop_model}, images, levels, 0, task.options(None))
    batched = evaluate(task, {"hyperres": batched_model}, images, levels, 0, task.options(None))
    assert [(r["model"], r["image"], r["level"]) for r in loop] == [(r["model"], r["image"], r["level"]) for r in batched]
    for a, b in zip(loop, batched):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-3) and a["ssim"] == pytest.approx(b["ssim"], abs=1e-5)
    xs = [torch.rand(1, 3, 8, 8) for _ in levels]
    with torch.no_grad():
        for a, b in zip(restore_levels(loop_model, xs, levels), restore_levels(batched_model, xs, levels)):
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # uint8 rounding of float-equal outputs


def test_perf_reports_every_measurement():
    lines = []
    out = run_perf("cpu", threads=None, repeats=1, levels=2, blocks=1, width=8, batch=1, crop=8, sweep_levels=3, sweep_size=8, log=lines.append)
    text = "\n".join(lines)
    for variant in ("loop nchw", "batched nchw", "batched channels_last", "sweep channels_last", "model nchw", "conv channels_last"):
        assert variant in text
    assert "GFLOP/s" in text and "of the plain-conv throughput" in text
    assert set(out["joint_step"]) == {"loop nchw", "batched nchw", "loop channels_last", "batched channels_last",
                                      "bf16 loop channels_last", "bf16 batched channels_last"}
    assert min(out["joint_speedup"], out["bf16_speedup"], out["sweep_speedup"], out["forward_vs_conv"]) > 0


def test_perf_command_prints_the_comparison():
    from typer.testing import CliRunner

    from bench.apps.cli import app

    args = ["perf", "--repeats", "1", "--levels", "2", "--blocks", "1", "--width", "8", "--batch", "1", "--crop", "8",
            "--sweep-levels", "3", "--sweep-size", "8", "--threads", str(torch.get_num_threads())]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "speed-up of the batched step" in result.output and "speed-up of the sweep" in result.output
    assert "of the plain-conv throughput" in result.output


def test_perf_rejects_a_missing_device():
    from bench.common.errors import HyperbenchError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(HyperbenchError, match="no CUDA device"):
        run_perf("cuda", repeats=1)
