"""pyiqa's psnr, psnry, ssim and ssimc against the suite's own PSNR/SSIM on the same images (docs/metrics.md).

Where the conventions are the same, the numbers must agree to 1e-6 dB. Where they differ, each convention is
stated and the measured difference reported; the stated convention is then checked by replaying it with the
suite's own code (a "replica" row), so the table says what pyiqa computes, not what it is believed to compute.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bench.metrics import iqa
from bench.metrics.quality import MetricSpec, Reference

YIQ_Y = np.float32([0.299, 0.587, 0.114]).astype(np.float64)  # pyiqa builds its weights as a float32 tensor
PYIQA_EPS = 1e-8  # pyiqa's psnr adds it to the MSE of [0, 1] images


def _full_range_y(img: np.ndarray) -> np.ndarray:
    """YIQ's Y (0.299 R + 0.587 G + 0.114 B, weights as float32) on 0-255, as pyiqa's `to_y_channel` computes it."""
    return img.astype(np.float64) @ YIQ_Y


def _gray(values: np.ndarray) -> np.ndarray:
    """A float image in [0, 255] that is already integral, as the uint8 gray image the suite's metrics take."""
    return np.clip(values, 0, 255).astype(np.uint8)


@lru_cache
def _metric(name: str, options: tuple):
    return iqa.pyiqa().create_metric(name, as_loss=False, device="cpu", **dict(options))


def _pyiqa_score(name: str, out: np.ndarray, ref: np.ndarray, scale: float, dtype, **options) -> float:
    import torch

    metric = _metric(name, tuple(sorted(options.items())))  # built once for all the pairs

    def tensor(img):
        return torch.from_numpy(img.astype(np.float64) / scale).to(dtype).permute(2, 0, 1).unsqueeze(0)

    with torch.no_grad():
        return float(metric(tensor(out), tensor(ref)).reshape(-1)[0])


COMPARISONS = [
    # (row, pyiqa's convention, ours, same convention?)
    ("psnr, eps=0, on 0-255 (float64)", "RGB, MSE over all channels, peak 255, eps 0", "RGB PSNR (tasks denoise)", True),
    ("psnr, pyiqa's defaults (float32 in [0, 1], eps 1e-8)", "RGB, peak 1, MSE + 1e-8, float32", "RGB PSNR, float64", False),
    ("ssimc (RGB SSIM)", "Gaussian 11x11 σ1.5 (float32 weights), valid window, cs map clipped at 0, inputs rounded on 0-255",
     "RGB SSIM, float64 weights, no clipping", False),
    ("psnry", "full-range YIQ Y (0.299 R + 0.587 G + 0.114 B), not rounded (rounded only with data_range=255)",
     "BT.601 studio-range Y (16-235) rounded (sr, the official HyperRes convention)", False),
    ("psnry replayed", "as psnry, float64 input", "our PSNR on pyiqa's Y (float32 weights) with its eps (replica)", True),
    ("ssim (Y)", "full-range YIQ Y rounded to integers on 0-255", "our SSIM on BT.601 studio-range Y rounded (sr)", False),
    ("ssim (Y) replayed", "as ssim (Y), float64 input", "our SSIM on pyiqa's rounded full-range Y (replica; its window weights stay float64)", True),
]


def cross_check(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Per comparison: the conventions, and the mean and largest |pyiqa − ours| over (output, clean) uint8 RGB pairs."""
    import torch

    rgb, sr = MetricSpec("rgb", 0), MetricSpec("y", 0, round_y=True)
    gray = MetricSpec("gray", 0)
    diffs = {row[0]: [] for row in COMPARISONS}
    for out, ref in pairs:
        ours_psnr, ours_ssim = Reference(ref, rgb).psnr(out), Reference(ref, rgb).ssim(out)
        diffs[COMPARISONS[0][0]].append(_pyiqa_score("psnr", out, ref, 1.0, torch.float64, eps=0.0, data_range=255.0, check_input_range=False) - ours_psnr)
        diffs[COMPARISONS[1][0]].append(_pyiqa_score("psnr", out, ref, 255.0, torch.float32) - ours_psnr)
        diffs[COMPARISONS[2][0]].append(_pyiqa_score("ssimc", out, ref, 255.0, torch.float32) - ours_ssim)
        diffs[COMPARISONS[3][0]].append(_pyiqa_score("psnry", out, ref, 255.0, torch.float32) - Reference(ref, sr).psnr(out))
        y_out, y_ref = _full_range_y(out), _full_range_y(ref)
        replica = 10 * np.log10(1.0 / (np.mean((y_out - y_ref) ** 2) / 255.0**2 + PYIQA_EPS))
        diffs[COMPARISONS[4][0]].append(_pyiqa_score("psnry", out, ref, 255.0, torch.float64) - replica)
        diffs[COMPARISONS[5][0]].append(_pyiqa_score("ssim", out, ref, 255.0, torch.float32) - Reference(ref, sr).ssim(out))
        rounded = Reference(_gray(np.round(y_ref)), gray).ssim(_gray(np.round(y_out)))
        diffs[COMPARISONS[6][0]].append(_pyiqa_score("ssim", out, ref, 255.0, torch.float64) - rounded)
    return [{"comparison": name, "pyiqa": theirs, "ours": ours, "same convention": same,
             "mean difference": float(np.mean(diffs[name])), "largest |difference|": float(np.max(np.abs(diffs[name])))}
            for name, theirs, ours, same in COMPARISONS]


def skimage_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(output, clean) pairs on the suite's bundled sample images: AWGN σ15 and JPEG q30 versions of each."""
    from bench.data.images import modcrop
    from bench.data.loading import load_dataset
    from bench.tasks import degradations

    pairs = []
    for i, image in enumerate(load_dataset("skimage-eval", None, colour="rgb")):
        clean = modcrop(image.pixels, 2)
        noisy = degradations.add_noise(clean, 15.0, np.random.default_rng(i), clip=True, quantise="floor")
        jpeg = degradations.jpeg(clean, 30, subsampling="4:2:0")
        pairs += [(np.clip(np.round(x * 255), 0, 255).astype(np.uint8), clean) for x in (noisy, jpeg)]
    return pairs
