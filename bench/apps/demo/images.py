"""The demo's images: uploads decoded and checked (format, size, colour, EXIF orientation), scaled to
a size that keeps one update interactive on a CPU, scikit-image's samples, and PNG data URLs."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bench.common.errors import HyperbenchError
from bench.data.images import modcrop, rgb_to_luma

MAX_UPLOAD_BYTES = 8 * 2**20


MAX_SIDE = 2048  # larger uploads are refused rather than decoded


WORK_SIDE = 512  # images are downscaled to fit 512x512 so that one update stays interactive on a CPU


MIN_SIDE = 32


FORMATS = ("PNG", "JPEG")


SAMPLES = ("astronaut", "chelsea", "coffee")  # scikit-image ships these: the demo needs no datasets


@dataclass
class DemoImage:
    id: str
    name: str
    rgb: np.ndarray  # uint8 HxWx3, even sides, at most WORK_SIDE a side
    notes: list[str] = field(default_factory=list)

    def clean(self, channels: str) -> np.ndarray:
        return self.rgb if channels == "rgb" else rgb_to_luma(self.rgb)

    def info(self) -> dict:
        h, w = self.rgb.shape[:2]
        return {"id": self.id, "name": self.name, "width": w, "height": h, "notes": self.notes}


def _to_rgb8(im: Image.Image, name: str) -> tuple[np.ndarray, list[str]]:
    """Any sensible pixel mode -> uint8 RGB, with a note when something was changed."""
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    mode = im.mode
    if mode in ("RGB", "L", "1"):
        return np.asarray(im.convert("RGB")), []
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise HyperbenchError(f"{name} holds 32-bit integer pixels", "save it as an 8-bit or 16-bit PNG")
        gray = np.round(values / 257.0).astype(np.uint8)  # 65535 -> 255 (Pillow's convert would clip instead)
        return np.repeat(gray[..., None], 3, axis=2), ["16-bit gray reduced to 8 bits"]
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = np.asarray(im.convert("RGBA"))
        if rgba[..., 3].min() == 255:
            return np.ascontiguousarray(rgba[..., :3]), ["opaque alpha channel dropped"]
        alpha = rgba[..., 3:].astype(np.float64) / 255.0
        flat = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.round(flat).astype(np.uint8), ["transparent areas flattened onto white"]
    if mode == "CMYK":
        return np.asarray(im.convert("RGB")), ["converted from CMYK without colour management (colours may shift)"]
    if mode == "YCbCr":
        return np.asarray(im.convert("RGB")), []
    raise HyperbenchError(f"{name} has pixel mode {mode}, which the demo cannot show", "save it as an 8-bit RGB or gray PNG or JPEG")


def decode_image(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """An uploaded PNG/JPEG -> uint8 RGB of at most 512x512 with even sides, and notes on what changed.

    What the demo cannot show sensibly raises HyperbenchError; the page shows its message.
    """
    if not data:
        raise HyperbenchError(f"{name} is empty", "choose a PNG or JPEG file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise HyperbenchError(
            f"{name} is {len(data) / 2**20:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MB",
            f"upload a smaller PNG or JPEG (the demo works at {WORK_SIDE}x{WORK_SIDE} anyway)",
        )
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # a small file that claims billions of pixels
        raise HyperbenchError(f"{name} claims an enormous size; the limit is {MAX_SIDE}x{MAX_SIDE}", "upload an ordinary PNG or JPEG") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise HyperbenchError(f"{name} is not an image", "upload a PNG or JPEG file") from None
    with im:
        if im.format not in FORMATS:
            raise HyperbenchError(f"{name} is a {im.format} file", "convert it to PNG or JPEG")
        w, h = im.size
        if max(w, h) > MAX_SIDE:
            raise HyperbenchError(
                f"{name} is {w}x{h} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}",
                f"downscale it before uploading (the demo works at most {WORK_SIDE}x{WORK_SIDE})",
            )
        try:
            im.load()  # decode now: a truncated file fails here with a clear message
            notes = ["first frame of an animation"] if getattr(im, "n_frames", 1) > 1 else []
            im = ImageOps.exif_transpose(im)  # phone photos: show them the right way up
        except (OSError, ValueError, SyntaxError) as exc:
            raise HyperbenchError(f"{name} cannot be decoded ({exc})", "the file is truncated or damaged; export it again") from None
        rgb, mode_notes = _to_rgb8(im, name)
    notes += mode_notes
    h, w = rgb.shape[:2]
    if max(h, w) > WORK_SIDE:
        scale = WORK_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
        notes.append(f"downscaled from {w}x{h} to {size[0]}x{size[1]}: the demo works at most {WORK_SIDE}x{WORK_SIDE} to stay interactive")
    even = modcrop(rgb, 2)
    if even.shape != rgb.shape:
        notes.append(f"cropped to {even.shape[1]}x{even.shape[0]} (the models need even sides)")
    if min(even.shape[:2]) < MIN_SIDE:
        fitted = f" once fitted into {WORK_SIDE}x{WORK_SIDE}" if max(h, w) > WORK_SIDE else ""
        raise HyperbenchError(
            f"{name} is too small: {even.shape[1]}x{even.shape[0]} pixels{fitted}; the demo needs at least {MIN_SIDE} pixels a side",
            "use a larger image, or one with a less extreme aspect ratio",
        )
    return np.ascontiguousarray(even), notes


def sample_images() -> list[DemoImage]:
    import skimage.data

    return [
        DemoImage(f"sample-{n}", n, np.ascontiguousarray(modcrop(getattr(skimage.data, n)()[..., :3], 2)), ["scikit-image sample image"])
        for n in SAMPLES
    ]


def image_file(path: Path) -> DemoImage:
    path = Path(path)
    if not path.is_file():
        raise HyperbenchError(f"image not found: {path}", "check the --image path")
    rgb, notes = decode_image(path.read_bytes(), path.name)
    return DemoImage("file", path.name, rgb, notes)


def data_url(pixels: np.ndarray) -> str:
    """uint8 image -> BMP data URL: lossless and ~1 ms to encode (PNG takes 30-90 ms at 512x512)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="BMP")
    return "data:image/bmp;base64," + base64.b64encode(buf.getvalue()).decode()
