"""The `fixed` data protocol (whole images degraded once, stored, each image once per epoch) and the
loader that makes batches in worker processes."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bench.data.images import as_float
from bench.data.loading import Image, load_dataset
from bench.data.training_store import degrade_whole, list_stores, remove_stores
from bench.tasks.degradations import seeded_rng
from bench.tasks.task import get_task
from bench.training.crops import FixedCrops, FreshCrops, step_batches, training_crops
from bench.training.profiles import expand, load_profile
from bench.training.runs import RunDir
from bench.training.trainer import train_run


def _augment(patch, flips):
    """The official augmentation, written independently: h-flip, v-flip, then H-W transpose, each when its flag is set."""
    if flips[0]:
        patch = patch[:, ::-1]
    if flips[1]:
        patch = patch[::-1]
    return patch.swapaxes(0, 1) if flips[2] else patch


def _images(n=5, h=40, w=52, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return [Image(f"im{i}", rng.integers(0, 256, (h, w, channels) if channels else (h, w), dtype=np.uint8)) for i in range(n)]


def _fixed(tmp_path, task="dejpeg", images=None, crop=16, seed=0):
    t = get_task(task)
    images = images or _images(channels=3 if t.channels == "rgb" else 0)
    return FixedCrops(images, crop, t, t.options(), seed, tmp_path / "runs", "toy")


def test_the_store_is_built_once_reused_and_identical_in_another_folder(tmp_path, monkeypatch):
    crops = _fixed(tmp_path)
    crops.level_batches([10, 40])
    folder = crops.store.folder
    assert folder.parent == tmp_path / "training-data"  # beside the runs folder, not in it
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = _fixed(tmp_path)
    again.level_batches([40])  # another run needing one of the levels: nothing is rebuilt
    assert again.store.folder == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    monkeypatch.setenv("HYPERBENCH_WORKERS", "2")  # built by two processes: the same bytes
    other = _fixed(tmp_path / "elsewhere")
    assert other.store.processes == 2
    other.level_batches([10, 40])
    for name in ("clean.u8", "level-10.bin", "level-40.bin"):
        assert (other.store.folder / name).read_bytes() == (folder / name).read_bytes()
    (store,) = list_stores(tmp_path / "runs")
    assert store["files"] == ["clean.u8", "level-10.bin", "level-40.bin"] and store["bytes"] > 0


def test_a_damaged_store_file_is_detected_and_rebuilt(tmp_path):
    crops = _fixed(tmp_path, "denoise")
    crops.level_batches([25])
    path = crops.store.folder / "level-25.bin"
    good = path.read_bytes()
    damaged = bytearray(good)
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    _fixed(tmp_path, "denoise").level_batches([25])
    assert path.read_bytes() == good
    path.write_bytes(good[:-10])  # truncated
    _fixed(tmp_path, "denoise").level_batches([25])
    assert path.read_bytes() == good
    assert remove_stores(tmp_path / "runs") == [crops.store.folder] and not crops.store.folder.exists()


@pytest.mark.parametrize("task,levels", [("dejpeg", [10, 40]), ("sr", [3, 5]), ("denoise", [15, 50])])
def test_degraded_crops_are_crops_of_the_whole_degraded_image(tmp_path, task, levels):
    """JPEG block grid and SR sampling are the whole image's: the input crop equals the same window of the
    degraded whole image (not a degraded crop), with the same flips as its clean target."""
    crops = _fixed(tmp_path, task)
    t = get_task(task)
    make = crops.level_batches(levels)
    x, y, lv = make(seeded_rng(0, "s", 7), 7, 2)
    rng = seeded_rng(0, "s", 7)
    picked = [(i, *crops._window(rng, i)) for i in crops.order(7, 2)]
    for k, level in enumerate(levels):
        for j, (i, window, flips) in enumerate(picked):
            image = crops.images[i]
            whole = degrade_whole(t, image.pixels, image.name, level, 0, t.options())
            expected = _augment(whole[window], flips).astype(np.float32) / 255.0
            got = as_float(x[k * len(picked) + j]).permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got[..., 0] if expected.ndim == 2 else got, expected)
            clean = _augment(image.pixels[window], flips).astype(np.float32) / 255.0
            target = as_float(y[k * len(picked) + j]).permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(target[..., 0] if clean.ndim == 2 else target, clean)
    assert lv.tolist() == [float(v) for v in levels for _ in picked]
    if task == "dejpeg":  # what fresh degradation of the crop would give instead: not the same pixels
        i, window, flips = picked[0]
        fresh = t.degrade(np.ascontiguousarray(_augment(crops.images[i].pixels[window], flips)), levels[0], rng, t.options())
        assert not np.array_equal(fresh, as_float(x[0, 0]).numpy())


def test_every_image_once_per_epoch_in_a_seeded_order(tmp_path):
    crops = _fixed(tmp_path, images=_images(n=7))
    batch, per_epoch = 3, 7 // 3  # drop_last: 2 steps, 6 of the 7 images, each once
    epochs = [np.concatenate([crops.order(e * per_epoch + k, batch) for k in range(per_epoch)]) for e in range(4)]
    for seen in epochs:
        assert len(set(seen.tolist())) == len(seen) == 6
    assert len({tuple(e) for e in epochs}) > 1  # a new order each epoch
    assert np.array_equal(crops.order(5, batch), _fixed(tmp_path, images=_images(n=7)).order(5, batch))  # seeded
    assert not np.array_equal(epochs[0], np.concatenate([_fixed(tmp_path, images=_images(n=7), seed=1).order(k, batch) for k in range(2)]))
    small = _fixed(tmp_path, images=_images(n=2))  # fewer images than the batch: epochs chained
    assert sorted(small.order(0, 4).tolist()) == [0, 0, 1, 1]


def test_drawn_levels_are_one_stored_degradation_per_image(tmp_path):
    crops = _fixed(tmp_path, "denoise", images=_images(n=6))
    make = crops.drawn_batches(lambda rng, n: [float(v) for v in rng.integers(0, 51, size=n)], "uniform 0..50")
    seen = {}
    for step in range(6):
        _, _, lv = make(seeded_rng(0, "c", step), step, 3)
        for i, level in zip(crops.order(step, 3), lv.tolist()):
            assert seen.setdefault(int(i), level) == level  # an image keeps its level in every epoch
    assert len(seen) == 6


def test_batches_are_the_same_with_workers_and_after_a_mid_epoch_resume(tmp_path):
    make = _fixed(tmp_path, "denoise").level_batches([15, 50])
    inline = list(step_batches(make, 2, 0, "joint", 0, 8, workers=0))
    workers = list(step_batches(make, 2, 0, "joint", 0, 8, workers=2))
    resumed = list(step_batches(make, 2, 0, "joint", 3, 8, workers=2))  # 5 images, batch 2: step 3 is mid-epoch
    for a, b in zip(inline, workers):
        assert all(torch.equal(p, q) for p, q in zip(a, b))
    for a, b in zip(inline[3:], resumed):
        assert all(torch.equal(p, q) for p, q in zip(a, b))


PROFILE = """
name: fixedrun
seed: 2
train: {steps: 6, batch: 2, crop: 16, lr: 1.0e-3, checkpoint_every: 3, select: last}
models:
  hyperres: {meta_blocks: 1, width: 8}
  cresmd: {blocks: 1, width: 8}
