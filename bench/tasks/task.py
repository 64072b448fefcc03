"""The three restoration tasks: level units and ranges, the paper's level sets, data, degradation
and metric conventions. Degradation options are data (a dict in the profile), never code."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.common.errors import HyperbenchError, did_you_mean
from bench.metrics.quality import MetricSpec
from bench.tasks import degradations


def _steps(lo, hi, step):
    return tuple(float(v) for v in np.arange(lo, hi + step / 2, step))


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    unit: str
    valid_range: tuple[float, float]
    integer_levels: bool
    channels: str  # "rgb" or "luma": the colour the networks see
    metric: MetricSpec
    # The paper's level sets (see paper_tables/published/README.md for how sure each is).
    paper_train_levels: tuple[float, ...]
    paper_bank_levels: tuple[float, ...]
    paper_eval_levels: tuple[float, ...]
    table_levels: tuple[float, ...]
    paper_table: str
    eval_dataset: str
    paper_train_dataset: str
    default_options: dict = field(default_factory=dict)
    # Bump when a change to the code that makes the task's images (degradation, colour conversion) changes
    # its training inputs: it enters the run config (when > 0), so runs trained on the old inputs are not
    # reused, and the keys of the training-data store and the evaluation and tuning files. Other tasks
    # keep their run ids.
    # sr 1: the OpenCV resizer maps the down step with exactly the scale, as cv2.resize(fx=1/s).
    # dejpeg 1: the luma images are OpenCV's fixed-point RGB2GRAY bit for bit (were 1 off on some pixels).
    revision: int = 0

    @property
    def in_channels(self) -> int:
        return 3 if self.channels == "rgb" else 1

    def check_level(self, level, label: str | None = None, integer: bool | None = None) -> float:
        """A level in range; `integer` defaults to the task's rule (a model's input level may be fractional)."""
        label = label or f"{self.name} level"
        integer = self.integer_levels if integer is None else integer
        lo, hi = self.valid_range
        try:
            value = float(level)
        except (TypeError, ValueError):
            raise HyperbenchError(f"{label} {level!r} is not a number", f"give a {self.unit}") from None
        if not (lo <= value <= hi) or (integer and value != int(value)):
            kind = "an integer " if integer else ""
            raise HyperbenchError(
                f"{label} {level!r} is outside the valid range", f"use {kind}{self.unit} in [{lo:g}, {hi:g}]"
            )
        return value

    def options(self, overrides: dict | None = None) -> dict:
        """The task's degradation options with `overrides`; names and values are checked (values by one
        degradation of a small probe image), so a bad option fails before any work starts."""
        opts = dict(self.default_options)
        for key, value in (overrides or {}).items():
            if key not in opts:
                raise HyperbenchError(f"unknown {self.name} degradation option {key!r}", did_you_mean(key, opts))
            opts[key] = value
        self.check_options(opts)
        return opts

    def check_options(self, options: dict, level: float | None = None) -> None:
        probe = np.full((16, 16, 3) if self.channels == "rgb" else (16, 16), 128, np.uint8)
        try:
            self.degrade(probe, self.valid_range[0] + 1 if level is None else level, np.random.default_rng(0), options)
        except (ValueError, KeyError, TypeError) as exc:
            raise HyperbenchError(f"{self.name} degradation options {options} are not valid: {exc}", f"fix options of task {self.name} in the profile") from None

    def degrade(self, clean: np.ndarray, level: float, rng: np.random.Generator, options: dict) -> np.ndarray:
        """Clean uint8 image (already in the task's colour) -> float32 network input in [0, 1]."""
        if self.name == "denoise":
            return degradations.add_noise(clean, level, rng, clip=options["clip"], quantise=options["quantise"])
        if self.name == "dejpeg":
            return degradations.jpeg(clean, int(level), subsampling=options["subsampling"])
        return degradations.sr_input(clean, level, method=options["resize"])


TASKS = {
    "denoise": Task(
        name="denoise", title="Denoising (AWGN)", unit="noise sigma on 0-255", valid_range=(0, 255),
        integer_levels=False, channels="rgb", metric=MetricSpec("rgb", 0),
        paper_train_levels=(15, 35, 55, 75), paper_bank_levels=_steps(5, 105, 10),
        paper_eval_levels=_steps(5, 110, 5), table_levels=(5, 25, 45, 65, 85), paper_table="Table 2",
        eval_dataset="CBSD68", paper_train_dataset="DIV2K",
        default_options={"clip": True, "quantise": "floor"},
    ),
    "dejpeg": Task(
        name="dejpeg", title="JPEG artefact removal (luma)", unit="JPEG quality 1-100", valid_range=(1, 100),
        integer_levels=True, channels="luma", metric=MetricSpec("gray", 0),
        paper_train_levels=(10, 30, 50, 80), paper_bank_levels=_steps(10, 80, 10),
        paper_eval_levels=_steps(10, 80, 10), table_levels=(10, 30, 50, 70, 80), paper_table="Table 1",
        eval_dataset="LIVE1", paper_train_dataset="DIV2K",
        default_options={"subsampling": "4:2:0"}, revision=1,
    ),
    "sr": Task(
        name="sr", title="Super-resolution (bicubic, pre-upsampled input)", unit="SR scale factor", valid_range=(1, 8),
        integer_levels=False, channels="rgb", metric=MetricSpec("y", 0, round_y=True),  # official HyperRes: Y rounded
        paper_train_levels=(2, 3, 4, 5), paper_bank_levels=(2, 3, 4, 5, 6),
        paper_eval_levels=(2, 3, 4, 5, 6), table_levels=(2, 3, 4, 5, 6), paper_table="Table 3",
        eval_dataset="Set5", paper_train_dataset="DIV2K",
        default_options={"resize": "opencv"}, revision=1,
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise HyperbenchError(f"unknown task {name!r}", did_you_mean(name, TASKS))
    return TASKS[name]
