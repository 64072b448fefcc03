"""Degraded evaluation inputs, made once and stored losslessly, with a content checksum for each.

A folder per (dataset and its clean pixels, task, degradation options, seed) holds <level>/<image>.png
for inputs that are exactly k/255 (8-bit noise, JPEG, bicubic) and <level>/<image>.npy for float
inputs (noise with quantise 'none'). Reading one back gives the very array that was made, so results
are identical with and without the cache. The checksum of an input is array_sha256 of its stored
form (uint8 or float32 pixels), whatever encoder wrote the file: decode a cached file, hash it, and it
matches the input_sha256 of the per-image results.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common.atomic import atomic_write_bytes, atomic_write_text
from bench.data.checksums import array_sha256

FORMAT = 2  # bump when the way inputs are made or stored changes (2: whole image degraded, then modcropped)


def storable(x: np.ndarray) -> np.ndarray:
    """uint8 when the float input is exactly k/255 everywhere (then it round-trips bit for bit), else float32."""
    x = np.asarray(x, dtype=np.float32)
    k = np.rint(x.astype(np.float64) * 255.0)
    if k.size and k.min() >= 0 and k.max() <= 255:
        u = k.astype(np.uint8)
        if np.array_equal(u.astype(np.float32) / 255.0, x):
            return u
    return x


def network_input(stored: np.ndarray) -> np.ndarray:
    """The float32 [0, 1] array the networks see, from its stored form."""
    return stored.astype(np.float32) / 255.0 if stored.dtype == np.uint8 else stored.astype(np.float32)


def input_sha256(x: np.ndarray) -> str:
    return array_sha256(storable(x))


def set_sha256(digests: dict) -> str:
    """One checksum for a set of inputs: {image name: input_sha256} in name order."""
    lines = sorted(f"{name} {digest}\n" for name, digest in digests.items())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


class InputCache:
    """Inputs of one dataset / task / options / seed; root None keeps nothing (checksums only)."""

    def __init__(self, root: Path | None, dataset: str, task, images, seed: int, options: dict):
        self.folder = None
        if root is None:
            return
        clean = {im.name: array_sha256(im.pixels) for im in images}  # whole images: their inputs depend on every pixel
        key = {"format": FORMAT, "dataset": dataset, "clean": set_sha256(clean), "task": task.name,
               "channels": task.channels, "options": options, "seed": seed, "modcrop": 2}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.folder = Path(root) / f"{dataset}-{task.name}-{digest}"
        if not (self.folder / "key.json").exists():
            atomic_write_text(self.folder / "key.json", json.dumps(key, indent=1, sort_keys=True, default=str) + "\n")

    def _paths(self, image: str, level: float) -> tuple[Path, Path]:
        base = self.folder / f"{level:g}" / image
        return base.with_name(image + ".png"), base.with_name(image + ".npy")

    def get(self, image: str, level: float, make: Callable[[], np.ndarray]) -> tuple[np.ndarray, str]:
        """(network input, its checksum): read from the cache, or made by `make()` and stored."""
        if self.folder is None:
            x = np.asarray(make(), dtype=np.float32)
            return x, input_sha256(x)
        stored = self._read(image, level)
        if stored is None:
            stored = storable(make())
            self._write(image, level, stored)
        return network_input(stored), array_sha256(stored)

    def _read(self, image: str, level: float) -> np.ndarray | None:
        png, npy = self._paths(image, level)
        try:
            if png.exists():
                with Image.open(png) as im:
                    return np.asarray(im, dtype=np.uint8).copy()
            if npy.exists():
                return np.load(npy, allow_pickle=False)
        except (OSError, ValueError):  # a damaged cache file is made again
            return None
        return None

    def _write(self, image: str, level: float, stored: np.ndarray) -> None:
        png, npy = self._paths(image, level)
        buf = io.BytesIO()
        if stored.dtype == np.uint8:
            Image.fromarray(stored).save(buf, format="PNG", compress_level=1)
            atomic_write_bytes(png, buf.getvalue())
        else:
            np.save(buf, stored, allow_pickle=False)
            atomic_write_bytes(npy, buf.getvalue())
