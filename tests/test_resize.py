import math

import numpy as np
import pytest

from bench.tasks.resize import bicubic_degrade, imresize_matlab, resize_cubic_opencv
from tests.conftest import require_module

# --- independent loop references -------------------------------------------


def _keys(x, a):
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x <= 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def _mirror(j, n):
    """Symmetric reflection of a 1-based index into 1..n (edge repeated)."""
    while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j


def _matlab_1d(rows, out_len, scale):
    """Resize along the first axis of ``rows`` one output pixel at a time."""
    n = rows.shape[0]
    width = 4 / scale if scale < 1 else 4.0
    out = np.zeros((out_len,) + rows.shape[1:])
    for i in range(1, out_len + 1):
        centre = i / scale + 0.5 * (1 - 1 / scale)
        first = math.floor(centre - width / 2)
        taps = list(range(first, first + math.ceil(width) + 2))
        if scale < 1:
            ws = [scale * _keys(scale * (centre - j), -0.5) for j in taps]
        else:
            ws = [_keys(centre - j, -0.5) for j in taps]
        total = sum(ws)
        for j, wj in zip(taps, ws):
            out[i - 1] += (wj / total) * rows[_mirror(j, n) - 1]
    return out


def _matlab_ref(img, out_h, out_w, scale_h, scale_w):
    img = np.asarray(img, dtype=np.float64)
    tmp = _matlab_1d(img, out_h, scale_h)
    return np.swapaxes(_matlab_1d(np.swapaxes(tmp, 0, 1), out_w, scale_w), 0, 1)


def _opencv_1d(rows, out_len):
    n = rows.shape[0]
    out = np.zeros((out_len,) + rows.shape[1:])
    for i in range(out_len):
        src = (i + 0.5) * n / out_len - 0.5
        left = math.floor(src)
        for j in range(left - 1, left + 3):
            out[i] += _keys(src - j, -0.75) * rows[min(max(j, 0), n - 1)]
    return out


def _opencv_ref(img, out_h, out_w):
    img = np.asarray(img, dtype=np.float64)
    tmp = _opencv_1d(img, out_h)
    return np.swapaxes(_opencv_1d(np.swapaxes(tmp, 0, 1), out_w), 0, 1)


def _random_image(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape)


SHAPES = [(13, 17, 3), (13, 17), (13, 17, 1)]
SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 0.37]

# --- imresize_matlab ---------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", SCALES)
def test_matlab_matches_loop_reference_scale(shape, scale):
    img = _random_image(shape)
    out = imresize_matlab(img, scale=scale)
    out_h, out_w = math.ceil(13 * scale), math.ceil(17 * scale)
    assert out.shape == (out_h, out_w) + shape[2:]
    assert out.dtype == np.float64
    ref = _matlab_ref(img, out_h, out_w, scale, scale)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("out_shape", [(7, 40), (26, 5), (13, 17), (4, 4), (30, 34)])
def test_matlab_matches_loop_reference_output_shape(shape, out_shape):
    img = _random_image(shape, seed=1)
    out = imresize_matlab(img, output_shape=out_shape)
    assert out.shape == tuple(out_shape) + shape[2:]
    ref = _matlab_ref(img, *out_shape, out_shape[0] / 13, out_shape[1] / 17)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-10)


def test_matlab_uint8_input_gives_unrounded_float64():
    img = _random_image((13, 17, 3), seed=2).round().astype(np.uint8)
    out = imresize_matlab(img, scale=1 / 3)
    assert out.dtype == np.float64
    ref = _matlab_ref(img, 5, 6, 1 / 3, 1 / 3)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-10)
    assert not np.allclose(out, np.round(out))


@pytest.mark.parametrize("scale", SCALES)
def test_matlab_constant_image_stays_constant(scale):
    img = np.full((13, 17, 3), 42.5)
    np.testing.assert_allclose(
        imresize_matlab(img, scale=scale), 42.5, rtol=0, atol=1e-12
    )


