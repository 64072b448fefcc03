"""Optimal input level (paper Fig 5): for each image and true level, the control that maximises PSNR.

The control is what an adaptive model is steered with, in its own units: HyperRes' input level
(task units: sigma, JPEG quality, SR scale), AdaFM's lambda, CFSNet's alpha, CResMD's condition.
Every adaptive entry exposes `control_for(level)` (the control the evaluation uses for a level: the
reference) and `forward_control(x, control)`.

Search bracket: the true level +- max(window x level, MIN_HALF_WINDOW[task]) in task units, clipped
to the task's valid range, then mapped to control units through `control_for` (and clipped to the
model's `control_range` when it has one). With window 0.5: sigma 25 -> [12.5, 37.5], q 80 -> [40, 100],
x4 -> [2, 6]. A best control on the bracket's edge is flagged (`at_edge`).

The search itself is `bench.tuning.search.maximise`.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from bench.common.atomic import atomic_write_text
from bench.common.errors import HyperbenchError
from bench.common.progress import progress_bar
from bench.data.images import modcrop, to_tensor, to_uint8
from bench.data.loading import load_dataset
from bench.evaluation.evaluate import assemble
from bench.evaluation.inputs import degraded_input
from bench.metrics.quality import psnr
from bench.models.catalog import model_cfg
from bench.reports.tuning import write_tuning_reports
from bench.tasks.task import Task, get_task
from bench.training.profiles import Entry, Profile, expand
from bench.tuning import blind
from bench.tuning.current import mark_current, tuning_dir
from bench.tuning.search import maximise
from bench.weights.profile_import import profile_entries

TUNE_FORMAT = 1
MIN_HALF_WINDOW = {"denoise": 5.0, "dejpeg": 5.0, "sr": 0.5}  # task units: keeps small levels' brackets usable
TUNE_KEYS = {"images", "levels", "window", "grid", "probes", "batch", "eps", "blind", "estimator"}


@dataclass(frozen=True)
class TuneSettings:
    """The profile's `tune:` section (see bench/profiles/smoke.yaml)."""

    images: int | None = 3  # first N evaluation images of each task (None: all)
    levels: dict = field(default_factory=dict)  # task -> true levels; default: the paper's table levels
    window: float = 0.5
    grid: int = 41
    probes: int = 5
    batch: int = 4  # candidate controls per batched call (models with `sweep`, i.e. HyperRes)
    eps: float = 0.005  # dB: PSNR dips smaller than this do not count against unimodality
    blind: dict = field(default_factory=dict)  # see bench.tuning.blind.BLIND_KEYS
    estimator: dict = field(default_factory=dict)  # see bench.tuning.blind.ESTIMATOR_KEYS

    def task_levels(self, task: Task) -> list[float]:
        return [task.check_level(v) for v in self.levels.get(task.name, task.table_levels)]


def tune_settings(profile: Profile) -> TuneSettings:
    """Validate a profile's tune section (fails before any training when it is wrong)."""
    raw = dict(getattr(profile, "tune", None) or {})
    where = f"profile {profile.source}: tune section"
    unknown = set(raw) - TUNE_KEYS
    if unknown:
        raise HyperbenchError(f"{where} has unknown keys {sorted(unknown)}", f"allowed: {sorted(TUNE_KEYS)}")
    settings = TuneSettings(**raw)

    def whole(v, least):
        return isinstance(v, int) and not isinstance(v, bool) and v >= least

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if settings.images is not None and not whole(settings.images, 1):
        raise HyperbenchError(f"{where}: images must be a positive integer or null, got {settings.images!r}", "e.g. images: 3")
    if not number(settings.window) or not 0 < settings.window <= 4:
        raise HyperbenchError(f"{where}: window {settings.window!r} is not a number in (0, 4]", "e.g. window: 0.5 (true level +- 50 %)")
    if not (whole(settings.grid, 5) and whole(settings.probes, 3) and whole(settings.batch, 1)) or settings.probes > settings.grid:
        raise HyperbenchError(f"{where}: needs whole numbers grid >= 5, 3 <= probes <= grid, batch >= 1", "e.g. grid: 41, probes: 5, batch: 4")
    if not number(settings.eps) or settings.eps < 0:
        raise HyperbenchError(f"{where}: eps {settings.eps!r} is not a number >= 0 (dB)", "e.g. eps: 0.005")
    if not isinstance(settings.levels, dict):
        raise HyperbenchError(f"{where}: levels must map task names to level lists", "e.g. levels: {denoise: [15, 25, 50]}")
    for task_name in settings.levels:
        settings.task_levels(get_task(task_name))
    blind.check_blind_section(settings, where)
    return settings


