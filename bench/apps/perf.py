"""`hyperbench perf`: how fast HyperRes trains and sweeps on this machine, measured in one process.

Three measurements, each variant timed round-robin with the others (so a busy machine slows all of
them alike) and summarised by the median and the minimum over the repeats:

1. one joint training step (K levels x B crops, forward + L1 + backward + Adam): the per-level loop
   against the batched path (the K generated main networks as one grouped computation);
2. a level sweep (many levels of one image): the per-level loop against HyperRes.sweep with the device's
   default chunking (grouped chunks of levels on CUDA, one level at a time on CPU);
3. the achieved GFLOP/s of the model forward against a plain 64->64 3x3 conv on the same feature map
   (the machine's conv throughput). FLOPs are counted analytically: 2 x multiply-accumulates of every conv.

Each of 1-3 is timed in NCHW and in channels_last memory format. 4. the training data path
(bench/apps/perf_data.py): loader crops per second, fixed vs fresh, 0 vs N workers, and the joint step
fed by the loader against the same step on a batch in memory. On a shared CPU the cpu-time column
(process CPU time) is steadier than wall time; `--threads 1` avoids waiting for a second busy core.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from bench.common.errors import HyperbenchError
from bench.models.hyperres import HyperRes
from bench.training.distributed import named_device

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def conv_flops(n: int, cin: int, cout: int, h_out: int, w_out: int, k: int = 3) -> int:
    """2 x multiply-accumulates of a k x k conv producing n x cout x h_out x w_out."""
    return 2 * n * cout * h_out * w_out * cin * k * k


def hyperres_forward_flops(model: HyperRes, n: int, h: int, w: int) -> int:
    """Conv FLOPs of one HyperRes forward on n images of h x w: head, 2 generated convs per block, tail."""
    width, cin = model.head.conv1.out_channels, model.in_channels
    lh, lw = h // 2, w // 2
    total = conv_flops(n, cin, width, lh, lw)  # stride-2 head
    total += 2 * len(model.blocks) * conv_flops(n, width, width, lh, lw)
    total += conv_flops(n, width, width, lh, lw) + conv_flops(n, width, 4 * width, lh, lw)  # LR conv, upsampling conv
    total += conv_flops(n, width, width, h, w) + conv_flops(n, width, cin, h, w)  # two full-resolution convs
    return total


def hyperres_sweep_flops(model: HyperRes, levels: int, h: int, w: int) -> int:
    """Conv FLOPs of HyperRes.sweep over `levels` levels of one image: one head, two first convs, the rest per level."""
    width = model.head.conv1.out_channels
    head = conv_flops(1, model.in_channels, width, h // 2, w // 2)
    first = conv_flops(1, width, width, h // 2, w // 2)
    return levels * hyperres_forward_flops(model, 1, h, w) - (levels - 1) * head - (levels - 2) * first


@dataclass
class Timing:
    median_s: float  # wall clock
    min_s: float
    cpu_median_s: float  # CPU time of this process (all threads): barely moved by other processes on a shared machine


def time_round_robin(fns: dict[str, Callable], repeats: int, device: torch.device, warmup: int = 1) -> dict[str, Timing]:
    """Time each callable `repeats` times, interleaved, after `warmup` untimed calls each."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            sync()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {name: Timing(statistics.median(wall[name]), min(wall[name]), statistics.median(cpu[name])) for name in fns}


def _model(blocks: int, width: int, device, fmt, seed: int = 0) -> HyperRes:
    torch.manual_seed(seed)
    return HyperRes(meta_blocks=blocks, width=width, in_channels=3).to(device).to(memory_format=fmt)


