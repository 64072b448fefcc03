"""Named datasets read from a data root and verified against sha256 manifests (the registry is
bench/data/datasets.py), the smoke-profile fallback on scikit-image's bundled sample images, and the
training patch sampler."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from bench.common.errors import HyperbenchError, did_you_mean
from bench.data import datasets
from bench.data.checksums import compare_files
from bench.data.datasets import manifest
from bench.data.images import list_images, read_image, rgb_to_luma
from bench.data.verify import check_folder

SKIMAGE_EVAL = ("astronaut", "chelsea", "coffee")
SKIMAGE_TRAIN = ("rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel")


@dataclass(frozen=True)
class Image:
    name: str
    pixels: np.ndarray  # uint8, HxWx3 (rgb) or HxW (luma)


class ImageFile:
    """An image of a large set (DIV2K): its pixels are read from disk each time they are used."""

    def __init__(self, name: str, path: Path, colour: str):
        self.name, self.path, self.colour = name, Path(path), colour

    @property
    def pixels(self) -> np.ndarray:
        return _to_colour(read_image(self.path), self.colour)

    @property
    def size(self) -> tuple[int, int]:
        with PILImage.open(self.path) as im:
            return im.height, im.width


def _height_width(image) -> tuple[int, int]:
    return image.size if isinstance(image, ImageFile) else image.pixels.shape[:2]


def known_datasets() -> list[str]:
    return sorted(set(manifest()) | set(datasets.DATASETS)) + ["skimage-train", "skimage-eval"]


def resolve_data_root(data_root=None) -> Path | None:
    """--data-root wins, then $HYPERBENCH_DATA; None means 'no datasets on this machine'."""
    root = data_root or os.environ.get("HYPERBENCH_DATA")
    if not root:
        return None
    root = Path(root).expanduser()
    if not root.is_dir():
        raise HyperbenchError(f"data root {root} does not exist", "pass --data-root DIR (or set HYPERBENCH_DATA) to the folder holding CBSD68/, LIVE1/, ...")
    return root


def verify_folder(name: str, folder: Path) -> dict:
    """Compare a dataset folder with its manifest (or the checksums recorded at prepare): lists of
    missing, extra and corrupted files."""
    entry = manifest().get(name)
    if entry is not None:
        return compare_files(Path(folder), entry["files"], entry.get("converted"))
    found = check_folder(datasets.get_dataset(name), Path(folder))
    return {k: found[k] for k in ("missing", "extra", "corrupted")}


def _to_colour(img: np.ndarray, colour: str) -> np.ndarray:
    if colour == "luma":
        return rgb_to_luma(img)
    if img.ndim == 2:  # a gray file in an RGB set (Set14's bridge): replicate, as the papers' loaders do
        return np.repeat(img[..., None], 3, axis=2)
    return img


def _skimage_images(names, colour: str) -> list[Image]:
    import skimage.data

    return [Image(n, _to_colour(getattr(skimage.data, n)()[..., :3], colour)) for n in names]


@lru_cache(maxsize=16)
def _load_cached(name: str, root: str, colour: str, verify: bool) -> tuple[Image, ...]:
    spec = datasets.DATASETS.get(name)
    if spec is not None and spec.derived_from:  # sub-images: check the source, cut once, read lazily
        from bench.data.subimages import ensure_subimages

        if verify:
            _load_cached(spec.derived_from, root, colour, True)
        folder = ensure_subimages(Path(root), spec.derived_from)
        return tuple(ImageFile(p.stem, p, colour) for p in list_images(folder))
    folder = Path(root) / name
    if not folder.is_dir():
        raise HyperbenchError(f"dataset folder {folder} is missing", f"put {name} under the data root, or run `hyperbench data prepare {name}`")
    files = list_images(folder)
    if not files:
        raise HyperbenchError(f"dataset folder {folder} holds no images", f"copy the {name} images into it (png/jpg/bmp/tif)")
    if verify:
        report = verify_folder(name, folder)
        if report["missing"] or report["corrupted"]:
            bad = ", ".join(report["corrupted"][:3] + report["missing"][:3])
            raise HyperbenchError(
                f"{name} does not match its checksum manifest: {len(report['missing'])} missing, "
                f"{len(report['corrupted'])} corrupted ({bad})",
                f"re-copy {name} from its source (`hyperbench data prepare {name}`); `hyperbench data verify` lists every file that differs",
            )
        extra = set(report["extra"])
        files = [p for p in files if p.name not in extra]
    if spec is not None and spec.lazy:
        return tuple(ImageFile(p.stem, p, colour) for p in files)
    return tuple(Image(p.stem, _to_colour(read_image(p), colour)) for p in files)


def load_dataset(name: str, data_root=None, colour: str = "rgb", verify: bool = True) -> list[Image]:
    """Images of a named dataset as uint8 arrays in `colour` ('rgb' or 'luma')."""
    if name == "skimage-train":
        return _skimage_images(SKIMAGE_TRAIN, colour)
    if name == "skimage-eval":
        return _skimage_images(SKIMAGE_EVAL, colour)
    if name not in manifest() and name not in datasets.DATASETS:
        raise HyperbenchError(f"unknown dataset {name!r}", did_you_mean(name, known_datasets()))
    root = resolve_data_root(data_root)
    if root is None:
        raise HyperbenchError(f"dataset {name} needs a data root", "pass --data-root DIR or set HYPERBENCH_DATA (the smoke profile runs without one)")
    return list(_load_cached(name, str(root), colour, verify))


class PatchSampler:
    """Random crops with random flips and transposes (the 8 dihedral transforms), as the official loaders."""

    def __init__(self, images: list[Image], crop: int):
        self.images = [im for im in images if min(_height_width(im)) >= crop]
        if not self.images:
            raise HyperbenchError(f"no training image is at least {crop}x{crop}", "lower the crop size in the profile")
        self.crop = crop

    def sample(self, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
        patches = []
        for _ in range(batch):
            img = self.images[rng.integers(len(self.images))].pixels
            top = rng.integers(img.shape[0] - self.crop + 1)
            left = rng.integers(img.shape[1] - self.crop + 1)
            patch = img[top : top + self.crop, left : left + self.crop]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1]
            if rng.random() < 0.5:
                patch = patch.swapaxes(0, 1)
            patches.append(np.ascontiguousarray(patch))
        return patches
