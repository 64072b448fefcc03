"""Checksums of image files and pixel arrays, the comparison of a folder with expected checksums,
and the checksum record a prepared folder carries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.images import list_images

RECORD_NAME = ".hyperbench-sha256.json"  # checksums recorded at prepare, inside the dataset folder


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def array_sha256(arr: np.ndarray) -> str:
    """Checksum of pixel values (dtype, shape and bytes), independent of how a file encodes them."""
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}|{'x'.join(map(str, arr.shape))}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def pixels_sha256(path: Path) -> str:
    with Image.open(path) as im:
        return array_sha256(np.asarray(im))


def compare_files(folder: Path, expected: dict, converted: dict | None = None) -> dict:
    """Missing, extra and corrupted image files of `folder` against {name: sha256}. A file published
    as BMP and stored as PNG passes when its decoded pixels match (PNG encoders differ byte-wise)."""
    converted = converted or {}
    present = {p.name: p for p in list_images(folder)}
    corrupted = []
    for name in sorted(set(expected) & set(present)):
        if sha256_file(present[name]) == expected[name]:
            continue
        pixels = converted.get(name, {}).get("pixels_sha256")
        if pixels is None or _pixels_or_none(present[name]) != pixels:
            corrupted.append(name)
    return {"missing": sorted(set(expected) - set(present)), "extra": sorted(set(present) - set(expected)), "corrupted": corrupted}


def _pixels_or_none(path: Path) -> str | None:
    try:
        return pixels_sha256(path)
    except OSError:
        return None


def read_record(folder: Path) -> dict | None:
    path = Path(folder) / RECORD_NAME
    return json.loads(path.read_text()) if path.is_file() else None
