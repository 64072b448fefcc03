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


def test_patch_sampler_is_deterministic():
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


def test_patch_sampler_crops_anywhere_with_all_eight_flips_and_transposes():
    """Pixels that encode their own (row, column, image) show where each crop came from and how it was
    turned: every patch is one of the 8 dihedral transforms of a true crop, and all 8 occur."""
    from bench.data.loading import Image

    size, crop = 40, 8
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    images = [Image(f"im{k}", np.stack([rows, cols, np.full_like(rows, k)], axis=-1).astype(np.uint8)) for k in range(3)]
    sampler = data.PatchSampler(images, crop)
    seen, corners, sources = set(), set(), set()
    ii, jj = np.meshgrid(np.arange(crop), np.arange(crop), indexing="ij")
    for patch in sampler.sample(400, np.random.default_rng(0)):
        r, c, k = patch[..., 0].astype(int), patch[..., 1].astype(int), patch[..., 2]
        assert len(np.unique(k)) == 1  # one source image per patch
        transposed = r[0, 0] != r[0, 1]  # untransposed, the source row is constant along a patch row
        if transposed:
            r, c = r.T, c.T
        top, left = r.min(), c.min()
        flip_v, flip_h = r[0, 0] != top, c[0, 0] != left
        r, c = (r[::-1] if flip_v else r), (c[::-1] if flip_v else c)
        r, c = (r[:, ::-1] if flip_h else r), (c[:, ::-1] if flip_h else c)
        assert np.array_equal(r, top + ii) and np.array_equal(c, left + jj)  # undone, it is a true crop
        seen.add((bool(transposed), bool(flip_v), bool(flip_h)))
        corners.add((int(top), int(left)))
        sources.add(int(k[0, 0]))
    assert len(seen) == 8 and sources == {0, 1, 2}
    assert min(t for t, _ in corners) == 0 and max(t for t, _ in corners) == size - crop  # crops reach every edge