def joint_step_fns(levels: int, blocks: int, width: int, batch: int, crop: int, device) -> dict[str, Callable]:
    """One joint training step per variant: {loop, batched} x {nchw, channels_last}, and both in channels_last
    under bf16 autocast (the profile flag gpu.bf16: faster where the hardware has bf16, but other numerics)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(levels * batch, 3, crop, crop, generator=gen).to(device)
    y = torch.rand(levels * batch, 3, crop, crop, generator=gen).to(device)
    lv = torch.linspace(15, 75, levels).repeat_interleave(batch).to(device)  # level-major, as degraded_batch builds it
    variants = [(b, f, False) for f in FORMATS for b in (False, True)] + [(b, "channels_last", True) for b in (False, True)]
    fns = {}
    for batched, fmt_name, bf16 in variants:
        fmt = FORMATS[fmt_name]
        model = _model(blocks, width, device, fmt)
        model.level_batching = batched  # forced: the default picks the loop on CPU
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        xf, yf = x.contiguous(memory_format=fmt), y.contiguous(memory_format=fmt)

        def step(model=model, opt=opt, xf=xf, yf=yf, bf16=bf16):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.l1_loss(model(xf, lv), yf)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        fns[("bf16 " if bf16 else "") + f"{'batched' if batched else 'loop'} {fmt_name}"] = step
    return fns


def sweep_fns(levels: int, blocks: int, width: int, size: int, device) -> dict[str, Callable]:
    """Outputs at `levels` levels for one size x size RGB image: per-level loop vs HyperRes.sweep (default chunking)."""
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    values = torch.linspace(5, 105, levels).tolist()
    fns = {}
    for fmt_name, fmt in FORMATS.items():
        model = _model(blocks, width, device, fmt).eval()
        model.level_batching = False  # the loop: one level at a time
        xf = x.contiguous(memory_format=fmt)

        @torch.no_grad()
        def loop(model=model, xf=xf):
            return [model(xf, v) for v in values]

        @torch.no_grad()
        def sweep(model=model, xf=xf):
            model.level_batching = None  # device default: grouped chunks on CUDA, one level at a time on CPU
            try:
                return model.sweep(xf, values)
            finally:
                model.level_batching = False

        fns[f"loop {fmt_name}"], fns[f"sweep {fmt_name}"] = loop, sweep
    return fns


def forward_fns(blocks: int, width: int, n: int, size: int, device) -> dict[str, Callable]:
    """The model forward at one level vs a plain width->width 3x3 conv on its feature map (n x width x size/2 x size/2)."""
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(2)).to(device)
    feat = torch.rand(n, width, size // 2, size // 2, generator=torch.Generator().manual_seed(3)).to(device)
    weight = (torch.randn(width, width, 3, 3) * 0.01).to(device)
    bias = torch.zeros(width).to(device)
    fns = {}
    for fmt_name, fmt in FORMATS.items():
        model = _model(blocks, width, device, fmt).eval()
        xf, ff, wf = x.contiguous(memory_format=fmt), feat.contiguous(memory_format=fmt), weight.contiguous(memory_format=fmt)

        @torch.no_grad()
        def forward(model=model, xf=xf):
            return model(xf, 50.0)

        @torch.no_grad()
        def conv(ff=ff, wf=wf):
            return F.conv2d(ff, wf, bias, padding=1)

        fns[f"model {fmt_name}"], fns[f"conv {fmt_name}"] = forward, conv
    return fns


def _best(timings: dict[str, Timing], prefix: str) -> tuple[str, Timing]:
    name = min((k for k in timings if k.startswith(prefix)), key=lambda k: timings[k].median_s)
    return name, timings[name]


def run_perf(device: str = "cpu", threads: int | None = None, repeats: int = 7, levels: int = 4, blocks: int = 16, width: int = 64,
             batch: int = 4, crop: int = 64, sweep_levels: int = 21, sweep_size: int = 256, workers: int = 2, data: bool = True,
             runs_dir=Path("results/runs"), dataset: str | None = None, data_root=None, log=print) -> dict:
    """Run the measurements, print them, and return the numbers (seconds, GFLOP/s, ratios, crops/s)."""
    dev = named_device(device)
    if repeats < 1 or min(levels, blocks, width, batch, sweep_levels) < 1 or crop % 2 or sweep_size % 2 or min(crop, sweep_size) < 4:
        raise HyperbenchError("perf sizes must be positive, crops and image sizes even and >= 4", "use the defaults (see hyperbench perf --help)")
    if threads:
        torch.set_num_threads(threads)
    out = {"device": str(dev), "threads": torch.get_num_threads(), "repeats": repeats}
    log(f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads; median (min) of {repeats} round-robin repeats")
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if dev.type == "cpu" and load > cores:  # other processes compete for the cores: say so next to the numbers
        log(f"note: load average {load:.1f} on {cores} cores; wall times include waiting for the CPU "
            "(compare the cpu-time columns, or measure with --threads 1)")

    def show(title, timings, extra=None):
        log(f"\n{title}\n  {'variant':<24} {'wall median':>12} {'(min)':>9} {'cpu median':>11}")
        for name, t in timings.items():
            log(f"  {name:<24} {t.median_s * 1e3:9.1f} ms ({t.min_s * 1e3:7.1f}) {t.cpu_median_s * 1e3:8.1f} ms" + (f"  {extra(name, t)}" if extra else ""))

    def speedups(timings, old, new, label):
        """old/new time ratios: per memory format, and the best `new` variant against the best `old` one (the headline)."""
        same = {f: timings[f"{old} {f}"].median_s / timings[f"{new} {f}"].median_s for f in FORMATS}
        same_cpu = {f: timings[f"{old} {f}"].cpu_median_s / timings[f"{new} {f}"].cpu_median_s for f in FORMATS}
        (old_name, old_t), (new_name, new_t) = _best(timings, old), _best(timings, new)
        best = old_t.median_s / new_t.median_s
        log(f"  {label}: {new_name} vs {old_name} (best of each) {best:.2f}x (cpu time {old_t.cpu_median_s / new_t.cpu_median_s:.2f}x); "
            "same format: " + ", ".join(f"{f} {same[f]:.2f}x (cpu time {same_cpu[f]:.2f}x)" for f in FORMATS))
        return best, same

    step = time_round_robin(joint_step_fns(levels, blocks, width, batch, crop, dev), repeats, dev)
    show(f"joint training step: K={levels} levels x batch {batch}, {crop}x{crop} crops, {blocks} blocks, width {width}", step)
    out["joint_step"] = {k: t.median_s for k, t in step.items()}
    out["joint_speedup"], out["joint_speedup_same_format"] = speedups(step, "loop", "batched", "speed-up of the batched step")
    fp32 = min(t.median_s for name, t in step.items() if not name.startswith("bf16"))
    bf16_name, bf16 = _best(step, "bf16")
    out["bf16_speedup"] = fp32 / bf16.median_s
    log(f"  bf16 autocast ({bf16_name}; profile flag gpu.bf16, other numerics, recorded in the run config) vs the best fp32 step: "
        f"{out['bf16_speedup']:.2f}x")

    sweep = time_round_robin(sweep_fns(sweep_levels, blocks, width, sweep_size, dev), repeats, dev, warmup=0)  # each call is many forwards
    show(f"level sweep: {sweep_levels} levels of one {sweep_size}x{sweep_size} RGB image", sweep)
    out["sweep"] = {k: t.median_s for k, t in sweep.items()}
    out["sweep_speedup"], out["sweep_speedup_same_format"] = speedups(sweep, "loop", "sweep", "speed-up of the sweep")

    sweep_flops = hyperres_sweep_flops(_model(blocks, width, "cpu", torch.contiguous_format), sweep_levels, sweep_size, sweep_size)
    loop_flops = sweep_levels * hyperres_forward_flops(_model(blocks, width, "cpu", torch.contiguous_format), 1, sweep_size, sweep_size)
    log(f"  conv FLOPs: loop {loop_flops / 1e9:.1f} G, sweep {sweep_flops / 1e9:.1f} G ({1 - sweep_flops / loop_flops:.1%} less work)")

    model_flops = hyperres_forward_flops(_model(blocks, width, "cpu", torch.contiguous_format), 1, sweep_size, sweep_size)
    plain_flops = conv_flops(1, width, width, sweep_size // 2, sweep_size // 2)
    fwd = time_round_robin(forward_fns(blocks, width, 1, sweep_size, dev), repeats, dev)

    def flops_of(name):
        return model_flops if name.startswith("model") else plain_flops

    one_thread = dev.type == "cpu" and torch.get_num_threads() == 1  # CPU time = compute time (no spinning threads)

    def gflops(name, t):
        per_cpu = f" ({flops_of(name) / t.cpu_median_s / 1e9:.1f} per cpu-second)" if one_thread else ""
        return f"{flops_of(name) / t.median_s / 1e9:7.1f} GFLOP/s{per_cpu}"

    show(f"forward throughput: HyperRes ({model_flops / 1e9:.2f} GFLOP) vs one {width}->{width} 3x3 conv on its "
         f"{sweep_size // 2}x{sweep_size // 2} feature map ({plain_flops / 1e9:.3f} GFLOP), 1 image {sweep_size}x{sweep_size}", fwd, extra=gflops)
    model_name, model_t = _best(fwd, "model")
    conv_name, conv_t = _best(fwd, "conv")
    out["model_gflops"] = model_flops / model_t.median_s / 1e9
    out["conv_gflops"] = plain_flops / conv_t.median_s / 1e9
    out["forward_vs_conv"] = out["model_gflops"] / out["conv_gflops"]
    cpu_ratio = (model_flops / model_t.cpu_median_s) / (plain_flops / conv_t.cpu_median_s)
    log(f"  model forward ({model_name}) at {out['forward_vs_conv']:.0%} of the plain-conv throughput ({conv_name}, the best format)"
        + (f"; per cpu-second {cpu_ratio:.0%}" if one_thread else ""))
    if data:
        from bench.apps import perf_data

        name, images = perf_data.training_images(dataset, data_root)
        log(f"\ntraining data path: the loader at the paper's batch ({perf_data.PAPER_BATCH} crops x {len(perf_data.PAPER_LEVELS)} levels of "
            f"{perf_data.PAPER_CROP}x{perf_data.PAPER_CROP}, denoising) from {name}, {repeats * 12} batches each after the first")
        out["data"] = perf_data.loader_throughput(images, name, Path(runs_dir), workers, repeats * 12, log)
        out["data"].update(perf_data.step_with_loader(images, name, Path(runs_dir), _model(blocks, width, dev, torch.contiguous_format),
                                                      batch, crop, levels, workers, repeats, dev, log))
    return out
