"""`hyperbench perf --efficiency`: the efficiency table's figures for every entry of a profile (issue 31).

HyperRes' case is efficiency: one network answers every level and moves to a new one by regenerating its
weights, where a per-level bank keeps one network per level on disk and loads the next. Per entry and
task, at the profile's sizes with random weights (values change neither time nor memory, so nothing
needs training): parameters, MACs at 256 x 256, latency (256 x 256 and per megapixel), peak memory of
one forward, the level-switch time by the entry's own mechanism, and the bytes on disk that serve every
printed level. Stored in results/<profile>/efficiency.csv with the machine (bench/reports/efficiency.py
prints them).
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.apps.forward_memory import CPU_METHOD, CUDA_METHOD, cpu_peak, cuda_peak, model_from_spec
from bench.apps.perf import time_round_robin
from bench.common.checkpoint import load_tensors, save_tensors
from bench.common.errors import HyperbenchError
from bench.common.page_cache import cached_fraction, drop_from_cache, filesystem_of
from bench.common.progress import progress_bar
from bench.models.catalog import count_params, model_cfg
from bench.models.hyperres import HyperRes
from bench.reports.efficiency import efficiency_file, efficiency_markdown, store_efficiency
from bench.tasks.task import get_task
from bench.training.distributed import named_device
from bench.training.profiles import Entry, Profile, expand

SIZE = 256  # the NTIRE efficiency tracks' input size
WARMUP = 3
MIN_REPEATS = 20

# How a modulated network takes a new level, in words (by registry family); a plugin gets the generic line.
FAMILY_SWITCH = {
    "adafm": "coefficient: λ from the level scales the AdaFM layers' filter outputs in the forward; no weights change",
    "cfsnet": "coefficient: α from the level drives the coupling MLPs that mix the main and tuning branches; no weights change",
    "cresmd": "condition: the level's condition vector scales the residual connections in the forward; no weights change",
    "ffdnet": "noise map: σ/255 enters as an input channel; no weights change",
}


@dataclass
class Served:
    """An entry as a user serves it for one task: the network in memory, how it answers a new level, the files behind it."""

    net: torch.nn.Module  # resident in memory (a bank: the one member network)
    forward: Callable  # x -> output at the latency level, no switch
    answer: Callable  # (x, level) -> output at a new level, the switch included
    step: Callable | None  # level -> None: the switch mechanism alone; None where the level only enters the forward
    switch_levels: list[float]  # what a switch cycles through
    mechanism: str
    files: list[Path]  # safetensors files that serve every printed level
    spec: dict  # rebuilds the forward's network in a fresh process (bench.apps.forward_memory)
    bank: bool = False


def _endpoints(entry: Entry):
    """The two levels a modulated network's training maps to its control (None without runs)."""
    if not entry.runs:
        return None
    run = entry.runs[0].config
    ends = run.get("control") or (run["levels"][0], run["levels"][-1])
    return [float(v) for v in ends] if float(ends[0]) != float(ends[1]) else None


BANK_SWITCH = "loads the level's network (safetensors) from disk into the resident network, then the forward"


def mechanism_words(model, family: str, adaptive: bool) -> str:
    """How a single network (not a bank) takes a new level."""
    if isinstance(model, HyperRes):
        return "hypernetwork: regenerates every res-block conv weight from the level (W0 + z·W1, z = level/255) in each forward"
    if hasattr(model, "interpolated"):
        return ("weight interpolation: every parameter α·A + (1 − α)·B of the two endpoint networks, recomputed in each forward "
                "(none at α 0 or 1)")
    if family in FAMILY_SWITCH:
        return FAMILY_SWITCH[family]
    if not adaptive:
        return "none: one network for every level, the level is not used"
    return f"coefficient: {getattr(model, 'control_name', 'control')} from the level enters the forward; no weights change"


