"""Training crops under the two data protocols of the recipes (`data_protocol`), and the loader that
makes them in worker processes while the model trains.

* `fresh` (CFSNet, FFDNet, HINet, the noise estimator): crops drawn with replacement, each degraded as it
  is drawn.
* `fixed` (HyperRes, the per-level networks, AdaFM, CResMD): crops of whole images degraded once
  (bench.data.training_store), the clean and degraded crop at the same position with the same flips,
  each image once per epoch in a seeded order, an epoch being len(images) // batch steps (drop_last).

The batch of step s is a function of (seed, stage, s) alone, so it is the same with 0 or N loader
workers and after a resume in the middle of an epoch.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from bench.common.errors import HyperbenchError
from bench.data.images import to_tensor
from bench.data.loading import PatchSampler
from bench.data.training_store import TrainingStore
from bench.tasks.degradations import seeded_rng
from bench.tasks.task import get_task

DATA_PROTOCOLS = ("fresh", "fixed")
WORKERS_ENV = "HYPERBENCH_WORKERS"


@dataclass
class Objective:
    """A training objective in two parts: `batches(rng, step, batch_size)` makes the step's CPU tensors (in
    a loader worker when there are workers) and `loss(batch)` computes the loss on the training device."""

    batches: Callable
    loss: Callable


def degraded_batch(patches, task, levels, rng, options):
    """Clean uint8 crops -> (inputs, targets, levels) tensors for all levels, level-major order."""
    inputs, targets, lv = [], [], []
    for level in levels:
        for p in patches:
            inputs.append(to_tensor(task.degrade(p, level, rng, options)))
            targets.append(to_tensor(p))
            lv.append(level)
    return torch.cat(inputs), torch.cat(targets), torch.tensor(lv, dtype=torch.float32)


def per_patch_batch(patches, task, levels, rng, options):
    """Degrade patch i at levels[i] -> (inputs, targets, levels) tensors."""
    parts = [degraded_batch([p], task, [lv], rng, options) for p, lv in zip(patches, levels)]
    return tuple(torch.cat(t) for t in zip(*parts))


def _stack(arrays: list[np.ndarray], flips) -> torch.Tensor:
    """HxW[xC] crops -> NxCxHxW, augmented: each crop's (h-flip, v-flip, transpose), applied per group of
    crops with the same flips. 8-bit crops stay 8-bit: a quarter of the bytes to move to the device,
    converted there (as_float)."""
    arr = np.stack(arrays)
    if arr.ndim == 3:
        arr = arr[..., None]
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    t = t if t.dtype == torch.uint8 else t.to(torch.float32)
    codes = np.asarray(flips, dtype=int) @ np.array([1, 2, 4])
    for code in np.unique(codes):
        idx = torch.from_numpy(np.flatnonzero(codes == code))
        x = t[idx]
        dims = [d for d, on in ((-1, code & 1), (-2, code & 2)) if on]  # width flip, then height flip, then transpose
        x = x.flip(dims) if dims else x
        t[idx] = x.transpose(-1, -2) if code & 4 else x  # square crops: same shape
    return t


class FreshCrops(PatchSampler):
    """Crops drawn with replacement and degraded as they are drawn (the suite's original data path)."""

    def __init__(self, images, crop: int, task, options: dict):
        super().__init__(images, crop)
        self.task, self.options = task, options

    def level_batches(self, levels) -> Callable:
        """make(rng, step, batch) -> (inputs, targets, levels): every crop at every level, level-major."""
        levels = [float(v) for v in levels]
        return lambda rng, step, batch: degraded_batch(self.sample(batch, rng), self.task, levels, rng, self.options)

    def drawn_batches(self, draw: Callable, description: str) -> Callable:
        """make(rng, step, batch) with one level per crop, drawn by draw(rng, n) for each batch."""
        def make(rng, step, batch):
            patches = self.sample(batch, rng)
            return per_patch_batch(patches, self.task, draw(rng, len(patches)), rng, self.options)

        return make


class FixedCrops(PatchSampler):
    """Crops of a training store: whole images degraded once, each image once per epoch."""

    def __init__(self, images, crop: int, task, options: dict, seed: int, runs_dir, dataset: str):
        super().__init__(images, crop)  # keeps the images of at least crop x crop
        self.store = TrainingStore(runs_dir, dataset, task, self.images, seed, options, processes=loader_workers())
        self.seed = seed

    def order(self, step: int, batch: int) -> np.ndarray:
        """The images of a step: a seeded permutation per epoch, `batch` at a time; an epoch is
        n // batch steps (the remainder dropped); with fewer images than the batch, epochs are chained."""
        n = len(self.images)
        if n >= batch:
            epoch, k = divmod(step, n // batch)
            return seeded_rng("epoch", self.seed, epoch).permutation(n)[k * batch : (k + 1) * batch]
        positions = np.arange(step * batch, (step + 1) * batch)
        return np.array([seeded_rng("epoch", self.seed, p // n).permutation(n)[p % n] for p in positions])

    def _window(self, rng, i: int):
        h, w = self.store.shapes[i][:2]
        top, left = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        return (slice(top, top + self.crop), slice(left, left + self.crop)), rng.random(3) < 0.5

    def _picked(self, rng, step: int, batch: int) -> list:
        """(image, window, flips) of every crop of a step."""
        return [(i, *self._window(rng, i)) for i in self.order(step, batch)]

    def _crops(self, flat, picked) -> torch.Tensor:
        return _stack([self.store.image(flat, i)[window] for i, window, _ in picked], [flips for _, _, flips in picked])

    def _mapped(self, index: dict, names: list[str]) -> Callable[[], dict]:
        """The store files, memory-mapped on first use in the process that uses them (a loader worker)."""
        maps: dict = {}

        def get() -> dict:
            if not maps:
                maps.update({name: self.store.open(name, index) for name in names})
            return maps

        return get

    def level_batches(self, levels) -> Callable:
        """make(rng, step, batch) -> (inputs, targets, levels): every crop at every level, level-major."""
        levels = [float(v) for v in levels]
        names = [f"level-{v:g}.bin" for v in levels]
        maps = self._mapped(self.store.ensure(levels), ["clean.u8", *names])

        def make(rng, step, batch):
            picked = self._picked(rng, step, batch)
            clean = self._crops(maps()["clean.u8"], picked)
            inputs = torch.cat([self._crops(maps()[name], picked) for name in names])
            lv = torch.tensor([v for v in levels for _ in picked], dtype=torch.float32)
            return inputs, clean.repeat(len(levels), 1, 1, 1), lv

        return make

    def drawn_batches(self, draw: Callable, description: str) -> Callable:
        """One stored degradation per image at a level drawn once per image (CResMD's official data)."""
        index = self.store.ensure(drawn=(description, lambda rng: draw(rng, 1)[0]))
        name = next(n for n, rec in index["files"].items() if rec.get("drawn") == description)
        stored_levels, maps = index["files"][name]["levels"], self._mapped(index, ["clean.u8", name])

        def make(rng, step, batch):
            picked = self._picked(rng, step, batch)
            lv = torch.tensor([stored_levels[i] for i, _, _ in picked], dtype=torch.float32)
            return self._crops(maps()[name], picked), self._crops(maps()["clean.u8"], picked), lv

        return make


def training_crops(run: dict, images, runs_dir):
    """The crops a run trains on: its `data_protocol` (fresh unless the recipe or profile says fixed)."""
    task, crop, options = get_task(run["task"]), run["train"]["crop"], run["options"]
    protocol = run["train"].get("data_protocol", "fresh")
    if protocol not in DATA_PROTOCOLS:
        raise HyperbenchError(f"unknown data protocol {protocol!r} in run {run.get('model')}", f"known: {', '.join(DATA_PROTOCOLS)}")
    if protocol == "fixed":
        return FixedCrops(images, crop, task, options, run["seed"], runs_dir, run["train_dataset"])
    return FreshCrops(images, crop, task, options)


def loader_workers() -> int:
    """$HYPERBENCH_WORKERS, else 0 on a CPU-only machine (the workers would take the cores the model
    trains on) and min(8, CPUs - 1) with a GPU."""
    if os.environ.get(WORKERS_ENV):
        try:
            workers = int(os.environ[WORKERS_ENV])
        except ValueError:
            workers = -1
        if workers < 0:
            raise HyperbenchError(f"{WORKERS_ENV}={os.environ[WORKERS_ENV]!r} is not a whole number >= 0", "set it to e.g. 2 (0: make batches in the training process)")
        return workers
    return min(8, (os.cpu_count() or 2) - 1) if torch.cuda.is_available() else 0


class _StepBatches(torch.utils.data.Dataset):
    def __init__(self, make: Callable, batch: int, seed: int, stage: str, start: int, steps: int):
        self.make, self.batch, self.seed, self.stage, self.start, self.steps = make, batch, seed, stage, start, steps

    def __len__(self) -> int:
        return self.steps - self.start

    def __getitem__(self, i: int):
        step = self.start + i
        return self.make(seeded_rng(self.seed, self.stage, step), step, self.batch)


def step_batches(make: Callable, batch: int, seed: int, stage: str, start: int, steps: int,
                 workers: int = 0, pin_memory: bool = False) -> Iterator:
    """The batches of steps start..steps-1 in order; with workers, made ahead in worker processes
    (forked: the store's memory maps and the images are shared, not copied)."""
    dataset = _StepBatches(make, batch, seed, stage, start, steps)
    if workers == 0 or "fork" not in multiprocessing.get_all_start_methods():
        return (dataset[i] for i in range(len(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                                         prefetch_factor=4, multiprocessing_context="fork")
    return iter(loader)
