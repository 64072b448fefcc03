"""The evaluation inputs are the official HyperRes scripts' inputs: the whole image degraded, then
modcropped to 2 (SR by cv2 bicubic down and up, deJPEG by OpenCV's JPEG on the official luma), and
`hyperbench degrade` writes exactly the inputs the evaluation uses."""

import numpy as np
import pytest
from PIL import Image

from bench.apps.cli import app
from bench.common.errors import HyperbenchError
from bench.data.images import modcrop, rgb_to_luma
from bench.data.input_cache import InputCache
from bench.data.loading import Image as DatasetImage
from bench.evaluation.inputs import degraded_input, write_inputs
from bench.tasks.degradations import jpeg
from bench.tasks.task import get_task


def _odd_image(seed=0, shape=(41, 63, 3)):
    import cv2

    img = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 1.2)


@pytest.mark.parametrize("scale", [2, 3, 4, 5, 6])
def test_sr_input_is_the_whole_image_degraded_then_modcropped(scale):
    cv2 = pytest.importorskip("cv2")
    img = _odd_image(scale)
    low = cv2.resize(img, (0, 0), fx=1 / scale, fy=1 / scale, interpolation=cv2.INTER_CUBIC)
    official = modcrop(cv2.resize(low, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_CUBIC), 2)  # the loader modcrops
    ours = np.round(degraded_input(get_task("sr"), img, "x", scale, 0, {"resize": "opencv"}) * 255).astype(int)
    assert ours.shape == official.shape == modcrop(img, 2).shape
    assert np.abs(ours - official.astype(int)).max() <= 2


def test_official_luma_is_opencv_bgr2gray():
    cv2 = pytest.importorskip("cv2")
    img = _odd_image(7)
    official = cv2.cvtColor(np.ascontiguousarray(img[..., ::-1]), cv2.COLOR_BGR2GRAY)  # scripts/color2gray.py reads BGR
    assert np.array_equal(rgb_to_luma(img), official)


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3, 3), (33, 35, 3), (64, 48, 3), (121, 97, 3)])
def test_luma_equals_opencv_rgb2gray_on_every_pixel(shape):
    """OpenCV's uint8 conversion is 15-bit fixed point; the rounded float formula is 1 off on some pixels."""
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    ours = rgb_to_luma(img)
    assert ours.dtype == np.uint8 and ours.shape == shape[:2]
    assert np.count_nonzero(ours != cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)) == 0


def test_luma_of_a_float_image_and_of_a_bad_shape():
    img = np.random.default_rng(3).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    assert np.abs(rgb_to_luma(img.astype(np.float64)).astype(int) - rgb_to_luma(img).astype(int)).max() <= 1
    with pytest.raises(HyperbenchError, match="cannot take the luma"):
        rgb_to_luma(np.zeros((4, 4, 2), np.uint8))


@pytest.mark.parametrize("quality", [10, 30, 50, 80])
def test_jpeg_input_equals_opencv_imwrite_on_the_official_luma(quality):
    cv2 = pytest.importorskip("cv2")
    luma = rgb_to_luma(_odd_image(quality))
    ok, buf = cv2.imencode(".jpg", luma, [cv2.IMWRITE_JPEG_QUALITY, quality])  # scripts/generate_LR_JPEG.py
    official = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    ours = np.round(jpeg(luma, quality) * 255).astype(np.uint8)
    diff = np.abs(ours.astype(int) - official.astype(int))
    assert ok and diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_degrade_writes_the_inputs_the_evaluation_uses(tmp_path):
    task = get_task("sr")
    images = [DatasetImage(f"im{i}", _odd_image(i, (37, 45, 3)) if i else np.full((30, 34, 3), 90, np.uint8)) for i in range(3)]
    options = task.options()
    written = write_inputs(task, images, 3.0, 5, options, tmp_path / "out")
    assert [p.name for p in written] == ["im0.png", "im1.png", "im2.png"]
    cache = InputCache(None, "fixture", task, images, 5, options)
    for image, path in zip(images, written):
        expected, _ = cache.get(image.name, 3.0, lambda image=image: degraded_input(task, image.pixels, image.name, 3.0, 5, options))
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im).astype(np.float32) / 255.0, expected)


def test_degrade_command_and_its_errors(tmp_path):
    from typer.testing import CliRunner

    runner = CliRunner()
    ok = runner.invoke(app, ["degrade", "--task", "dejpeg", "--level", "20", "--out", str(tmp_path / "q20")])
    assert ok.exit_code == 0, ok.output
    files = sorted(p.name for p in (tmp_path / "q20").iterdir())
    assert files == ["astronaut.png", "chelsea.png", "coffee.png"]  # the smoke profile's evaluation images
    with Image.open(tmp_path / "q20" / "astronaut.png") as im:
        assert im.mode == "L"  # deJPEG inputs are luma
    bad = runner.invoke(app, ["degrade", "--task", "dejpeg", "--level", "120", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and not (tmp_path / "bad").exists()
    assert "outside the valid range" in str(bad.exception)


def test_float_inputs_are_refused_rather_than_rounded(tmp_path):
    task = get_task("denoise")
    images = [DatasetImage("flat", np.full((16, 16, 3), 128, np.uint8))]
    with pytest.raises(Exception, match="not 8-bit"):
        write_inputs(task, images, 25.0, 0, task.options({"quantise": "none"}), tmp_path)
    assert not list(tmp_path.iterdir())
