"""Bicubic resizers on numpy arrays, written for this benchmark.

Two conventions matter for reproducing published SR numbers:

* ``imresize_matlab`` follows MATLAB ``imresize(img, scale, 'bicubic')``
  (cubic a = -0.5, antialiased when shrinking, symmetric borders).  AdaFM
  builds its SR inputs this way.
* ``resize_cubic_opencv`` follows ``cv2.resize(..., INTER_CUBIC)``
  (cubic a = -0.75, no antialiasing, replicated borders).  HyperRes builds
  its SR inputs this way.

Both work in float64 and return float64 without rounding; only
``bicubic_degrade`` rounds to uint8.
"""

import math

import numpy as np

_METHODS = ("matlab", "opencv")


def _cubic(x, a):
    """Keys cubic convolution kernel with parameter ``a`` (support [-2, 2])."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = ((a + 2.0) * ax3 - (a + 3.0) * ax2 + 1.0) * (ax <= 1.0)
    far = (a * ax3 - 5.0 * a * ax2 + 8.0 * a * ax - 4.0 * a) * (
        (ax > 1.0) & (ax <= 2.0)
    )
    return near + far


def _as_image(img):
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {arr.shape}")
    return arr


def _apply_along(img, axis, indices, weights, in_len):
    """Resize ``img`` along ``axis`` with per-output taps (indices, weights).

    The taps are folded into a dense (out_len, in_len) matrix so the resize is
    one BLAS call; ``np.add.at`` accumulates taps that mirror/clamp onto the
    same source pixel.
    """
    out_len = indices.shape[0]
    matrix = np.zeros((out_len, in_len))
    rows = np.broadcast_to(np.arange(out_len)[:, None], indices.shape)
    np.add.at(matrix, (rows, indices), weights)
    return np.moveaxis(np.tensordot(matrix, img, axes=(1, axis)), 0, axis)


def _matlab_contributions(in_len, out_len, scale):
    """MATLAB imresize ``contributions()`` for the bicubic kernel.

    Returns 0-based source indices and weights, each of shape (out_len, taps).
    """
    width = 4.0
    if scale < 1:
        # Antialiasing: stretch the kernel by 1/scale (and scale it down so it
        # still integrates to 1) to low-pass before subsampling.
        def kernel(x):
            return scale * _cubic(scale * x, -0.5)

        width = width / scale
    else:

        def kernel(x):
            return _cubic(x, -0.5)

    # MATLAB works 1-based: output pixel x maps to input position u.
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps)
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)

    # Symmetric padding: index sequence 1..n, n..1 repeated.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]

    # MATLAB drops tap columns whose weight is zero for every output pixel.
    keep = np.any(weights != 0, axis=0)
    return indices[:, keep], weights[:, keep]


def imresize_matlab(img, scale=None, output_shape=None):
    """MATLAB ``imresize(img, scale, 'bicubic')`` in float64.

    Give exactly one of ``scale`` (a positive number; the output is
    ``ceil(in * scale)``) or ``output_shape`` ``(H, W)`` (per-dimension scale
    ``out / in``, as MATLAB does).  ``img`` is HxW or HxWxC, uint8 or float.
    Returns float64 without rounding or clipping.

    Note: MATLAB on uint8 input rounds to uint8 after *each* 1-D pass; we keep
    the intermediate in float64 (like the Python ports used by AdaFM/BasicSR),
    so rounded results can differ from MATLAB's uint8 path by about 1 DN.
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale or output_shape")
    arr = _as_image(img)
    in_shape = arr.shape[:2]
    if scale is not None:
        scale = float(scale)
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        out_shape = tuple(math.ceil(n * scale) for n in in_shape)
        scales = (scale, scale)
    else:
        out_shape = tuple(int(n) for n in output_shape)
        if len(out_shape) != 2 or min(out_shape) < 1:
            raise ValueError(f"output_shape must be (H, W) >= 1, got {output_shape}")
        scales = tuple(o / n for o, n in zip(out_shape, in_shape))

    # MATLAB resizes the dimension with the smaller scale first (stable sort).
    for axis in np.argsort(scales, kind="stable"):
        indices, weights = _matlab_contributions(
            in_shape[axis], out_shape[axis], scales[axis]
        )
        arr = _apply_along(arr, axis, indices, weights, in_shape[axis])
    return arr