# ------------------------------------------------------------------------- models and controls


def control_bracket(model, task: Task, level: float, window: float) -> tuple[float, float, float]:
    """(reference control, lo, hi) in the model's control units; see the module docstring."""
    half = max(window * level, MIN_HALF_WINDOW[task.name])
    lo_level, hi_level = max(level - half, task.valid_range[0]), min(level + half, task.valid_range[1])
    ref = _scalar(model.control_for(level), model)
    lo, hi = sorted((_scalar(model.control_for(lo_level), model), _scalar(model.control_for(hi_level), model)))
    limits = getattr(model, "control_range", None)
    if limits is not None:
        lo, hi = max(lo, limits[0]), min(hi, limits[1])
    return ref, lo, hi


def _scalar(control, model) -> float:
    try:
        return float(control)
    except (TypeError, ValueError):
        raise HyperbenchError(
            f"{type(model).__name__}'s control {control!r} is not a single number",
            "the optimal-control search handles scalar controls only; leave this model out of `hyperbench tune --models`",
        ) from None


def batched_controls(model) -> bool:
    """Models with `sweep(x, levels)` (HyperRes: head once, first generated conv shared, the rest grouped)
    take many controls of one input in one call; the others get one control per call."""
    return hasattr(model, "sweep")


def psnr_of_controls(model, x, clean, spec, controls, batch: int) -> list[float]:
    """PSNR of the model's output for each control (in batches of `batch` where the model allows it)."""
    out = []
    chunk = batch if batched_controls(model) else 1
    with torch.no_grad():
        for i in range(0, len(controls), chunk):
            part = [float(c) for c in controls[i : i + chunk]]
            if len(part) == 1:
                ys = [model.forward_control(x, part[0])]
            else:
                ys = list(model.sweep(x, part))
            out += [psnr(to_uint8(y), clean, spec) for y in ys]
    return out


def tune_one(model, task: Task, pixels, level: float, seed: int, options: dict, settings: TuneSettings, name: str) -> dict:
    """Best control for one image at one true level (its input made exactly as the evaluation makes it)."""
    clean = modcrop(pixels, 2)
    x = to_tensor(degraded_input(task, pixels, name, level, seed, options))
    ref, lo, hi = control_bracket(model, task, level, settings.window)

    def f(controls):
        return psnr_of_controls(model, x, clean, task.metric, controls, settings.batch)

    search = maximise(f, lo, hi, settings.grid, settings.probes, settings.eps)
    psnr_ref = search.points[ref] if ref in search.points else f([ref])[0]
    step = (hi - lo) / (settings.grid - 1) if hi > lo else 0.0
    return {
        "image": name, "level": float(level), "control_name": getattr(model, "control_name", "control"),
        "reference": ref, "best": search.best, "lo": lo, "hi": hi, "step": step,
        "at_edge": bool(hi > lo and min(search.best - lo, hi - search.best) < step / 2),
        "psnr_reference": psnr_ref, "psnr_best": search.value, "forwards": search.forwards, "method": search.method,
    }


def adaptive_entries(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if model_cfg(e.arch).adaptive]


def tune_entry(profile: Profile, entry: Entry, model, images, settings: TuneSettings) -> list[dict]:
    task, tcfg = get_task(entry.task), profile.task_cfg(entry.task)
    levels = settings.task_levels(task)
    rows = []
    with progress_bar(f"tune {entry.model} {entry.task}", total=len(images) * len(levels), show_loss=False) as bar:
        for i, image in enumerate(images):
            for j, level in enumerate(levels):
                row = tune_one(model, task, image.pixels, level, profile.seed, tcfg["options"], settings, image.name)
                rows.append({"model": entry.model, "task": entry.task, "dataset": tcfg["eval_dataset"], **row})
                bar.update(i * len(levels) + j + 1)
    return rows


