"""What the visual comparison figures show: the profile's `visual:` section (checked when the profile loads) and the
written rule that chooses whatever it leaves open. The rule, not a person, picks the image and the crop, so a figure
cannot be cherry-picked by hand; it picks the largest difference on purpose, and the caption says so."""

from __future__ import annotations

import numpy as np

from bench.common.errors import HyperbenchError, did_you_mean
from bench.tasks.task import TASKS, get_task

KEYS = ("images", "levels", "crop")
DEFAULT_CROP = 96  # px: the side of the square crop
MIN_CROP = 16  # a crop must hold an SSIM window (11 px) with room to see something
STRIDE = 16  # px between the windows the rule compares
MAX_SCAN = 24  # the rule scans at most the first 24 evaluation images: two forwards of each stay within seconds to a minute on a CPU
EXAMPLE = "write e.g. `visual: {crop: 96, denoise: {images: ['0001'], levels: [45]}}`"


def visual_settings(raw, where: str, eval_levels: dict) -> dict:
    """The checked `visual:` section, as {task: {"images": [...] or None, "levels": [...] or None, "crop": px}} for each
    task of the profile (`eval_levels`: task -> its evaluation levels). Top-level keys apply to every task, a task's own
    mapping (`visual: {sr: {levels: [4]}}`) overrides them for that task. A level must be one the task is evaluated at."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HyperbenchError(f"{where}: visual must be a mapping, got {raw!r}", EXAMPLE)
    for key in raw:
        if key not in KEYS and key not in TASKS:
            raise HyperbenchError(f"{where}: visual has an unknown key {key!r}", did_you_mean(str(key), KEYS + tuple(TASKS)))
        if key in TASKS and key not in eval_levels:
            raise HyperbenchError(f"{where}: visual.{key} names a task the profile does not evaluate", f"use one of {', '.join(eval_levels)}")
        if key in TASKS and not isinstance(raw[key], dict):
            raise HyperbenchError(f"{where}: visual.{key} must be a mapping, got {raw[key]!r}", EXAMPLE)
    settings = {}
    for task, levels in eval_levels.items():
        own = raw.get(task) or {}
        for key in own:
            if key not in KEYS:
                raise HyperbenchError(f"{where}: visual.{task} has an unknown key {key!r}", did_you_mean(str(key), KEYS))
        merged = {k: v for k, v in raw.items() if k in KEYS} | own
        name = {key: f"visual.{task}.{key}" if key in own else f"visual.{key}" for key in KEYS}  # each key as written
        settings[task] = {"images": _images(merged.get("images"), where, name["images"]),
                          "levels": _levels(merged.get("levels"), where, name["levels"], task, levels),
                          "crop": _crop(merged.get("crop", DEFAULT_CROP), where, name["crop"])}
    return settings


def _images(raw, where, key):
    if raw is None:
        return None
    if not (isinstance(raw, list) and raw and all(isinstance(n, (str, int)) and not isinstance(n, bool) and str(n) for n in raw)
            and len({str(n) for n in raw}) == len(raw)):
        raise HyperbenchError(f"{where}: {key} must be a non-empty list of distinct image names, got {raw!r}",
                              "name images of the task's eval_dataset as files are named without suffix, e.g. `images: ['0001', '0005']`")
    return [str(n) for n in raw]


def _levels(raw, where, key, task, eval_levels):
    if raw is None:
        return None
    if not (isinstance(raw, list) and raw):
        raise HyperbenchError(f"{where}: {key} must be a non-empty list of levels, got {raw!r}", EXAMPLE)
    levels = []
    for value in raw:
        level = get_task(task).check_level(value)
        if float(level) not in [float(v) for v in eval_levels]:
            raise HyperbenchError(f"{where}: {key} has {value!r}, which is not an evaluation level of {task}",
                                  f"pick from its eval_levels ({', '.join(f'{v:g}' for v in eval_levels)}), or give the levels per task: "
                                  f"`visual: {{{task}: {{levels: [...]}}}}`")
        levels.append(float(level))
    return levels


def _crop(raw, where, key):
    if not (isinstance(raw, int) and not isinstance(raw, bool) and raw >= MIN_CROP):
        raise HyperbenchError(f"{where}: {key} is {raw!r}", f"give the side of the square crop in pixels, a whole number >= {MIN_CROP} (e.g. `crop: 96`)")
    return raw


def middle_level(task_name: str, eval_levels) -> float:
    """The default level: the middle of the levels the task's table prints (the lower of two middles), among those evaluated."""
    printed = [float(v) for v in get_task(task_name).table_levels if float(v) in [float(e) for e in eval_levels]] or [float(v) for v in eval_levels]
    return printed[(len(printed) - 1) // 2]


def best_window(a: np.ndarray, b: np.ndarray, size: int, border: int, stride: int = STRIDE) -> tuple[int, int, int, float]:
    """(top, left, side, mean absolute difference) of the square window, inside the metric's crop border, on a
    `stride` grid, where uint8 images `a` and `b` differ most. The sums are integers, so ties are exact: the first
    window in row-major order wins. A side larger than the image inside the border shrinks to fit."""
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    channels = diff.shape[2] if diff.ndim == 3 else 1
    diff = diff.sum(axis=2) if diff.ndim == 3 else diff
    inner = diff[border : diff.shape[0] - border, border : diff.shape[1] - border]
    side = min(size, *inner.shape)
    table = np.zeros((inner.shape[0] + 1, inner.shape[1] + 1), np.int64)
    table[1:, 1:] = inner.cumsum(0).cumsum(1)  # summed-area table: every window's sum in four look-ups
    tops, lefts = np.arange(0, inner.shape[0] - side + 1, stride), np.arange(0, inner.shape[1] - side + 1, stride)
    t, lo = tops[:, None], lefts[None, :]
    sums = table[t + side, lo + side] - table[t, lo + side] - table[t + side, lo] + table[t, lo]
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(border + tops[i]), int(border + lefts[j]), int(side), float(sums[i, j]) / (side * side * channels)


def rule_text(a: str, b: str, level_text: str, named_images: bool, named_levels: bool, scanned: int, of: int, dataset: str,
              crop: int, border: int) -> str:
    """The caption's statement of how the levels, images and crops were chosen."""
    level = f"Levels named by the profile ({level_text})" if named_levels else f"Level: the middle one the table prints ({level_text})"
    window = f"{crop}x{crop} px window (on a {STRIDE} px grid)"
    differ = f"where {a} and {b} differ most (mean absolute difference of their uint8 outputs)"
    if named_images:
        where = f"images named by the profile, in each the {window} {differ}"
    else:
        pool = f"the first {scanned} of the {of}" if scanned < of else f"all {of}"
        where = f"image and crop: of every {window} of {pool} {dataset} images, the one {differ}"
        where += "; the scan is bounded to keep reports cheap" if scanned < of else ""
    return (f"Chosen by a written rule, not by hand. {level}; {where}. The rule selects the largest difference on purpose: "
            "the crop shows where the two disagree most, not a typical region. "
            f"Crops lie inside the metric's crop border ({border} px), so no border is removed from them.")
