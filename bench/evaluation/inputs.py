"""Evaluation inputs: how the degraded input of an image at a level is made (the same for every entry,
every evaluation, the tuning studies and `hyperbench degrade`), and writing them out as image files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from bench.common.atomic import atomic_write_bytes
from bench.common.errors import HyperbenchError
from bench.data.images import modcrop
from bench.data.input_cache import storable
from bench.tasks.degradations import seeded_rng


def degraded_input(task, pixels, image_name: str, level: float, seed: int, options: dict) -> np.ndarray:
    """The network input for one image and level: the whole image degraded, then modcropped to 2, in that
    order as the official HyperRes scripts (scripts/generate_LR_*.py degrade files, the loader modcrops);
    the clean reference is modcrop(pixels, 2)."""
    return modcrop(task.degrade(pixels, level, seeded_rng(image_name, f"{level:g}", seed), options), 2)



def write_inputs(task, images, level: float, seed: int, options: dict, out_dir: Path) -> list[Path]:
    """Each image's evaluation input at `level` as an 8-bit PNG named like the clean image (`<name>.png`)
    in `out_dir`, each file written whole (temp file, then rename)."""
    out_dir = Path(out_dir)
    written = []
    for image in images:
        stored = storable(degraded_input(task, image.pixels, image.name, level, seed, options))
        if stored.dtype != np.uint8:
            raise HyperbenchError(
                f"the {task.name} inputs at level {level:g} are not 8-bit images (options {options}), so a PNG cannot hold them exactly",
                "use a profile whose degradation quantises (denoise: quantise floor or round)",
            )
        buf = io.BytesIO()
        PILImage.fromarray(stored).save(buf, format="PNG")
        path = out_dir / f"{image.name}.png"
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    return written
