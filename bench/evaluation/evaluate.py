"""Evaluation: every table entry at every evaluation level on every image, with deterministic
degraded inputs (noise seeded from image name, level and seed) shared by all entries."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from bench.common.allocator import keep_freed_memory
from bench.common.checkpoint import load_state_into, load_tensors
from bench.common.errors import HyperbenchError
from bench.common.progress import progress_bar
from bench.data.images import modcrop, to_tensor, to_uint8
from bench.data.input_cache import InputCache
from bench.evaluation.colour import fit_channels
from bench.evaluation.inputs import degraded_input
from bench.metrics.iqa import IqaReference
from bench.metrics.quality import Reference
from bench.models.catalog import create_model
from bench.tasks.task import get_task
from bench.training.profiles import Entry
from bench.training.runs import RunDir

INPUT = "degraded-input"  # pseudo-entry: the metrics of the network input itself


def load_trained(rundir: RunDir) -> torch.nn.Module:
    """The finished model of one run, in eval mode; a clear error when it is not trained or no longer fits."""
    if not rundir.is_done:
        raise HyperbenchError(
            f"run {rundir.run.run_id} ({rundir.run.model}, {rundir.run.task}, levels {rundir.run.levels}) is not trained",
            "run `hyperbench train` (or `hyperbench reproduce`) with the same profile first",
        )
    model = create_model(rundir.run.model, **rundir.run.config["model_kwargs"])
    state, _ = load_tensors(rundir.model_file)
    try:
        load_state_into(model, state, str(rundir.model_file))
    except HyperbenchError as exc:  # the run's own config no longer builds the network its weights came from
        raise HyperbenchError(exc.problem, f"delete {rundir.path} and train again (the model code or its arguments changed since it was trained)") from None
    return model.eval()


def assemble(entry: Entry, runs_dir) -> torch.nn.Module:
    """The trained model of an entry: one run, or a bank filled member by member from its runs."""
    if len(entry.runs) == 1 and "levels" not in entry.model_kwargs:
        model = load_trained(RunDir(runs_dir, entry.runs[0]))
        return fit_channels(model, get_task(entry.task).in_channels, f"{entry.model} ({entry.runs[0].run_id})")
    levels = [run.levels[0] for run in entry.runs]
    kwargs = {k: v for k, v in entry.model_kwargs.items() if k != "levels"}
    bank = create_model(entry.arch, levels=levels, **kwargs)
    for run in entry.runs:
        member = load_trained(RunDir(runs_dir, run))
        for key, sub in member.members.items():
            bank.members[key].load_state_dict(sub.state_dict())
    return bank.eval()


def input_level(model, level: float) -> float:
    """The level the model is actually given: banks answer with their nearest trained level."""
    return float(model.nearest_level(level)) if hasattr(model, "nearest_level") else float(level)


LEVEL_BATCH_ELEMENTS = 1 << 22  # input values per batched call when the levels of one image run together


def restore_levels(model, xs: list[torch.Tensor], levels: list[float], device=None) -> list[np.ndarray]:
    """uint8 outputs of one model for the degraded inputs of one image at several levels. A model that batches
    levels on this device (HyperRes on CUDA, see HyperRes.level_batching) gets them in one call per chunk."""
    device = torch.device(device or "cpu")
    if not (hasattr(model, "batches_levels") and model.batches_levels(xs[0].to(device))):
        return [to_uint8(model(x.to(device), lv).cpu()) for x, lv in zip(xs, levels)]
    per_call = max(1, LEVEL_BATCH_ELEMENTS // xs[0].numel())
    outputs = []
    for start in range(0, len(xs), per_call):
        batch = torch.cat(xs[start : start + per_call]).to(device)
        outputs += [to_uint8(out) for out in model(batch, levels[start : start + per_call]).cpu().split(1)]
    return outputs


@torch.no_grad()
def evaluate(task, models: dict, images, levels, seed: int, options: dict, label: str = "",
             input_cache=None, dataset: str | None = None, device=None, extra=()) -> list[dict]:
    """Per-image rows: model, image, level, input_level, psnr, ssim, input_sha256 (degraded input
    included), and a column per pyiqa metric of `extra` (bench.metrics.iqa.IqaSpec), scored on the same outputs.
    With `input_cache` (a folder) the degraded inputs are stored once and read back later.
    Models run on `device` (default CPU); the metrics are computed on the CPU."""
    keep_freed_memory()  # whole-image feature maps reuse freed memory instead of page-faulting it in again
    spec = task.metric
    inputs = InputCache(input_cache, dataset or label, task, images, seed, options)
    if device is not None:
        for model in models.values():
            model.to(device)
    rows = []
    with progress_bar(f"eval {task.name} {label}", total=len(images) * len(levels), show_loss=False) as bar:
        for i, image in enumerate(images):
            clean = Reference(modcrop(image.pixels, 2), spec)  # scored against every model and level: prepared once
            others = {m.name: IqaReference(modcrop(image.pixels, 2), m) for m in extra}
            degraded = [inputs.get(image.name, level, partial(degraded_input, task, image.pixels, image.name, level, seed, options)) for level in levels]
            xs = [to_tensor(d) for d, _ in degraded]
            given = {name: [input_level(model, level) for level in levels] for name, model in models.items()}
            restored = {name: restore_levels(model, xs, given[name], device) for name, model in models.items()}
            for j, level in enumerate(levels):
                digest = degraded[j][1]
                outputs = {INPUT: (to_uint8(xs[j]), np.nan)}
                for name in models:
                    outputs[name] = (restored[name][j], given[name][j])
                for name, (out, lv) in outputs.items():
                    rows.append({
                        "model": name, "image": image.name, "level": float(level), "input_level": lv,
                        "psnr": clean.psnr(out), "ssim": clean.ssim(out), "input_sha256": digest,
                        **{name: ref.score(out) for name, ref in others.items()},
                    })
                bar.update(i * len(levels) + j + 1)
    return rows
