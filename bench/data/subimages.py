"""DIV2K sub-images, cut as the official HyperRes (scripts/sub_pop.py) and AdaFM
(codes/scripts/extract_subimgs_single.py) scripts cut them: 480x480 crops every 240 pixels, plus a
crop flush with the bottom / right border when more than 48 pixels would otherwise be left out;
named <stem>_s<NNN>.png, numbered row by row from 1.

The sub-images live in <root>/DIV2K-sub/<key>/, where the key hashes the source files' checksums
and the cutting parameters: a rerun with the same inputs finds the folder and skips the work."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common.errors import HyperbenchError
from bench.common.progress import progress_bar
from bench.data.checksums import RECORD_NAME, read_record, sha256_file
from bench.data.images import list_images, read_image

NAME, SOURCE = "DIV2K-sub", "DIV2K_train_HR"
CROP, STEP, THRESHOLD = 480, 240, 48
FORMAT = 1  # bump when the output of the cutting changes


def positions(length: int, crop: int = CROP, step: int = STEP, threshold: int = THRESHOLD) -> list[int]:
    """Top (or left) offsets of the crops along one side; none when the side is shorter than a crop."""
    if length < crop:
        return []
    starts = list(range(0, length - crop + 1, step))
    if length - (starts[-1] + crop) > threshold:
        starts.append(length - crop)
    return starts


def cut(img: np.ndarray, crop: int = CROP, step: int = STEP, threshold: int = THRESHOLD) -> list[np.ndarray]:
    """The sub-images of one image, row by row (the order of the _sNNN numbering)."""
    h, w = img.shape[:2]
    return [img[top : top + crop, left : left + crop] for top in positions(h, crop, step, threshold)
            for left in positions(w, crop, step, threshold)]


def cache_key(source_sums: dict, crop: int, step: int, threshold: int) -> str:
    payload = {"format": FORMAT, "files": source_sums, "crop": crop, "step": step, "threshold": threshold}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _source_sums(folder: Path) -> dict:
    """Checksums of the source images: those recorded at prepare when present, else computed now."""
    record = read_record(folder)
    names = [p.name for p in list_images(folder)]
    if record and set(record["files"]) == set(names):
        return record["files"]
    return {p.name: sha256_file(p) for p in list_images(folder)}


def ensure_subimages(root: Path, source: str = SOURCE, crop: int = CROP, step: int = STEP, threshold: int = THRESHOLD,
                     log=print) -> Path:
    """Folder of the sub-images of <root>/<source>, cutting them first if this key has not been cut yet."""
    src = Path(root) / source
    files = list_images(src)
    if not files:
        raise HyperbenchError(f"{src} holds no images to cut into sub-images", f"run `hyperbench data prepare {source}` first")
    key = cache_key(_source_sums(src), crop, step, threshold)
    parent = Path(root) / NAME
    dest = parent / key
    if dest.is_dir():  # complete by construction: it is renamed into place only when finished
        return dest
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{key}.tmp-"))
    sums, skipped = {}, []
    try:
        with progress_bar(f"cut {source} into {crop}x{crop} sub-images", total=len(files), show_loss=False) as bar:
            for i, path in enumerate(files, 1):
                pieces = cut(read_image(path), crop, step, threshold)
                if not pieces:
                    skipped.append(path.name)
                for index, piece in enumerate(pieces, 1):
                    buf = io.BytesIO()
                    Image.fromarray(np.ascontiguousarray(piece)).save(buf, format="PNG", compress_level=1)  # lossless; fast to read back
                    name = f"{path.stem}_s{index:03d}.png"
                    (tmp / name).write_bytes(buf.getvalue())
                    sums[name] = hashlib.sha256(buf.getvalue()).hexdigest()
                bar.update(i)
        record = {"dataset": NAME, "source": source, "crop": crop, "step": step, "threshold": threshold,
                  "format": FORMAT, "skipped_smaller_than_crop": skipped, "files": sums}
        (tmp / RECORD_NAME).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        try:
            os.rename(tmp, dest)
        except OSError:  # another process finished the same key first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"{NAME}: {len(sums)} sub-images of {len(files)} images in {dest}" + (f" ({len(skipped)} smaller than {crop} skipped)" if skipped else ""))
    return dest
