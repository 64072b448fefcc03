"""`hyperbench perf` part 4: the training data path. Does the loader keep up with the model?

* crops per second of the loader at the paper's batch (16 crops x 4 levels of 96x96, denoising at the
  paper's training levels): `fresh` (every crop degraded as drawn) and `fixed` (crops of a store of
  whole images degraded once), each with 0 workers and with N worker processes;
* one joint training step fed by the loader (fixed, N workers) against the same step on a batch already
  in memory: the loader's cost to training, in percent.

The store is built before timing (its build time is printed); it is kept in `runs_dir`'s
training-data/ and reused by later measurements and runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.nn import functional as F

from bench.common.errors import HyperbenchError
from bench.data.images import as_float
from bench.data.loading import load_dataset
from bench.tasks.degradations import seeded_rng
from bench.tasks.task import get_task
from bench.training.crops import FixedCrops, FreshCrops, step_batches

PAPER_BATCH, PAPER_CROP, PAPER_LEVELS = 16, 96, (15.0, 35.0, 55.0, 75.0)


def training_images(dataset: str | None, data_root=None):
    """The paper's colour training set here (CBSD432) when the data root has it, else scikit-image's samples."""
    if dataset:
        return dataset, load_dataset(dataset, data_root)
    try:
        return "CBSD432", load_dataset("CBSD432", data_root)
    except HyperbenchError:  # no data root or no CBSD432 on this machine: the bundled samples still time the path
        return "skimage-train", load_dataset("skimage-train")


def crops_per_second(make, batch: int, levels: int, steps: int, workers: int) -> float:
    """Crops (one crop at one level) the loader delivers per second, counted from its first batch (the
    workers' start-up is a one-off per training stage) over `steps` more."""
    batches = step_batches(make, batch, 0, "perf", 0, steps + 1, workers=workers)
    next(batches)
    t0 = time.perf_counter()
    for _ in batches:
        pass
    return batch * levels * steps / (time.perf_counter() - t0)


def loader_throughput(images, dataset: str, runs_dir: Path, workers: int, steps: int, log=print) -> dict:
    task = get_task("denoise")
    options = task.options()
    fresh = FreshCrops(images, PAPER_CROP, task, options).level_batches(PAPER_LEVELS)
    fixed_crops = FixedCrops(images, PAPER_CROP, task, options, 0, runs_dir, dataset)
    t0 = time.perf_counter()
    fixed = fixed_crops.level_batches(PAPER_LEVELS)
    log(f"  store of {len(fixed_crops.images)} {dataset} images x {len(PAPER_LEVELS)} levels ready in {time.perf_counter() - t0:.1f} s "
        f"({fixed_crops.store.folder})")
    rates = {}
    for name, make in (("fresh", fresh), ("fixed", fixed)):
        for w in sorted({0, workers}):
            rates[f"{name}, {w} workers"] = crops_per_second(make, PAPER_BATCH, len(PAPER_LEVELS), steps, w)
    base = rates["fresh, 0 workers"]
    for name, rate in rates.items():
        log(f"  {name:<20} {rate:9.0f} crops/s  {rate / base:5.2f}x fresh without workers  "
            f"({PAPER_BATCH * len(PAPER_LEVELS) / rate * 1e3:6.1f} ms per paper batch)")
    return {"crops_per_s": rates, "fixed_vs_fresh": rates[f"fixed, {workers} workers"] / base, "store": str(fixed_crops.store.folder)}


def step_with_loader(images, dataset: str, runs_dir: Path, model, batch: int, crop: int, levels: int, workers: int,
                     steps: int, device: torch.device, log=print) -> dict:
    """The same joint step fed by the loader (fixed store, `workers`) and from one batch kept in memory."""
    task = get_task("denoise")
    level_set = [float(v) for v in torch.linspace(15, 75, levels).tolist()]
    make = FixedCrops(images, crop, task, task.options(), 0, runs_dir, dataset).level_batches(level_set)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(x, y, lv):
        x, y, lv = as_float(x.to(device, non_blocking=True)), as_float(y.to(device, non_blocking=True)), lv.to(device)
        loss = F.l1_loss(model(x, lv), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    in_memory = make(seeded_rng(0, "perf-step", 0), 0, batch)
    step(*in_memory)  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(*in_memory)
    sync()
    memory_s = (time.perf_counter() - t0) / steps
    log(f"  joint step ({levels} levels x {batch} crops of {crop}x{crop}): {memory_s * 1e3:.1f} ms on a batch in memory")
    out = {"memory_step_s": memory_s}
    for w in sorted({0, workers}):
        batches = step_batches(make, batch, 0, "perf-step", 0, steps + 1, workers=w, pin_memory=device.type == "cuda")
        step(*next(batches))  # from the first batch on: worker start-up is once per stage
        sync()
        t0 = time.perf_counter()
        for b in batches:
            step(*b)
        sync()
        loader_s = (time.perf_counter() - t0) / steps
        overhead = loader_s / memory_s - 1
        log(f"  {'':<20} {loader_s * 1e3:.1f} ms fed by the loader (fixed, {w} workers): {overhead:+.1%}; "
            f"{'data' if overhead > 0.05 else 'compute'} sets the pace")
        out[f"loader_step_s_{w}_workers"], out[f"loader_overhead_{w}_workers"] = loader_s, overhead
    return out