def test_matlab_scale_one_is_identity():
    img = _random_image((13, 17, 3), seed=3)
    np.testing.assert_array_equal(imresize_matlab(img, scale=1), img)
    np.testing.assert_array_equal(imresize_matlab(img, output_shape=(13, 17)), img)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_matlab_up_then_down_recovers_smooth_image(factor):
    yy, xx = np.mgrid[0:40, 0:48]
    img = 100 + 50 * np.sin(2 * np.pi * yy / 40) * np.cos(2 * np.pi * xx / 48)
    back = imresize_matlab(imresize_matlab(img, scale=factor), scale=1 / factor)
    assert back.shape == img.shape
    assert np.abs(back - img).max() < 0.5


def test_matlab_argument_errors():
    img = np.zeros((8, 8))
    with pytest.raises(ValueError):
        imresize_matlab(img)
    with pytest.raises(ValueError):
        imresize_matlab(img, scale=2, output_shape=(4, 4))
    with pytest.raises(ValueError):
        imresize_matlab(img, scale=0)
    with pytest.raises(ValueError):
        imresize_matlab(np.zeros((2, 2, 2, 2)), scale=2)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 0.37])
def test_matlab_matches_bicubic_pytorch(scale):
    import torch

    core = require_module("bicubic_pytorch.core", 'pip install -e ".[dev]"')
    # Big enough for bicubic_pytorch's single-reflection padding at 1/4.
    img = np.random.default_rng(5).uniform(0, 1, size=(32, 40, 3))
    ref = core.imresize(torch.from_numpy(img).permute(2, 0, 1), scale=scale)
    ref = ref.permute(1, 2, 0).double().numpy()
    out = imresize_matlab(img, scale=scale)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


def test_matlab_matches_bicubic_pytorch_sizes():
    import torch

    core = require_module("bicubic_pytorch.core", 'pip install -e ".[dev]"')
    img = np.random.default_rng(6).uniform(0, 1, size=(32, 40))
    ref = core.imresize(torch.from_numpy(img), sizes=(13, 57)).double().numpy()
    out = imresize_matlab(img, output_shape=(13, 57))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


# --- resize_cubic_opencv -----------------------------------------------------