tasks:
  denoise:
    train_dataset: skimage-train
    eval_dataset: skimage-eval
    train_levels: [15, 50]
    eval_levels: [25]
"""


def _train(tmp_path, workers, monkeypatch, name):
    (tmp_path / "p.yaml").write_text(PROFILE)
    monkeypatch.setenv("HYPERBENCH_WORKERS", str(workers))
    weights = {}
    for entry in expand(load_profile(str(tmp_path / "p.yaml"))):
        run = entry.runs[0]
        assert run.config["train"]["data_protocol"] == "fixed"  # both recipes say so
        rundir = RunDir(tmp_path / name / "runs", run)
        train_run(rundir)
        weights[entry.model] = load_file(rundir.model_file)
    return weights


def test_training_with_0_and_2_loader_workers_gives_identical_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERBENCH_QUIET", "1")
    a, b = _train(tmp_path, 0, monkeypatch, "w0"), _train(tmp_path, 2, monkeypatch, "w2")
    for model in ("hyperres", "cresmd"):
        assert a[model].keys() == b[model].keys()
        assert all(torch.equal(a[model][k], b[model][k]) for k in a[model])
    stores = list_stores(tmp_path / "w0" / "runs")
    assert {s["key"]["task"] for s in stores} == {"denoise"} and any(f.startswith("drawn-") for s in stores for f in s["files"])


def test_the_profile_chooses_the_protocol_and_fresh_keeps_the_old_run_ids(tmp_path):
    (tmp_path / "p.yaml").write_text(PROFILE.replace("select: last}", "select: last, data_protocol: fresh}"))
    (entry, _) = expand(load_profile(str(tmp_path / "p.yaml")))
    assert "data_protocol" not in entry.runs[0].config["train"]  # fresh is the default: absent from the config
    crops = training_crops(entry.runs[0].config, load_dataset("skimage-train"), tmp_path / "runs")
    assert isinstance(crops, FreshCrops) and not (tmp_path / "training-data").exists()
    (tmp_path / "bad.yaml").write_text(PROFILE.replace("select: last}", "select: last, data_protocol: stored}"))
    with pytest.raises(Exception, match="data_protocol"):
        load_profile(str(tmp_path / "bad.yaml"))


def test_the_validation_set_is_held_out_from_training_and_evaluation(tmp_path):
    for where in ("train_dataset: skimage-train", "eval_dataset: skimage-eval"):
        dataset = where.split(": ")[1]
        (tmp_path / "v.yaml").write_text(PROFILE.replace("    eval_levels: [25]", f"    eval_levels: [25]\n    valid_dataset: {dataset}"))
        with pytest.raises(Exception, match=f"validates on {dataset}"):
            load_profile(str(tmp_path / "v.yaml"))


def test_a_bad_worker_count_is_a_clear_error(monkeypatch):
    from bench.common.errors import HyperbenchError
    from bench.training.crops import loader_workers

    monkeypatch.setenv("HYPERBENCH_WORKERS", "two")
    with pytest.raises(HyperbenchError, match="HYPERBENCH_WORKERS"):
        loader_workers()
    monkeypatch.setenv("HYPERBENCH_WORKERS", "2")
    assert loader_workers() == 2