def _opencv_contributions(in_len, out_len, step):
    """cv2 INTER_CUBIC taps: half-pixel centres, 4 taps, clamped borders; `step` = source pixels per output pixel."""
    src = (np.arange(out_len) + 0.5) * step - 0.5
    left = np.floor(src)
    offsets = np.arange(-1, 3)
    indices = left[:, None] + offsets
    weights = _cubic((src - left)[:, None] - offsets, -0.75)
    indices = np.clip(indices, 0, in_len - 1).astype(np.int64)
    return indices, weights


def resize_cubic_opencv(img, output_shape=None, fx=None):
    """``cv2.resize(img, (W, H), interpolation=cv2.INTER_CUBIC)`` in float64, or with ``fx``
    ``cv2.resize(img, (0, 0), fx=fx, fy=fx, interpolation=cv2.INTER_CUBIC)``.

    ``output_shape`` is (H, W).  No antialiasing, even when shrinking.  As in cv2, a size
    maps output pixels with the size ratio in/out, while ``fx`` sizes the output as
    round(n * fx) (half to even) and maps with exactly 1 / fx, so the two differ wherever
    n * fx is not whole (Set5 at x3, x5, x6).

    OpenCV computes uint8 input in fixed point (11-bit weights) and rounds the
    result; we compute in float64, so on uint8 input our output (once clipped
    to [0, 255]) can differ from cv2's by at most ~1 DN before rounding and
    rounds to the same value for almost all pixels.  float32 input agrees to
    float32 precision.
    """
    arr = _as_image(img)
    if (output_shape is None) == (fx is None):
        raise ValueError("give either output_shape or fx")
    if fx is not None:
        if not fx > 0:
            raise ValueError(f"fx must be > 0, got {fx}")
        out_shape = tuple(max(1, round(n * fx)) for n in arr.shape[:2])
    else:
        out_shape = tuple(int(n) for n in output_shape)
    if len(out_shape) != 2 or min(out_shape) < 1:
        raise ValueError(f"output_shape must be (H, W) >= 1, got {output_shape}")
    for axis in (0, 1):
        in_len = arr.shape[axis]
        step = 1.0 / fx if fx is not None else in_len / out_shape[axis]
        indices, weights = _opencv_contributions(in_len, out_shape[axis], step)
        arr = _apply_along(arr, axis, indices, weights, in_len)
    return arr


def _to_uint8(x):
    # Round half up, then saturate: what MATLAB's uint8 cast and cv2's
    # fixed-point uint8 path do for non-negative values.
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def bicubic_degrade(img_uint8, scale, method="matlab"):
    """SR degradation: bicubic down by ``scale``, then back up to (H, W).

    Rounds to uint8 after each step, like MATLAB/cv2 on uint8 images.
    ``method='matlab'`` is AdaFM's MATLAB imresize; ``method='opencv'`` is the
    HyperRes script (ifryed/HyperRes scripts/generate_LR_SR.py: ``cv2.resize(fx=1/scale)``
    then ``cv2.resize((W, H))``), which degrades the whole image; its loader modcrops
    afterwards, and so does the evaluation here.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {_METHODS}")
    if not scale >= 1:
        raise ValueError(f"scale must be >= 1 (a downscaling factor), got {scale}")
    img = np.asarray(img_uint8)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {img.dtype}")
    h, w = img.shape[:2]
    if method == "matlab":
        low = _to_uint8(imresize_matlab(img, scale=1 / scale))
        return _to_uint8(imresize_matlab(low, output_shape=(h, w)))
    low = _to_uint8(resize_cubic_opencv(img, fx=1 / scale))
    return _to_uint8(resize_cubic_opencv(low, (h, w)))
