"""PSNR / SSIM for the restoration benchmark, written from the published formulas.

Conventions (all explicit in ``MetricSpec`` so every result row says how it was measured):

* Inputs are uint8 images: model outputs must be rounded/clipped to uint8 *before*
  scoring, because that is what a saved PNG contains and what papers score.
* All arithmetic is float64.
* PSNR uses peak 255; SSIM follows Wang et al. 2004 (Gaussian 11x11, sigma 1.5,
  K1=0.01, K2=0.03, L=255, population statistics, mean over the *valid* map region).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

COLOURS = ("rgb", "y", "gray")
AGGREGATIONS = ("mean",)

_PEAK = 255.0
_K1, _K2 = 0.01, 0.03

# Human wording for describe(); keyed by MetricSpec.colour.
_COLOUR_TEXT = {
    "rgb": "RGB (all 3 channels; SSIM averaged over channels)",
    "y": "BT.601 studio-range Y (16-235, unrounded)",
    "y-rounded": "BT.601 studio-range Y (16-235) rounded to integers (official HyperRes bgr2ycbcr)",
    "gray": "single-channel gray",
}


def _is_int(x) -> bool:
    # bool is an int subclass; reject it so `crop_border: true` in YAML is not silently 1.
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class MetricSpec:
    """How PSNR/SSIM are measured; stored with results so numbers stay comparable."""

    colour: str = "rgb"
    crop_border: int = 0
    ssim_window: int = 11
    ssim_sigma: float = 1.5
    aggregation: str = "mean"
    # Round Y to integers before scoring, as the official HyperRes evaluation does (ifryed/HyperRes
    # utils/DataUtils/CommonTools.py bgr2ycbcr: `rlt.round()` on uint8 input, numpy half-to-even).
    round_y: bool = False

    def __post_init__(self):
        if self.colour not in COLOURS:
            raise ValueError(
                f"MetricSpec.colour must be one of {COLOURS}, got {self.colour!r}"
            )
        if not _is_int(self.crop_border) or self.crop_border < 0:
            raise ValueError(
                f"MetricSpec.crop_border must be an int >= 0, got {self.crop_border!r}"
            )
        w = self.ssim_window
        if not _is_int(w) or w < 3 or w % 2 == 0:
            raise ValueError(
                f"MetricSpec.ssim_window must be an odd int >= 3, got {w!r}"
            )
        # Plain ints (numpy ints from CSV/pandas allowed) so keys and dicts are stable.
        object.__setattr__(self, "crop_border", int(self.crop_border))
        object.__setattr__(self, "ssim_window", int(w))
        s = self.ssim_sigma
        if (
            isinstance(s, bool)
            or not isinstance(s, numbers.Real)
            or not math.isfinite(s)
            or s <= 0
        ):
            raise ValueError(
                f"MetricSpec.ssim_sigma must be a finite number > 0, got {s!r}"
            )
        # Normalise 2 -> 2.0 so equal specs have equal keys.
        object.__setattr__(self, "ssim_sigma", float(s))
        if not isinstance(self.round_y, bool) or (self.round_y and self.colour != "y"):
            raise ValueError(f"MetricSpec.round_y must be a bool, and true only with colour 'y', got {self.round_y!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"MetricSpec.aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}"
            )

    def describe(self) -> str:
        w = self.ssim_window
        return (
            f"PSNR/SSIM on {_COLOUR_TEXT['y-rounded' if self.round_y else self.colour]}, float64, uint8-rounded outputs, "
            f"crop {self.crop_border} px, SSIM {w}x{w} Gaussian sigma {self.ssim_sigma:g} "
            f"(Wang et al. 2004, K1={_K1} K2={_K2}, valid window region), "
            f"{self.aggregation} over images"
        )

    def key(self) -> str:
        # repr(float) round-trips exactly, so from_key(key()) == self.
        return (
            f"{self.colour}|crop{self.crop_border}|"
            f"ssim{self.ssim_window}g{self.ssim_sigma!r}|{self.aggregation}"
            + ("|yround" if self.round_y else "")  # only when set: keys of unrounded specs stay as they were
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MetricSpec:
        allowed = {f.name for f in fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(
                f"unknown MetricSpec field(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        return cls(**d)

    @classmethod
    def from_key(cls, key: str) -> MetricSpec:
        parts = key.split("|")
        round_y = len(parts) == 5 and parts[4] == "yround"
        if round_y:
            parts = parts[:4]
        try:
            colour, crop, ssim_part, aggregation = parts
            if not crop.startswith("crop") or not ssim_part.startswith("ssim"):
                raise ValueError
            window, sigma = ssim_part[len("ssim") :].split("g", 1)
            return cls(
                colour, int(crop[len("crop") :]), int(window), float(sigma), aggregation, round_y
            )
        except ValueError as e:
            if str(e).startswith("MetricSpec."):
                raise  # a well-formed key with a bad value: keep the field-specific message
            raise ValueError(
                f"bad MetricSpec key {key!r}; expected e.g. 'y|crop0|ssim11g1.5|mean'"
            ) from None


def _channels(img: np.ndarray) -> int:
    if img.ndim == 2:
        return 1
    if img.ndim == 3:
        return img.shape[2]
    raise ValueError(f"expected an HxW or HxWxC image, got shape {img.shape}")


def _check_uint8(img: np.ndarray) -> None:
    if img.dtype != np.uint8:
        raise TypeError(
            f"metrics take uint8 images, got dtype {img.dtype}; round to uint8 first "
            "(np.clip(np.round(x), 0, 255).astype(np.uint8)), scores are on uint8-rounded outputs"
        )


def to_y(img_uint8_rgb) -> np.ndarray:
    """BT.601 studio-range luma Y in [16, 235] as float64 HxW, from uint8 RGB.

    Y = (65.481 R + 128.553 G + 24.966 B) / 255 + 16 on 0-255 values, NOT rounded.
    """
    # HyperRes' official SR evaluation rounds Y to integers before scoring:
    # MetricSpec(round_y=True) does that in prepare(); unrounded is the common
    # BasicSR/MATLAB-style float Y. It moves PSNR in the 2nd decimal.
    img = np.asarray(img_uint8_rgb)
    _check_uint8(img)
    c = _channels(img)
    if c != 3:
        raise ValueError(
            f"to_y expects 3 channels (RGB), got {c} channel(s), shape {img.shape}"
        )
    x = img.astype(np.float64)
    return (
        65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    ) / 255.0 + 16.0


def prepare(img, spec: MetricSpec) -> np.ndarray:
    """uint8 image -> float64 array in the spec's colour space, border-cropped.

    Returns HxW for "y"/"gray" and HxWx3 for "rgb".
    """
    img = np.asarray(img)
    _check_uint8(img)
    c = _channels(img)
    expected = 1 if spec.colour == "gray" else 3
    if c != expected:
        raise ValueError(
            f"colour={spec.colour!r} expects {expected} channel(s), got {c} channel(s), shape {img.shape}"
        )
    if spec.colour == "y":
        x = to_y(img)
        if spec.round_y:
            x = np.round(x)
    elif spec.colour == "gray":
        x = img.reshape(img.shape[:2]).astype(np.float64)  # HxWx1 -> HxW
    else:
        x = img.astype(np.float64)
    b = spec.crop_border
    if b:
        if x.shape[0] <= 2 * b or x.shape[1] <= 2 * b:
            raise ValueError(
                f"crop_border={b} leaves nothing of an image of shape {img.shape}"
            )
        x = x[b:-b, b:-b]
    return x


class Reference:
    """A ground truth scored against many outputs (every model and level of one image): its metric-space
    pixels, and the SSIM window statistics that depend on it alone, are computed once. psnr() and ssim()
    go through it, so both ways give the same bits."""

    def __init__(self, ref, spec: MetricSpec):
        ref = np.asarray(ref)
        self.spec, self.shape = spec, ref.shape
        self.pixels = prepare(ref, spec)
        self._window_stats = None  # per channel: (mean, mean of squares) over each SSIM window

    def _prepared(self, out) -> np.ndarray:
        out = np.asarray(out)
        if out.shape != self.shape:
            raise ValueError(f"shape mismatch: out {out.shape} vs ref {self.shape}")
        return prepare(out, self.spec)

    def psnr(self, out) -> float:
        """PSNR in dB with peak 255; MSE over all pixels and channels. Identical -> inf."""
        mse = np.mean((self._prepared(out) - self.pixels) ** 2)
        if mse == 0:
            return math.inf
        return float(10.0 * np.log10(_PEAK**2 / mse))

    def ssim(self, out) -> float:
        """Mean SSIM over the valid map; for RGB the mean of per-channel SSIM."""
        a, b = self._prepared(out), self.pixels
        w, s = self.spec.ssim_window, self.spec.ssim_sigma
        if b.shape[0] < w or b.shape[1] < w:
            raise ValueError(f"image {b.shape[:2]} is smaller than the SSIM window {w}x{w}")
        channels = [(a, b)] if b.ndim == 2 else [(a[..., i], b[..., i]) for i in range(b.shape[2])]
        if self._window_stats is None:
            g = _gaussian_1d(w, s)
            self._window_stats = [(_filter_valid(bc, g), _filter_valid(bc * bc, g)) for _, bc in channels]
        maps = [_ssim_map(ac, bc, w, s, stats) for (ac, bc), stats in zip(channels, self._window_stats)]
        return float(maps[0].mean()) if b.ndim == 2 else float(np.mean([m.mean() for m in maps]))


def psnr(out, ref, spec: MetricSpec) -> float:
    """PSNR in dB with peak 255; MSE over all pixels and channels. Identical -> inf."""
    return Reference(ref, spec).psnr(out)


def _gaussian_1d(window: int, sigma: float) -> np.ndarray:
    # Truncated to the window and renormalised, so the 2-D weights sum to 1
    # (population statistics, as in Wang et al. / the reference MATLAB code).
    r = window // 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Separable 'valid' filtering: no padding, output shrinks by window-1 per axis.
    # The kernel is symmetric, so correlation == convolution.
    w = g.size
    x = sliding_window_view(x, w, axis=0) @ g
    return sliding_window_view(x, w, axis=1) @ g


def _ssim_map(a: np.ndarray, b: np.ndarray, window: int, sigma: float, b_stats=None) -> np.ndarray:
    """SSIM map of two 2-D float64 arrays over the valid region only; b_stats: b's windowed mean and mean of
    squares when already known (Reference keeps them for all the outputs scored against one image)."""
    g = _gaussian_1d(window, sigma)
    mu_b, mean_bb = b_stats or (_filter_valid(b, g), _filter_valid(b * b, g))
    mu_a = _filter_valid(a, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = mean_bb - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    c1, c2 = (_K1 * _PEAK) ** 2, (_K2 * _PEAK) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return num / den


def ssim(out, ref, spec: MetricSpec) -> float:
    """Mean SSIM over the valid map; for RGB the mean of per-channel SSIM."""
    return Reference(ref, spec).ssim(out)


# Registry in the style of pyiqa: what each metric means, so tables can format/sort.
METRICS = {
    "psnr": {"fn": psnr, "higher_better": True, "range": (0.0, math.inf), "unit": "dB"},
    "ssim": {"fn": ssim, "higher_better": True, "range": (-1.0, 1.0), "unit": ""},
}


def compute(name: str, out, ref, spec: MetricSpec) -> float:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {sorted(METRICS)}")
    return METRICS[name]["fn"](out, ref, spec)


def aggregate(values, spec: MetricSpec) -> float:
    """Combine per-image scores as the spec says (currently: arithmetic mean).

    An inf PSNR (identical image) makes the mean inf; that is deliberate, not hidden.
    """
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("aggregate needs at least one value")
    if spec.aggregation == "mean":
        return float(v.mean())
    raise ValueError(
        f"unsupported aggregation {spec.aggregation!r}"
    )  # unreachable after validation