def serve(entry: Entry, scratch: Path, device: torch.device) -> Served:
    """Build the entry's network (random weights) and write the files that serve the task's printed levels into `scratch`."""
    task = get_task(entry.task)
    printed = [float(v) for v in task.table_levels]
    level = printed[len(printed) // 2]
    cfg = model_cfg(entry.arch)
    kwargs = {k: v for k, v in entry.model_kwargs.items() if k != "levels"}
    base = {"arch": entry.arch, "channels": task.in_channels, "size": SIZE, "level": level, "threads": torch.get_num_threads()}
    if cfg.protocol == "bank":
        members = sorted(float(r.levels[0]) for r in entry.runs) or printed  # the bank's trained levels
        needed = sorted({min(members, key=lambda m: (abs(m - lv), m)) for lv in printed})
        def member(lv, seed=0):  # a one-member bank's network
            return next(iter(model_from_spec({**base, "kwargs": {**kwargs, "levels": [lv]}, "seed": seed}).members.values()))

        files = {}
        for i, lv in enumerate(needed):  # a different network per level, so loading one changes the output
            files[lv] = scratch / f"{entry.model}-{entry.task}-{lv:g}.safetensors"
            save_tensors(files[lv], member(lv, seed=i).state_dict())
        net = member(needed[0]).to(device)

        def load(lv):
            state, _ = load_tensors(files[lv])  # the suite's checkpoint loader: the file's bytes, from disk or the page cache
            net.load_state_dict(state)

        def answer(x, lv):
            load(lv)
            return net(x)

        mid = min(needed, key=lambda m: (abs(m - level), m))
        load(mid)
        spec = {**base, "kwargs": {**kwargs, "levels": [mid]}, "level": mid}
        return Served(net, lambda x: net(x), answer, load, needed, BANK_SWITCH,
                      list(files.values()), spec, bank=True)
    spec = {**base, "kwargs": kwargs, "endpoints": _endpoints(entry)}
    model = model_from_spec(spec).to(device)
    path = scratch / f"{entry.model}-{entry.task}.safetensors"
    save_tensors(path, model.state_dict())
    step = None
    if isinstance(model, HyperRes):
        def step(lv):  # the weights of every generated conv for the new level
            for block in model.blocks:
                block.conv1.weights(lv / model.norm_factor)
                block.conv2.weights(lv / model.norm_factor)
    elif hasattr(model, "interpolated"):
        def step(lv):
            alpha = model.control_for(lv)
            if 0.0 < alpha < 1.0:
                model.interpolated(alpha)
    return Served(model, lambda x: model(x, level), model, step, printed, mechanism_words(model, cfg.family, cfg.adaptive), [path], spec)


def count_macs(fn: Callable, x: torch.Tensor) -> int:
    """Multiply-accumulates of fn(x): FlopCounterMode's FLOPs halved (it counts 2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn(x)
    return counter.get_total_flops() // 2


def _cycling(fn: Callable, levels: list[float], *args) -> Callable:
    """fn(*args, level) with the next level on every call: each call meets a new level."""
    it = cycle(levels)

    @torch.inference_mode()
    def call():
        return fn(*args, next(it))

    return call


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cold_switches(served: Served, x, repeats: int, device) -> tuple[float | None, float | None]:
    """Median bank switch with the member's file dropped from the page cache before each load, and the mean cached share then."""
    times, shares = [], []
    for lv in [served.switch_levels[i % len(served.switch_levels)] for i in range(repeats)]:
        path = served.files[served.switch_levels.index(lv)]
        if not drop_from_cache(path):
            return None, None
        shares.append(cached_fraction(path))
        _sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            served.answer(x, lv)
        _sync(device)
        times.append(time.perf_counter() - t0)
    known = [s for s in shares if s is not None]
    return sorted(times)[len(times) // 2], (sum(known) / len(known) if known else None)


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"device": device.type, "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu, "cores": cores,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "load": round(os.getloadavg()[0], 2),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def measure_entry(entry: Entry, scratch: Path, device: torch.device, repeats: int, mp_size: int = SIZE) -> dict:
    """One row of the efficiency table (bench.reports.efficiency.COLUMNS, machine columns added by the caller)."""
    served = serve(entry, scratch, device)
    x = torch.rand(1, served.spec["channels"], SIZE, SIZE, generator=torch.Generator().manual_seed(0)).to(device)
    macs = count_macs(served.forward, x)
    fns = {"forward": torch.inference_mode()(lambda: served.forward(x)), "switch": _cycling(served.answer, served.switch_levels, x)}
    if served.step is not None:
        fns["step"] = _cycling(served.step, served.switch_levels)
    t = time_round_robin(fns, repeats, device, warmup=WARMUP)
    latency = t["forward"].median_s * 1e3
    if mp_size == SIZE:
        per_mp, mp_from = latency * 1e6 / SIZE**2, f"the {SIZE} x {SIZE} median scaled to 10^6 pixels (not measured at 1 MP)"
    else:
        big = torch.rand(1, served.spec["channels"], mp_size, mp_size, generator=torch.Generator().manual_seed(0)).to(device)
        big_t = time_round_robin({"forward": torch.inference_mode()(lambda: served.forward(big))}, repeats, device, warmup=WARMUP)
        per_mp, mp_from = big_t["forward"].median_s * 1e3 * 1e6 / mp_size**2, f"median at {mp_size} x {mp_size}, divided by its megapixels"
    cold = warm = cold_share = None
    if served.bank:
        shares = [cached_fraction(f) for f in served.files]  # after the timing, whose switches read every file
        warm = None if None in shares else min(shares)
        cold, cold_share = cold_switches(served, x, repeats, device)
    if device.type == "cuda":
        peak, method = cuda_peak(lambda: served.forward(x), device), CUDA_METHOD
    else:
        peak, method = cpu_peak(served.spec), CPU_METHOD
    return {
        "model": entry.model, "arch": entry.arch, "task": entry.task,
        "config": ", ".join(f"{k}={v}" for k, v in entry.model_kwargs.items() if k != "levels"),
        "params": count_params(served.net), "macs_256": macs, "level": served.spec["level"],
        "latency_256_ms": latency, "latency_mp_ms": per_mp, "mp_from": mp_from,
        "peak_memory_bytes": peak, "memory_method": method, "switch_mechanism": served.mechanism,
        "switch_ms": t["switch"].median_s * 1e3, "switch_step_ms": t["step"].median_s * 1e3 if "step" in t else None,
        "switch_cold_ms": cold * 1e3 if cold is not None else None, "warm_cached": warm, "cold_cached": cold_share,
        "storage_bytes": sum(os.path.getsize(f) for f in served.files), "storage_files": len(served.files),
        "scratch_fs": filesystem_of(scratch), "repeats": repeats, "warmup": WARMUP,
    }


def measure_profile(profile: Profile, results_dir=Path("results"), device: str = "cpu", repeats: int = MIN_REPEATS, threads: int | None = None,
                    tasks=None, models=None, mp_size: int = SIZE, log=print) -> Path:
    """Measure every entry (one per model and task: the primary training seed) and store the rows; returns the CSV's path."""
    dev = named_device(device)
    if repeats < 1:
        raise HyperbenchError(f"--repeats {repeats}", f"give at least {MIN_REPEATS} timed repeats")
    if mp_size < 32 or mp_size % 16:
        raise HyperbenchError(f"--mp-size {mp_size}", "give an image side that is a multiple of 16, at least 32 (e.g. 1024)")
    if threads:
        torch.set_num_threads(threads)
    entries = [e for e in expand(profile, tasks, models) if e.primary]
    where = machine(dev)
    log(f"efficiency of profile {profile.name}: {len(entries)} entries on {where['device_name']} ({where['threads']} torch threads), "
        f"median of {repeats} after {WARMUP} warm-up forwards")
    path = efficiency_file(results_dir, profile.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    # scratch files beside the stored figures (the disk checkpoints live on, not a tmpfs); *.tmp is git-ignored
    with tempfile.TemporaryDirectory(prefix=".efficiency-", suffix=".tmp", dir=path.parent) as scratch, \
            progress_bar(f"efficiency {profile.name}", total=len(entries), show_loss=False) as bar:
        for i, entry in enumerate(entries):
            bar.update(i, description=f"efficiency {entry.model} {entry.task}")
            rows.append({"profile": profile.name, **measure_entry(entry, Path(scratch), dev, repeats, mp_size), **where})
            for f in Path(scratch).iterdir():  # a paper-size bank's files add up: keep one entry's at a time
                f.unlink()
            bar.update(i + 1)
    store_efficiency(path, rows)
    import pandas as pd

    from bench.reports.efficiency import COLUMNS

    log(efficiency_markdown(pd.DataFrame(rows, columns=COLUMNS), profile.name))
    log(f"stored in {path} (`hyperbench tables -p {profile.name}` also prints them in its tables)")
    return path


def efficiency_command(profile: str, results_dir, tables_dir, device: str, repeats: int | None, threads, tasks, models, mp_size: int, log) -> Path:
    """`hyperbench perf --efficiency`: checks its options (at least MIN_REPEATS repeats: the table prints such medians), measures,
    and writes efficiency.{md,csv,tex} beside the profile's tables (a profile like `paper` has no other table to wait for)."""
    from bench.reports.efficiency import write_efficiency_tables
    from bench.training.profiles import load_profile

    if repeats is not None and repeats < MIN_REPEATS:
        raise HyperbenchError(f"--repeats {repeats} with --efficiency", f"give at least {MIN_REPEATS}: the table prints the median of at least {MIN_REPEATS} runs")
    prof = load_profile(profile)
    stored = measure_profile(prof, results_dir, device, repeats or MIN_REPEATS, threads, tasks, models, mp_size, log)
    out = Path(tables_dir) / prof.name
    out.mkdir(parents=True, exist_ok=True)
    written, _ = write_efficiency_tables(prof.name, results_dir, out)
    log(f"written: {', '.join(str(p) for p in written)}")
    return stored
