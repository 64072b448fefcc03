"""Image I/O and the array conventions every task shares (uint8 HxWxC on disk, float [0,1] NCHW in nets)."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from bench.common.errors import HyperbenchError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def read_image(path, mode: str | None = None) -> np.ndarray:
    """Decode an image file to uint8 (HxWx3 for RGB, HxW for L). Corrupt files raise a clear error."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # decode now so a truncated file fails here, not later in a network
            if mode is None:
                mode = "L" if im.mode in ("L", "I;16", "I", "1") else "RGB"
            return np.asarray(im.convert(mode), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise HyperbenchError(f"image not found: {path}", "check the path or the dataset folder") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HyperbenchError(f"cannot decode image {path}: {exc}", "the file is truncated or not an image; re-download or remove it") from None


def rgb_to_luma(img: np.ndarray) -> np.ndarray:
    """Full-range luma as uint8, bit for bit OpenCV's RGB2GRAY (BGR2GRAY on the swapped channels).

    This is what the official HyperRes scripts use to make gray deJPEG data (cv2 BGR2GRAY), which
    differs from the BT.601 studio-range Y used for SR metrics. OpenCV converts uint8 in 15-bit fixed
    point, (9798 R + 19235 G + 3735 B + 2**14) >> 15, not with the rounded float 0.299 R + 0.587 G +
    0.114 B (1 off on 0.14 % of all RGB colours), so uint8 input takes that integer path. Other dtypes
    (0-255 values) use the float weights, as cv2 does for float images, rounded to uint8.
    """
    img = np.asarray(img)
    if img.ndim == 2:
        return img
    if img.ndim != 3 or img.shape[-1] != 3:
        raise HyperbenchError(f"cannot take the luma of an array of shape {img.shape}",
                              "give an H x W x 3 RGB image (or an H x W gray one, returned as it is)")
    if img.dtype == np.uint8:
        r, g, b = (img[..., i].astype(np.int32) for i in range(3))  # int32: the sum reaches 2**23
        return ((9798 * r + 19235 * g + 3735 * b + (1 << 14)) >> 15).astype(np.uint8)
    y = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def modcrop(img: np.ndarray, multiple: int) -> np.ndarray:
    """Crop bottom/right so height and width are multiples of `multiple` (official loaders use 2)."""
    h, w = img.shape[:2]
    return img[: h - h % multiple, : w - w % multiple]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 or float [0,1] HxW[xC] -> float32 1xCxHxW."""
    arr = np.asarray(img)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def as_float(t: torch.Tensor) -> torch.Tensor:
    """A batch tensor as the networks take it: 8-bit crops (the fixed training store's) -> float32 k/255,
    on whatever device they already are (the values of to_tensor)."""
    return t.to(torch.float32).div_(255.0) if t.dtype == torch.uint8 else t


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """Network output 1xCxHxW -> uint8 HxW[xC]: clamp to [0,1], x255, round (the metric convention)."""
    arr = t.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def list_images(folder) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
