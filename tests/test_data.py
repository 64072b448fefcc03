import shutil

import numpy as np
import pytest
from PIL import Image

from bench.common.errors import HyperbenchError
from bench.data import loading as data
from bench.data.checksums import sha256_file


def test_smoke_data_needs_no_root():
    images = data.load_dataset("skimage-eval")
    assert [im.name for im in images] == list(data.SKIMAGE_EVAL)
    assert all(im.pixels.dtype == np.uint8 and im.pixels.ndim == 3 for im in images)
    luma = data.load_dataset("skimage-eval", colour="luma")
    assert all(im.pixels.ndim == 2 for im in luma)


def test_named_dataset_without_root_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("HYPERBENCH_DATA", raising=False)
    with pytest.raises(HyperbenchError, match="needs a data root"):
        data.load_dataset("CBSD68")
    with pytest.raises(HyperbenchError, match="did you mean 'CBSD68'"):
        data.load_dataset("CBSD86")


def _fake_dataset(tmp_path, monkeypatch, n=3):
    """A tiny dataset 'Tiny' with its own manifest."""
    folder = tmp_path / "Tiny"
    folder.mkdir()
    files = {}
    for i in range(n):
        path = folder / f"im{i}.png"
        Image.fromarray(np.full((40, 50, 3), 40 * i, np.uint8)).save(path)
        files[path.name] = sha256_file(path)
    monkeypatch.setattr(data, "manifest", lambda: {"Tiny": {"count": n, "files": files}})
    data._load_cached.cache_clear()
    return folder


def test_verified_dataset_loads(tmp_path, monkeypatch):
    _fake_dataset(tmp_path, monkeypatch)
    images = data.load_dataset("Tiny", tmp_path)
    assert [im.name for im in images] == ["im0", "im1", "im2"]


def test_checksum_mismatch_names_the_file(tmp_path, monkeypatch):
    folder = _fake_dataset(tmp_path, monkeypatch)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8) + 7).save(folder / "im1.png")
    with pytest.raises(HyperbenchError, match=r"1 corrupted \(im1.png\)"):
        data.load_dataset("Tiny", tmp_path)
    assert len(data.load_dataset("Tiny", tmp_path, verify=False)) == 3


def test_empty_and_missing_folders(tmp_path, monkeypatch):
    folder = _fake_dataset(tmp_path, monkeypatch)
    shutil.rmtree(folder)
    with pytest.raises(HyperbenchError, match="is missing"):
        data.load_dataset("Tiny", tmp_path)
    folder.mkdir()
    with pytest.raises(HyperbenchError, match="holds no images"):
        data.load_dataset("Tiny", tmp_path)
    with pytest.raises(HyperbenchError, match="does not exist"):
        data.load_dataset("Tiny", tmp_path / "nowhere")


def test_truncated_image_is_a_clear_error(tmp_path):
    from bench.data.images import read_image

    path = tmp_path / "bad.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(HyperbenchError, match="cannot decode"):
        read_image(path)


def test_patch_sampler_is_deterministic_and_augments():
    images = data.load_dataset("skimage-train")
    sampler = data.PatchSampler(images, 24)
    a = sampler.sample(16, np.random.default_rng(3))
    b = sampler.sample(16, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(p.shape == (24, 24, 3) for p in a)
    with pytest.raises(HyperbenchError, match="crop"):
        data.PatchSampler(images, 5000)


@pytest.mark.shared
def test_shared_datasets_match_their_manifest(shared_data):
    for name in ("CBSD68", "LIVE1", "Set5", "Set14", "CBSD432", "BSD400"):
        report = data.verify_folder(name, shared_data / name)
        assert report == {"missing": [], "extra": [], "corrupted": []}, name
    images = data.load_dataset("CBSD68", shared_data)
    assert len(images) == 68
