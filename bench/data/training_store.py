"""The `fixed` training data of the official HyperRes, AdaFM and CResMD code: each whole training image
degraded once per level (noise seeded by run seed, image and level), stored as raw arrays and
memory-mapped, so every epoch sees the same degraded pixels, crops keep the whole image's JPEG block
grid and SR sampling, and no worker decodes an image file.

A store is a folder per (training set and its clean pixels, task, degradation options, seed) in
`training-data/` beside the runs folder (results/training-data for the default results/runs, next to the
evaluation inputs in results/per_image/inputs; `hyperbench data cache` lists and removes them):

  clean.u8             the clean images in the task's colour, one after the other
  level-<L>.bin        every image degraded at level L (uint8, or float32 where the input is not k/255)
  drawn-<hash>.bin     one degraded copy per image at a level drawn once per image (CResMD's data)
  index.json           shapes, offsets, dtypes, each file's sha256 and the key

Files are written under a temp name and renamed, so a killed build leaves nothing half-written; a file
whose size or sha256 does not match its index is rebuilt. Size: the clean set once plus one copy per
level (CBSD432: 200 MB per colour level).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common.atomic import atomic_write_text, replacing
from bench.common.errors import HyperbenchError
from bench.common.locks import file_lock
from bench.common.progress import progress_bar
from bench.data.checksums import array_sha256, sha256_file
from bench.data.input_cache import set_sha256, storable
from bench.tasks.degradations import seeded_rng

FORMAT = 1  # bump when the way stored training inputs are made changes
FOLDER = "training-data"


def store_dir(runs_dir) -> Path:
    """Where the stores of the runs in `runs_dir` live: training-data/ beside it (not inside: a runs
    folder holds only run folders)."""
    return Path(runs_dir).absolute().parent / FOLDER


_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime) -> sha256 of the files this process has checked


def degrade_whole(task, pixels: np.ndarray, name: str, level: float, seed: int, options: dict) -> np.ndarray:
    """One training image degraded as a whole (its stored form: uint8 where exact, else float32)."""
    return storable(task.degrade(pixels, level, seeded_rng("train", seed, name, f"{level:g}"), options))


_BUILDING: TrainingStore | None = None


def _degrade_one(item: tuple[int, float]) -> np.ndarray:
    store, (i, level) = _BUILDING, item
    image = store.images[i]
    return degrade_whole(store.task, image.pixels, image.name, level, store.seed, store.options)


def _content_sha256(image) -> str:
    """An image's content: its file's sha256 for a lazily read image (no decoding), else its pixels'."""
    return sha256_file(image.path) if hasattr(image, "path") else array_sha256(image.pixels)


def _shape(image, channels: str) -> tuple[int, ...]:
    if hasattr(image, "path"):
        return (*image.size, 3) if channels == "rgb" else tuple(image.size)
    return tuple(image.pixels.shape)


