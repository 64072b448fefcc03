"""The cache of degraded evaluation inputs: lossless storage, checksums, identical results with and without it."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.apps.reproduce import tidy_rows
from bench.data.checksums import array_sha256
from bench.data.input_cache import InputCache, input_sha256, network_input, set_sha256, storable
from bench.data.loading import Image as DataImage
from bench.evaluation import evaluate as ev
from bench.models.catalog import create_model
from bench.tasks import degradations
from bench.tasks.degradations import seeded_rng
from bench.tasks.task import get_task
from bench.training.profiles import expand, load_profile


def _images(channels):
    rng = np.random.default_rng(0)
    shape = (34, 41, 3) if channels == "rgb" else (34, 41)
    return [DataImage(name, rng.integers(0, 256, shape, dtype=np.uint8)) for name in ("01", "b", "a10")]


@pytest.mark.parametrize(
    "task,options,kind",
    [("denoise", {"clip": True, "quantise": "floor"}, np.uint8), ("denoise", {"clip": True, "quantise": "round"}, np.uint8),
     ("denoise", {"clip": False, "quantise": "none"}, np.float32), ("dejpeg", {"subsampling": "4:2:0"}, np.uint8),
     ("sr", {"resize": "opencv"}, np.uint8)],
)
def test_inputs_round_trip_bit_for_bit(task, options, kind):
    t = get_task(task)
    clean = _images(t.channels)[0].pixels[:34, :40]
    x = t.degrade(clean, t.paper_train_levels[1], seeded_rng("x", 1), options)
    stored = storable(x)
    assert stored.dtype == kind
    assert network_input(stored).dtype == np.float32 and np.array_equal(network_input(stored), x)


def test_every_8_bit_value_round_trips():
    x = (np.arange(256, dtype=np.float64) / 255).astype(np.float32)  # how add_noise makes its values
    assert storable(x).dtype == np.uint8 and np.array_equal(network_input(storable(x)), x)
    assert storable(x + np.float32(1e-3)).dtype == np.float32


def _model(channels):
    return create_model("hyperres", meta_blocks=1, width=8, in_channels=3 if channels == "rgb" else 1).eval()


@pytest.mark.parametrize("task_name,options", [("denoise", {"clip": True, "quantise": "floor"}), ("denoise", {"clip": False, "quantise": "none"}),
                                               ("dejpeg", {"subsampling": "4:2:0"})])
def test_evaluation_is_identical_with_and_without_the_cache(tmp_path, monkeypatch, task_name, options):
    task = get_task(task_name)
    images, models = _images(task.channels), {"hyperres": _model(task.channels)}
    levels = list(task.paper_train_levels[:2])
    plain = ev.evaluate(task, models, images, levels, 0, options)
    filled = ev.evaluate(task, models, images, levels, 0, options, input_cache=tmp_path, dataset="Tiny")
    assert filled == plain
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    suffix = ".npy" if options.get("quantise") == "none" else ".png"
    files = sorted(folder.glob(f"*/*{suffix}"))
    assert len(files) == len(images) * len(levels) and not list(folder.glob("*/.*"))

    # a second evaluation reads the stored inputs: the degradation is not run again
    monkeypatch.setattr(ev, "degraded_input", lambda *a, **k: pytest.fail("the cached input should have been read"))
    assert ev.evaluate(task, models, images, levels, 0, options, input_cache=tmp_path, dataset="Tiny") == plain

    # the recorded checksum is the checksum of the decoded stored file
    row = next(r for r in plain if r["image"] == "b" and r["level"] == levels[1] and r["model"] == ev.INPUT)
    stored = folder / f"{levels[1]:g}" / f"b{suffix}"
    decoded = np.load(stored) if suffix == ".npy" else np.asarray(Image.open(stored))
    assert array_sha256(decoded) == row["input_sha256"]


def test_cache_key_separates_seeds_options_and_clean_images(tmp_path):
    task = get_task("denoise")
    images = _images("rgb")
    opts = {"clip": True, "quantise": "floor"}
    folder = InputCache(tmp_path, "Tiny", task, images, 0, opts).folder
    assert InputCache(tmp_path, "Tiny", task, images, 0, dict(opts)).folder == folder
    assert InputCache(tmp_path, "Tiny", task, images, 1, opts).folder != folder
    assert InputCache(tmp_path, "Tiny", task, images, 0, {**opts, "quantise": "round"}).folder != folder
    changed = [DataImage(images[0].name, 255 - images[0].pixels), *images[1:]]
    assert InputCache(tmp_path, "Tiny", task, changed, 0, opts).folder != folder


def test_damaged_cache_file_is_made_again(tmp_path):
    task = get_task("denoise")
    images, opts = _images("rgb"), {"clip": True, "quantise": "floor"}
    cache = InputCache(tmp_path, "Tiny", task, images, 0, opts)
    make = lambda: degradations.add_noise(images[0].pixels, 25, seeded_rng("01", 25, 0))  # noqa: E731
    x, digest = cache.get("01", 25, make)
    path = cache.folder / "25" / "01.png"
    path.write_bytes(path.read_bytes()[:40])
    y, again = cache.get("01", 25, make)
    assert np.array_equal(x, y) and digest == again == input_sha256(x)
    assert np.array_equal(np.asarray(Image.open(path)), storable(x))


def test_input_set_checksum_in_tidy_results():
    profile = load_profile("smoke")
    task = get_task("denoise")
    images, models = _images("rgb"), {"hyperres": _model("rgb")}
    per_image = pd.DataFrame(ev.evaluate(task, models, images, [15.0, 35.0], 0, profile.task_cfg("denoise")["options"]))
    rows = tidy_rows(profile, "denoise", expand(profile, ["denoise"], ["hyperres"]), per_image)
    by_level = {}
    for row in rows:
        by_level.setdefault(row["level"], set()).add(row["inputs_sha256"])
    assert all(len(v) == 1 for v in by_level.values()) and by_level[15.0] != by_level[35.0]  # one set per level, models share it
    level15 = per_image[(per_image.model == ev.INPUT) & (per_image.level == 15.0)]
    assert by_level[15.0] == {set_sha256(dict(zip(level15.image, level15.input_sha256)))}
    # names read back from a CSV as strings give the same set checksum in any order
    assert set_sha256({"b": "2", "01": "1"}) == set_sha256({"01": "1", "b": "2"}) != set_sha256({"01": "2", "b": "1"})
