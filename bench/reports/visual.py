"""Visual comparison figures (`fig_visual_<task>`): one row per chosen image and level, the whole clean image with the
crop boxed, then the crop of the clean image, of the degraded input and of each entry's output, each labelled with its
PSNR/SSIM on the crop by the table's metric spec. The outputs are the evaluated ones: each entry's assembled model at the
level evaluation gives it, on the degraded input evaluation reads from its cache. Only the chosen images are forwarded
(and, once per set of trained runs, the images the choosing rule scans: bench.reports.visual_rule)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import textwrap
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bench.common.atomic import atomic_write_text
from bench.common.errors import HyperbenchError, did_you_mean
from bench.data.images import modcrop, to_tensor, to_uint8
from bench.data.input_cache import InputCache
from bench.data.loading import load_dataset
from bench.evaluation import evaluate as ev
from bench.evaluation.inputs import degraded_input
from bench.metrics.quality import Reference
from bench.reports.figures import pyplot, save_figure
from bench.reports.names import PRETTY, level_label
from bench.reports.visual_rule import DEFAULT_CROP, MAX_SCAN, STRIDE, best_window, middle_level, rule_text
from bench.tasks.task import get_task
from bench.training import distributed
from bench.training.profiles import Entry, Profile
from bench.training.runs import RunDir

A, B = "hyperres", "perlevel"  # the pair the rule compares; without the per-level networks, HyperRes against its input
COLUMNS = 6  # panels per figure row; a row of more wraps, so 9 entries (12 panels) keep the same panel and font size
PANEL_IN = 2.0  # inches per panel
FONT = 8  # pt, panel labels and caption: fixed, whatever the number of entries
NAME_CHARS = 28  # an entry's name wraps at this width to stay inside its panel at FONT pt
CACHE_FORMAT = 1  # bump when the rule changes: cached choices are then made again


@dataclass
class Panel:
    name: str  # the entry, "clean", or the degraded input (bench.evaluation.evaluate.INPUT)
    label: str  # what is written above the crop
    pixels: np.ndarray  # the uint8 crop drawn
    psnr: float = math.nan  # on the crop against the clean crop, by the table's metric spec (NaN: the clean crop itself)
    ssim: float = math.nan


@dataclass
class Row:
    image: str
    level: float
    top: int
    left: int
    size: int
    whole: np.ndarray  # the clean image as evaluated (modcropped to 2), drawn with the crop boxed
    panels: list[Panel] = field(default_factory=list)


@dataclass
class Visual:
    task: str
    title: str
    caption: str
    rows: list[Row]


class Source:
    """Inputs and outputs exactly as evaluation makes them: the degraded input from the evaluation input cache (same
    dataset, seed and options, so the same key), and a model at the level evaluate() gives it (a bank: its nearest)."""

    def __init__(self, profile: Profile, paths, task, images):
        tcfg = profile.task_cfg(task.name)
        self.task, self.seed, self.options = task, profile.seed, tcfg["options"]
        self.images = {im.name: im for im in images}
        self.inputs = InputCache(paths.inputs_dir(), tcfg["eval_dataset"], task, images, profile.seed, tcfg["options"])
        self.device = distributed.device()

    def clean(self, image: str) -> np.ndarray:
        return modcrop(self.images[image].pixels, 2)

    def degraded(self, image: str, level: float) -> torch.Tensor:
        im = self.images[image]
        x, _ = self.inputs.get(image, level, partial(degraded_input, self.task, im.pixels, im.name, level, self.seed, self.options))
        return to_tensor(x)

    @torch.no_grad()
    def output(self, model, image: str, level: float) -> tuple[np.ndarray, float]:
        """The uint8 output of the whole image (as evaluated: a crop of it equals the evaluated pixels) and the level given."""
        given = ev.input_level(model, level)
        return ev.restore_levels(model.to(self.device), [self.degraded(image, level)], [given], self.device)[0], given


def choose(profile: Profile, paths, entries: list[Entry], models: dict, source: Source, images) -> tuple[list[tuple], str]:
    """(image, level, top, left, side, score) per figure row and the caption's statement of the rule; the choice is
    cached by the runs it compared, so `tables` does not scan again."""
    task, tcfg = source.task, profile.task_cfg(source.task.name)
    settings = profile.visual.get(task.name) or {"images": None, "levels": None, "crop": DEFAULT_CROP}
    names = [im.name for im in images]
    for name in settings["images"] or []:
        if name not in names:
            raise HyperbenchError(f"profile {profile.name}: visual images names {name!r}, which is not an image of {tcfg['eval_dataset']}",
                                  did_you_mean(name, names))
    levels = settings["levels"] or [middle_level(task.name, tcfg["eval_levels"])]
    scan = settings["images"] or names[:MAX_SCAN]
    by_name = {e.model: e for e in entries}
    a = by_name.get(A, entries[0])
    b = by_name.get(B) if by_name.get(B) is not a else None
    crop, border = settings["crop"], task.metric.crop_border
    key = json.dumps([CACHE_FORMAT, tcfg["eval_dataset"], scan, levels, crop, border, STRIDE, profile.seed, tcfg["options"],
                      [r.run_id for e in (a, b) if e for r in e.runs]], default=str)
    cache = paths.eval_dir() / "visual" / f"{task.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    if cache.exists():
        picks = [tuple(p) for p in json.loads(cache.read_text())]
    else:
        picks = []
        for level in levels:
            found = []
            for name in scan:
                out_a = source.output(models[a.model], name, level)[0]
                out_b = source.output(models[b.model], name, level)[0] if b else to_uint8(source.degraded(name, level))
                found.append((name, level, *best_window(out_a, out_b, crop, border)))
            # every image the profile names; else the one that differs most (the first of equals, in dataset order)
            picks += found if settings["images"] else [max(found, key=lambda p: p[-1])]
        atomic_write_text(cache, json.dumps(picks) + "\n")
    level_text = ", ".join(level_label(task.name, lv) for lv in levels)
    text = rule_text(PRETTY.get(a.model, a.model), PRETTY.get(b.model, b.model) if b else f"its input ({PRETTY[ev.INPUT].lower()})",
                     level_text, bool(settings["images"]), bool(settings["levels"]), len(scan), len(names), tcfg["eval_dataset"], crop, border)
    return picks, text


def visual_rows(profile: Profile, paths, entries: list[Entry], task_name: str, data_root=None) -> Visual | str:
    """The figure's rows for one task, from the trained runs of its entries (the primary training seed of each);
    a string saying why when there is nothing to draw."""
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    shown = [e for e in entries if e.task == task_name and e.primary]
    done = [e for e in shown if e.runs and all(RunDir(paths.runs, r).is_done for r in e.runs)]
    if not done:
        return f"no trained runs of its entries in {paths.runs}"
    try:
        images = load_dataset(tcfg["eval_dataset"], data_root, colour=task.channels)
    except HyperbenchError as exc:  # `tables` on a machine without the evaluation set
        return exc.problem
    source = Source(profile, paths, task, images)
    models, stale = {}, []
    for e in done:
        try:
            models[e.model] = ev.assemble(e, paths.runs)
        except HyperbenchError as exc:  # weights the model code no longer loads: the tables from stored results still get written
            stale.append(f"{e.model} ({exc.problem})")
    trained = [e for e in done if e.model in models]
    if not trained:
        return "no entry's weights load: " + "; ".join(stale)
    picks, rule = choose(profile, paths, trained, models, source, images)
    spec = dataclasses.replace(task.metric, crop_border=0)  # the crop lies inside the border: nothing more to remove
    rows = []
    for image, level, top, left, size, _ in picks:
        clean = source.clean(image)
        window = (slice(top, top + size), slice(left, left + size))
        reference = Reference(clean[window], spec)
        row = Row(image, level, top, left, size, clean, [Panel("clean", "Clean (reference)", clean[window])])
        row.panels.append(_panel(ev.INPUT, PRETTY[ev.INPUT], to_uint8(source.degraded(image, level)), window, reference))
        for e in trained:
            out, given = source.output(models[e.model], image, level)
            elsewhere = f" †{given:g}" if abs(given - level) > 1e-9 else ""
            row.panels.append(_panel(e.model, PRETTY.get(e.model, e.model) + elsewhere, out, window, reference))
        rows.append(row)
    untrained = [e.model for e in shown if e not in done]
    seeds = ", ".join(str(s) for s in sorted({e.seed for e in trained}))
    caption = (f"{rule} Labels: PSNR/SSIM of each crop against the clean crop, by the table's metric spec (`{task.metric.key()}`). "
               f"Networks of training seed {seeds}; degraded inputs as evaluated (seed {profile.seed}). "
               "† n: the entry answered with its network for level n (a per-level bank: its nearest trained level)."
               + (f" Not shown (runs not trained): {', '.join(untrained)}." if untrained else "")
               + (f" Not shown (weights do not load): {'; '.join(stale)}." if stale else ""))
    title = f"Visual comparison — {task.title}, {tcfg['eval_dataset']}, profile {profile.name}"
    return Visual(task_name, title, caption, rows)


def _panel(name: str, label: str, out: np.ndarray, window: tuple, reference: Reference) -> Panel:
    """The crop of a whole output, labelled with its PSNR/SSIM against the clean crop."""
    crop = out[window]
    psnr, ssim = reference.psnr(crop), reference.ssim(crop)
    return Panel(name, panel_label(label, psnr, ssim), crop, psnr, ssim)


def panel_label(name: str, psnr: float, ssim: float) -> str:
    return f"{textwrap.fill(name, NAME_CHARS)}\nPSNR {psnr:.2f} dB, SSIM {ssim:.4f}"


def _show(ax, pixels: np.ndarray, label: str) -> None:
    """An image at its own pixels (no smoothing of the zoomed crop), without ticks, its label above."""
    ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])  # the axes stay on, so the layout check sees their labels
    ax.set_title(label, fontsize=FONT)


def visual_figure(visual: Visual):
    plt = pyplot()
    from matplotlib.patches import Rectangle

    cells = [1 + len(row.panels) for row in visual.rows]
    cols = min(COLUMNS, max(cells))
    heights = [math.ceil(n / cols) for n in cells]
    caption = textwrap.fill(visual.caption, int(cols * PANEL_IN * 72 / (0.55 * FONT)))  # about 0.55 em per character
    line_in = FONT * 1.3 / 72  # one line of text at FONT pt, in inches
    label_lines = [max(p.label.count("\n") + 1 for p in row.panels) for row in visual.rows]  # the tallest label of each row
    height = sum(h * (PANEL_IN + lines * line_in + 0.15) for h, lines in zip(heights, label_lines)) + 0.4 + (caption.count("\n") + 1) * line_in
    fig = plt.figure(figsize=(cols * PANEL_IN, height), layout="constrained")
    axes = fig.subplots(sum(heights), cols, squeeze=False).ravel()
    start = 0
    for row, lines in zip(visual.rows, heights):
        group, start = axes[start : start + lines * cols], start + lines * cols
        _show(group[0], row.whole, f"{row.image}, {level_label(visual.task, row.level)}\n"
              f"{row.size}x{row.size} crop at x={row.left}, y={row.top}")
        for colour, width in (("black", 2.5), ("yellow", 1.2)):  # a yellow box with a dark edge shows on any image
            group[0].add_patch(Rectangle((row.left - 0.5, row.top - 0.5), row.size, row.size, fill=False, edgecolor=colour, lw=width))
        for ax, panel in zip(group[1:], row.panels):
            _show(ax, panel.pixels, panel.label)
        for ax in group[len(row.panels) + 1 :]:
            ax.set_visible(False)
    fig.suptitle(visual.title, fontsize=10)
    fig.supxlabel(caption.replace("`", ""), fontsize=FONT, ha="left", x=0.01, multialignment="left")
    return fig


def write_visual_report(profile: Profile, paths, entries: list[Entry], log=print, data_root=None) -> tuple[list[Path], list[str]]:
    """fig_visual_<task> (PNG, PDF) of the task of `entries`, and its section of the tables' README; when the runs
    or the evaluation images are not here, nothing is drawn and the README says why."""
    task_name = entries[0].task
    visual = visual_rows(profile, paths, entries, task_name, data_root)
    if isinstance(visual, str):
        log(f"visual comparison of {task_name} not drawn: {visual}")
        return [], [f"Visual comparison of {task_name} not drawn: {visual}.", ""]
    base = paths.tables_dir(profile.name) / f"fig_visual_{task_name}"
    files = save_figure(visual_figure(visual), base)
    return files, [f"### {visual.title}", "", f"![visual comparison]({base.name}.png)", "", visual.caption, ""]