class TrainingStore:
    """The degraded copies of one training set for one task, options and seed."""

    def __init__(self, runs_dir: Path, dataset: str, task, images, seed: int, options: dict, processes: int = 1):
        self.task, self.images, self.seed, self.options = task, list(images), seed, dict(options)
        self.processes = processes if "fork" in multiprocessing.get_all_start_methods() else 1
        clean = {im.name: _content_sha256(im) for im in self.images}
        self.key = {"format": FORMAT, "dataset": dataset, "clean": set_sha256(clean), "task": task.name, "revision": task.revision,
                    "channels": task.channels, "options": self.options, "seed": seed}
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.folder = store_dir(runs_dir) / f"{dataset}-{task.name}-{digest}"
        self.shapes = [_shape(im, task.channels) for im in self.images]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.offsets = [0, *np.cumsum(sizes).tolist()]  # element offsets of image i in every file

    # -- the index -----------------------------------------------------------------------------
    def _index(self) -> dict:
        path = self.folder / "index.json"
        if path.exists():
            return json.loads(path.read_text())
        return {"key": self.key, "images": [im.name for im in self.images], "shapes": self.shapes, "files": {}}

    def _valid(self, index: dict, name: str, check: bool) -> bool:
        record, path = index["files"].get(name), self.folder / name
        if record is None or not path.exists():
            return False
        stat = path.stat()
        if stat.st_size != record["bytes"]:
            return False
        if not check:
            return True
        seen = (str(path), stat.st_size, stat.st_mtime_ns)
        if _VERIFIED.get(seen) != record["sha256"]:  # hashed once per process, not once per run
            _VERIFIED[seen] = sha256_file(path)
        return _VERIFIED[seen] == record["sha256"]

    def _write(self, index: dict, name: str, arrays, label: str, extra: dict | None = None) -> None:
        path, dtype = self.folder / name, None
        with replacing(path) as tmp, open(tmp, "wb") as out, progress_bar(label, total=len(self.images), show_loss=False) as bar:
            for i, array in enumerate(arrays):
                dtype = dtype or array.dtype.str
                if array.dtype.str != dtype:
                    raise HyperbenchError(f"training store {self.folder.name}: {name} mixes uint8 and float inputs",
                                          "use noise options that quantise (clip true, quantise floor/round) or the fresh data protocol")
                out.write(np.ascontiguousarray(array).tobytes())
                bar.update(i + 1)
        index["files"][name] = {"dtype": dtype, "bytes": path.stat().st_size, "sha256": sha256_file(path), **(extra or {})}
        atomic_write_text(self.folder / "index.json", json.dumps(index, indent=1, default=str) + "\n")

    # -- building ------------------------------------------------------------------------------
    def _degraded(self, levels: list[float]):
        """Image i degraded at levels[i], in image order; spread over processes where there are spare cores
        (each image's degradation depends on nothing but its own seed, so the bytes are the same)."""
        global _BUILDING
        if self.processes <= 1:
            yield from (degrade_whole(self.task, im.pixels, im.name, v, self.seed, self.options) for im, v in zip(self.images, levels))
            return
        _BUILDING = self  # inherited by the forked processes, not pickled
        with multiprocessing.get_context("fork").Pool(self.processes) as pool:
            yield from pool.imap(_degrade_one, list(enumerate(levels)), chunksize=4)

    def ensure(self, levels=(), drawn: tuple[str, Callable] | None = None, check: bool = True) -> dict:
        """Build what is missing or damaged: the clean file, one file per level in `levels`, and with
        `drawn` = (description, draw(rng) -> level) one file of per-image drawn levels. Returns the index."""
        with file_lock(self.folder / ".lock"):  # one builder at a time (runs of a grid share stores)
            index = self._index()
            if not self._valid(index, "clean.u8", check):
                self._write(index, "clean.u8", (im.pixels for im in self.images), f"store clean {self.key['dataset']}")
            for level in levels:
                name = f"level-{level:g}.bin"
                if not self._valid(index, name, check):
                    self._write(index, name, self._degraded([level] * len(self.images)), f"store {self.task.name} {level:g}")
            if drawn is not None:
                description, draw = drawn
                name = f"drawn-{hashlib.sha256(description.encode()).hexdigest()[:12]}.bin"
                if not self._valid(index, name, check):
                    lv = [float(draw(seeded_rng("train-level", self.seed, im.name))) for im in self.images]
                    self._write(index, name, self._degraded(lv), f"store {self.task.name} drawn",
                                {"levels": lv, "drawn": description})
            return index

    def open(self, name: str, index: dict) -> np.ndarray:
        """A store file memory-mapped read-only (viewed as a plain array: slicing a memmap subclass costs more than the copy)."""
        record = index["files"][name]
        return np.memmap(self.folder / name, dtype=np.dtype(record["dtype"]), mode="r").view(np.ndarray)

    def image(self, flat: np.ndarray, i: int) -> np.ndarray:
        """Image i of a store file (a view into the memory map)."""
        return flat[self.offsets[i] : self.offsets[i + 1]].reshape(self.shapes[i])


def list_stores(runs_dir: Path) -> list[dict]:
    """Every store under a runs folder: its folder, key, files and size on disk."""
    found = []
    for index_file in sorted(store_dir(runs_dir).glob("*/index.json")):
        index = json.loads(index_file.read_text())
        size = sum(p.stat().st_size for p in index_file.parent.iterdir() if p.is_file())
        found.append({"folder": index_file.parent, "key": index["key"], "files": sorted(index["files"]), "bytes": size})
    return found


def remove_stores(runs_dir: Path, names=None) -> list[Path]:
    """Remove the stores named (folder names), or all of them; returns what was removed."""
    root = store_dir(runs_dir)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if names:
        unknown = sorted(set(names) - {p.name for p in folders})
        if unknown:
            raise HyperbenchError(f"no training store {', '.join(unknown)} under {root}", "`hyperbench data cache list` names them")
        folders = [p for p in folders if p.name in names]
    for folder in folders:
        shutil.rmtree(folder)
    return folders
