"""Deterministic degradations: AWGN, JPEG (Pillow) and bicubic SR input.

Each takes a clean uint8 image and returns the network input as float32 in [0, 1] (same size; SR
inputs are pre-upsampled as in the official code). Randomness comes from a numpy Generator the
caller passes in, so evaluation noise can be seeded from (image, level, seed).
"""

import hashlib
import io

import numpy as np
from PIL import Image

from bench.tasks.resize import bicubic_degrade

QUANTISE = ("none", "round", "floor")
SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def seeded_rng(*parts) -> np.random.Generator:
    """A Generator seeded from a stable hash of its parts (e.g. image name, level, seed)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def add_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator, clip: bool = True, quantise: str = "floor") -> np.ndarray:
    """x/255 + N(0, sigma/255); optionally clip to [0,1]; quantise to 8 bits by floor (official
    HyperRes scripts: a -0.5 DN bias), round (MATLAB im2uint8) or not at all."""
    if quantise not in QUANTISE:
        raise ValueError(f"noise quantise must be one of {QUANTISE}, got {quantise!r}")
    if quantise != "none" and not clip:
        raise ValueError("quantising noisy images to 8 bits requires clip=True")
    x = clean.astype(np.float64) / 255.0 + rng.standard_normal(clean.shape) * (sigma / 255.0)
    if clip:
        x = np.clip(x, 0.0, 1.0)
    if quantise == "floor":
        x = np.floor(x * 255.0) / 255.0
    elif quantise == "round":
        x = np.round(x * 255.0) / 255.0
    return x.astype(np.float32)


def jpeg(clean: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Encode and decode with Pillow (libjpeg-turbo) at an explicit quality and chroma subsampling."""
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"JPEG subsampling must be one of {sorted(SUBSAMPLING)}, got {subsampling!r}")
    buf = io.BytesIO()
    Image.fromarray(clean).save(buf, format="JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling])
    buf.seek(0)
    with Image.open(buf) as im:
        out = np.asarray(im, dtype=np.uint8)
    return out.astype(np.float32) / 255.0


def sr_input(clean: np.ndarray, scale: float, method: str = "opencv") -> np.ndarray:
    """Bicubic down by `scale` then back up to the original size (8-bit after each step)."""
    return bicubic_degrade(clean, scale, method=method).astype(np.float32) / 255.0