def _cache_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps({"format": TUNE_FORMAT, **payload}, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _revision(task) -> dict:
    """The task's revision for a cache key, only when bumped (other tasks keep their files): imported
    official weights have the same run ids whatever the task's inputs, so the runs alone do not tell."""
    return {"task_revision": task.revision} if task.revision else {}


def cached_frame(path, compute: Callable[[], list[dict]], log=print) -> pd.DataFrame:
    """Rows from a CSV cache, or computed and stored (full precision, atomically)."""
    if not path.exists():
        buf = io.StringIO()
        pd.DataFrame(compute()).to_csv(buf, index=False)
        atomic_write_text(path, buf.getvalue())
    else:
        log(f"already done: {path}")
    return pd.read_csv(path, dtype={"image": str})  # names such as "01" stay strings


def has_controls(model) -> bool:
    return hasattr(model, "control_for") and hasattr(model, "forward_control")


def optimal_frame(profile: Profile, paths, entry: Entry, model, settings: TuneSettings, data_root=None, log=print) -> pd.DataFrame:
    """Per-image best controls of one trained adaptive entry (cached by everything they depend on)."""
    task, tcfg = get_task(entry.task), profile.task_cfg(entry.task)
    key = _cache_key({
        "runs": [r.run_id for r in entry.runs], "dataset": tcfg["eval_dataset"], "options": tcfg["options"], "seed": profile.seed,
        "metric": task.metric.key(), "images": settings.images, "levels": settings.task_levels(task),
        "search": [settings.window, settings.grid, settings.probes, settings.eps], **_revision(task),
    })
    images = load_dataset(tcfg["eval_dataset"], data_root, colour=task.channels)[: settings.images]
    t0 = time.time()
    path = tuning_dir(paths, profile.name) / f"optimal-{entry.task}-{entry.model}-{key}.csv"
    frame = cached_frame(path, partial(tune_entry, profile, entry, model, images, settings), log)
    mark_current(paths, profile.name, f"optimal-{entry.task}-{entry.model}", path)
    log(f"optimal control search {entry.model} {entry.task}: {len(frame)} searches in {time.time() - t0:.0f} s")
    return frame


def blind_frame(profile: Profile, paths, trained: list, settings: TuneSettings, data_root=None, log=print):
    """(per-image blind rows of the trained adaptive denoising entries or None, estimator description)."""
    denoisers = [e for e, _ in trained if e.task == "denoise"]
    if not denoisers:
        log("blind table skipped: no adaptive denoising entry in this selection")
        return None, ""
    tcfg = profile.task_cfg("denoise")
    estimator, text, identity = blind.estimator_for(profile, settings, paths, data_root, log)
    levels = blind.blind_levels(settings)
    images = load_dataset(tcfg["eval_dataset"], data_root, colour="rgb")[: settings.blind.get("images")]
    key = _cache_key({
        "runs": {e.model: [r.run_id for r in e.runs] for e in denoisers}, "estimator": identity, "crops": estimator.crops,
        "dataset": tcfg["eval_dataset"], "images": settings.blind.get("images"), "levels": levels,
        "options": tcfg["options"], "seed": profile.seed, "metric": get_task("denoise").metric.key(), **_revision(get_task("denoise")),
    })
    models = {e.model: model for e, model in trained if e.task == "denoise"}
    t0 = time.time()
    path = tuning_dir(paths, profile.name) / f"blind-denoise-{key}.csv"
    compute = partial(blind.blind_rows, models, estimator, images, levels, profile.seed, tcfg["options"], tcfg["eval_dataset"])
    frame = cached_frame(path, compute, log).assign(dataset=tcfg["eval_dataset"])
    mark_current(paths, profile.name, "blind-denoise", path)
    log(f"blind denoising on {len(images)} images x {len(levels)} levels in {time.time() - t0:.0f} s ({text})")
    return frame, text


def tune_profile(profile: Profile, paths, tasks=None, models=None, data_root=None, log=print, settings: TuneSettings | None = None) -> list:
    """Optimal-control search for every trained adaptive entry (Fig 5 + deviation table), the blind
    denoising table and the estimator's accuracy. Per-image rows are cached under
    results/<profile>/tuning/. Returns the files written."""
    settings = settings or tune_settings(profile)
    trained = []
    primary = [e for e in profile_entries(profile, paths, tasks, models, log)[0] if e.primary]  # one training seed per entry
    for entry in adaptive_entries(primary):
        model = assemble(entry, paths.runs)
        if has_controls(model):
            trained.append((entry, model))
        else:  # e.g. a third-party adaptive plugin without the control interface
            log(f"tuning skips {entry.model} ({entry.task}): it has no control_for/forward_control (see bench/models/hyperres.py)")
    if not trained:
        log("tuning skipped: no adaptive entry with a control interface in this selection")
        return []
    frames = [optimal_frame(profile, paths, entry, model, settings, data_root, log) for entry, model in trained]
    blind_rows, estimator_text = blind_frame(profile, paths, trained, settings, data_root, log)
    return write_tuning_reports(profile, paths, pd.concat(frames, ignore_index=True), blind_rows, estimator_text, settings)


# --------------------------------------------------------------------------------- benchmark


def benchmark(profile: Profile, paths, task_name: str = "denoise", model_name: str = "hyperres", n_images: int = 3,
              data_root=None, log=print, grid: int = 41) -> dict:
    """Forwards and wall time of the search vs a dense `grid`-point grid over the same bracket, and whether
    the two argmaxes agree within one grid step, on the first images at the paper's table levels. Both use
    the same batched PSNR evaluation; the search runs at the grid's resolution."""
    settings = replace(tune_settings(profile), grid=grid, levels={task_name: list(get_task(task_name).table_levels)})
    entries = [e for e in expand(profile, [task_name], [model_name]) if e.primary]
    if not entries:
        raise HyperbenchError(f"{model_name} has no {task_name} entry in profile {profile.name}", "pick a task and model of the profile")
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    model = assemble(entries[0], paths.runs)
    images = load_dataset(tcfg["eval_dataset"], data_root, colour=task.channels)[:n_images]
    rows = []
    for image in images:
        clean = modcrop(image.pixels, 2)
        for level in settings.task_levels(task):
            x = to_tensor(degraded_input(task, image.pixels, image.name, level, profile.seed, tcfg["options"]))
            _, lo, hi = control_bracket(model, task, level, settings.window)

            def f(controls, x=x, clean=clean):
                return psnr_of_controls(model, x, clean, task.metric, controls, settings.batch)

            t0 = time.perf_counter()
            search = maximise(f, lo, hi, settings.grid, settings.probes, settings.eps)
            t_search = time.perf_counter() - t0
            grid_xs = [float(v) for v in np.linspace(lo, hi, settings.grid)]
            t0 = time.perf_counter()
            grid_vs = f(grid_xs)
            t_grid = time.perf_counter() - t0
            g = int(np.argmax(grid_vs))
            step = (hi - lo) / (settings.grid - 1)
            rows.append({"image": image.name, "level": level, "lo": lo, "hi": hi, "search_best": search.best, "grid_best": grid_xs[g],
                         "agree": abs(search.best - grid_xs[g]) <= step + 1e-9, "psnr_loss": grid_vs[g] - search.value,
                         "search_forwards": search.forwards, "grid_forwards": len(grid_xs), "search_s": t_search, "grid_s": t_grid,
                         "method": search.method})
            log(f"{image.name} {task_name} {level:g}: search {search.best:.3f} ({search.forwards} fwd, {t_search:.2f} s, {search.method}) | "
                f"grid {grid_xs[g]:.3f} ({len(grid_xs)} fwd, {t_grid:.2f} s) | step {step:.3f} | agree {rows[-1]['agree']}")
    frame = pd.DataFrame(rows)
    summary = {
        "searches": len(frame), "search_forwards": int(frame.search_forwards.sum()), "grid_forwards": int(frame.grid_forwards.sum()),
        "forward_ratio": frame.search_forwards.sum() / frame.grid_forwards.sum(), "search_s": frame.search_s.sum(), "grid_s": frame.grid_s.sum(),
        "speedup": frame.grid_s.sum() / frame.search_s.sum(), "agree": int(frame.agree.sum()), "max_psnr_loss": float(frame.psnr_loss.max()),
        "psnr_agree": int((frame.psnr_loss <= 0.001).sum()),
        "grid_fallbacks": int((frame.method == "grid").sum()), "torch_threads": torch.get_num_threads(),
    }
    log(f"\n{model_name} {task_name}, {len(images)} images x {len(settings.task_levels(task))} levels, {settings.grid}-point grid, "
        f"torch threads {summary['torch_threads']}:")
    log(f"  forwards: search {summary['search_forwards']} vs grid {summary['grid_forwards']} "
        f"= {summary['forward_ratio']:.3f} of the grid ({summary['search_forwards'] / len(frame):.1f} vs {settings.grid} per search; target <= 0.25)")
    log(f"  wall time: search {summary['search_s']:.2f} s vs grid {summary['grid_s']:.2f} s = {summary['speedup']:.1f}x faster (target >= 3x)")
    log(f"  argmax within one grid step of the grid's: {summary['agree']}/{len(frame)}; best PSNR within 0.001 dB of the grid's: "
        f"{summary['psnr_agree']}/{len(frame)}; largest PSNR shortfall vs grid {summary['max_psnr_loss']:.4f} dB; "
        f"grid fallbacks {summary['grid_fallbacks']}")
    return summary