OPENCV_SHAPES = [(26, 34), (7, 9), (5, 6), (20, 9), (13, 17), (40, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("out_shape", OPENCV_SHAPES)
def test_opencv_matches_loop_reference(shape, out_shape):
    img = _random_image(shape, seed=7)
    out = resize_cubic_opencv(img, out_shape)
    assert out.shape == tuple(out_shape) + shape[2:]
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, _opencv_ref(img, *out_shape), rtol=0, atol=1e-10)


def test_opencv_same_size_is_identity():
    img = _random_image((13, 17, 3), seed=8)
    np.testing.assert_array_equal(resize_cubic_opencv(img, (13, 17)), img)


@pytest.mark.parametrize("shape", [(13, 17, 3), (13, 17)])
@pytest.mark.parametrize("out_shape", OPENCV_SHAPES)
def test_opencv_matches_cv2_float32(shape, out_shape):
    cv2 = require_module("cv2", 'pip install -e ".[dev]" (opencv-python-headless)')
    img = np.random.default_rng(9).uniform(0, 1, size=shape).astype(np.float32)
    ref = cv2.resize(img, out_shape[::-1], interpolation=cv2.INTER_CUBIC)
    out = resize_cubic_opencv(img, out_shape)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


# --- bicubic_degrade ---------------------------------------------------------


@pytest.mark.parametrize("method", ["matlab", "opencv"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_returns_uint8_same_shape(method, scale):
    img = _random_image((24, 36, 3), seed=10).round().astype(np.uint8)
    out = bicubic_degrade(img, scale, method=method)
    assert out.dtype == np.uint8
    assert out.shape == img.shape


def test_degrade_constant_image_unchanged():
    img = np.full((24, 36), 77, dtype=np.uint8)
    for method in ("matlab", "opencv"):
        np.testing.assert_array_equal(bicubic_degrade(img, 4, method=method), img)


def test_degrade_opencv_matches_cv2_pipeline():
    cv2 = require_module("cv2", 'pip install -e ".[dev]" (opencv-python-headless)')
    img = _random_image((24, 36, 3), seed=11).round().astype(np.uint8)
    low = cv2.resize(img, (0, 0), fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_CUBIC)
    ref = cv2.resize(low, (36, 24), interpolation=cv2.INTER_CUBIC)
    out = bicubic_degrade(img, 3, method="opencv")
    diff = np.abs(out.astype(int) - ref.astype(int))
    # cv2's fixed-point uint8 path rounds a few pixels the other way.
    assert diff.max() <= 2
    assert (diff > 0).mean() < 0.05


def test_degrade_matlab_is_rounded_down_then_up():
    img = _random_image((24, 36, 3), seed=12).round().astype(np.uint8)

    def to_uint8(x):  # MATLAB's uint8 cast: round half away from zero, saturate
        return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)

    low = to_uint8(_matlab_ref(img, 8, 12, 1 / 3, 1 / 3))
    ref = to_uint8(_matlab_ref(low, 24, 36, 3, 3))
    np.testing.assert_array_equal(bicubic_degrade(img, 3, method="matlab"), ref)


@pytest.mark.parametrize("scale", [0.5, 0, -2])
def test_degrade_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        bicubic_degrade(np.zeros((8, 8), dtype=np.uint8), scale)


def test_degrade_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        bicubic_degrade(np.zeros((8, 8), dtype=np.uint8), 2, method="pil")


# --- official HyperRes SR inputs (scripts/generate_LR_SR.py) against cv2 itself -------------------

OFFICIAL_SCALES = [2, 3, 4, 5, 6]
# sides divisible by every scale (60 = lcm of 2..6 ... x 1), and sides divisible by none of 4, 5, 6
OFFICIAL_SHAPES = [(60, 120, 3), (61, 97, 3), (43, 71)]


def _cv2_sr_input(cv2, img, scale):
    """What the official script does: cv2.resize(fx=1/s) down, then cv2.resize back to (w, h)."""
    low = cv2.resize(img, (0, 0), fx=1 / scale, fy=1 / scale, interpolation=cv2.INTER_CUBIC)
    return cv2.resize(low, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("scale", OFFICIAL_SCALES)
@pytest.mark.parametrize("shape", OFFICIAL_SHAPES)
def test_opencv_fx_matches_cv2_float32(shape, scale):
    cv2 = require_module("cv2", 'pip install -e ".[dev]" (opencv-python-headless)')
    img = np.random.default_rng(21).uniform(0, 1, size=shape).astype(np.float32)
    ref = cv2.resize(img, (0, 0), fx=1 / scale, fy=1 / scale, interpolation=cv2.INTER_CUBIC)
    out = resize_cubic_opencv(img, fx=1 / scale)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("scale", OFFICIAL_SCALES)
@pytest.mark.parametrize("shape", OFFICIAL_SHAPES)
def test_sr_inputs_equal_the_official_script_within_2dn(shape, scale):
    """The whole pipeline on uint8 images: at most 2 DN from cv2's fixed-point path, whether or not the
    sides divide by the scale (a size-ratio mapping misses by up to ~200 DN where they do not)."""
    cv2 = require_module("cv2", 'pip install -e ".[dev]" (opencv-python-headless)')
    img = np.random.default_rng(22).integers(0, 256, size=shape, dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 1.0)  # image-like: neighbours correlate
    ref = _cv2_sr_input(cv2, img, scale)
    out = bicubic_degrade(img, scale, method="opencv")
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() <= 2, (shape, scale, diff.max())


def test_size_and_fx_mappings_differ_where_sides_do_not_divide():
    """cv2 maps a dsize with in/out and an fx with exactly 1/fx: 61 px at x3 -> 20 px, 3.05 vs 3."""
    img = np.random.default_rng(23).uniform(0, 1, size=(61, 61))
    by_fx = resize_cubic_opencv(img, fx=1 / 3)
    by_size = resize_cubic_opencv(img, by_fx.shape)
    assert by_fx.shape == by_size.shape == (20, 20)
    assert np.abs(by_fx - by_size).max() > 0.05
    even = img[:60, :60]
    np.testing.assert_allclose(resize_cubic_opencv(even, fx=1 / 3), resize_cubic_opencv(even, (20, 20)), atol=1e-12)


def test_resize_takes_a_size_or_fx():
    img = np.zeros((8, 8))
    with pytest.raises(ValueError, match="either output_shape or fx"):
        resize_cubic_opencv(img)
    with pytest.raises(ValueError, match="either output_shape or fx"):
        resize_cubic_opencv(img, (4, 4), fx=0.5)
