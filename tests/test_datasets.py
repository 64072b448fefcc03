"""The dataset registry, folder verification, the `hyperbench data` commands and DIV2K sub-images."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.apps.cli import app
from bench.common.errors import HyperbenchError
from bench.data import checksums, datasets, download, subimages
from bench.data import loading as data
from bench.data.verify import verify


def test_every_manifest_set_is_registered_with_source_licence_and_count():
    manifest = datasets.manifest()
    assert set(manifest) <= set(datasets.DATASETS)
    for name, entry in manifest.items():
        spec = datasets.get_dataset(name)
        assert spec.count == entry["count"] == len(entry["files"]), name
        repo_path, commit = entry["source"].split("@")
        repo, folder = repo_path.split(":")
        assert spec.source.url.startswith(f"https://github.com/{repo}/archive/{commit}"), name  # the snapshot the checksums came from
        assert folder.split("{")[0].rstrip("/") in spec.source.folders[0], name
        assert spec.licence and spec.homepage and spec.role in ("test", "train")
        assert spec.checksum_kind.startswith("per-file")
    for name in ("CBSD68", "LIVE1", "Set5", "Set14", "Kodak24", "McMaster", "B100", "CBSD432", "BSD400", "classic5", "Set12", "BSD68"):
        assert name in datasets.DATASETS


def test_bmp_published_sets_carry_pixel_checksums():
    for name in ("LIVE1", "classic5"):
        converted = datasets.get_dataset(name).converted()
        assert set(converted) == set(datasets.manifest()[name]["files"])
        assert all(c["from"].endswith(".bmp") and len(c["pixels_sha256"]) == 64 for c in converted.values())


def test_div2k_is_registered_with_its_official_archives():
    train, valid = datasets.get_dataset("DIV2K_train_HR"), datasets.get_dataset("DIV2K_valid_HR")
    assert train.source.url == "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"
    assert valid.source.url == "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip"
    assert (train.count, valid.count) == (800, 100)
    assert train.expected_names()[0] == "0001.png" and train.expected_names()[-1] == "0800.png"
    assert valid.expected_names()[0] == "0801.png" and len(valid.expected_names()) == 100
    assert train.checksums() is None and train.checksum_kind.startswith("archive only")
    assert "academic" in train.licence
    assert datasets.get_dataset("DIV2K-sub").derived_from == "DIV2K_train_HR"


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(HyperbenchError, match="did you mean 'CBSD68'"):
        datasets.get_dataset("CBSD86")


def _image(path, value, size=(20, 24)):
    Image.fromarray(np.random.default_rng(value).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _tiny(root, monkeypatch):
    """A registered dataset 'Tiny' of three images under root/Tiny, checksummed as written."""
    folder = root / "Tiny"
    folder.mkdir(parents=True)
    for i in range(3):
        _image(folder / f"im{i}.png", i)
    sums = {p.name: checksums.sha256_file(p) for p in folder.iterdir()}
    spec = datasets.DatasetSpec("Tiny", "test", "three images", 3, "test", "here", None, files=sums)
    monkeypatch.setitem(datasets.DATASETS, "Tiny", spec)
    return folder, spec


def test_verify_reports_missing_extra_and_corrupted(tmp_path, monkeypatch):
    folder, spec = _tiny(tmp_path, monkeypatch)
    assert verify("Tiny", tmp_path).ok
    (folder / "im0.png").unlink()
    _image(folder / "im1.png", 9)
    _image(folder / "stray.png", 3)
    report = verify(spec, tmp_path)
    assert report.state == "problems"
    assert (report.missing, report.extra, report.corrupted) == (["im0.png"], ["stray.png"], ["im1.png"])
    assert verify(spec, tmp_path / "elsewhere").state == "absent"


def test_data_verify_command(tmp_path, monkeypatch):
    folder, _ = _tiny(tmp_path, monkeypatch)
    runner = CliRunner()
    out = runner.invoke(app, ["data", "verify", "Tiny", "--data-root", str(tmp_path)])
    assert out.exit_code == 0 and "0 with problems" in out.output
    _image(folder / "im2.png", 11)
    out = runner.invoke(app, ["data", "verify", "--data-root", str(tmp_path)])
    assert out.exit_code == 1
    assert "PROBLEMS" in out.output and "Tiny: corrupted im2.png" in out.output and "with problems: Tiny" in out.output
    out = runner.invoke(app, ["data", "verify", "CBSD68", "--data-root", str(tmp_path)])  # asked for by name, but absent
    assert out.exit_code == 1 and "absent" in out.output


def test_data_commands_give_clear_errors(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.apps.cli", "data", "prepare", "CBSD86", "--data-root", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "did you mean 'CBSD68'" in out.stdout and "Traceback" not in out.stderr
    assert not (tmp_path / "d").exists()


def test_data_list_names_sources_and_licences():
    out = CliRunner().invoke(app, ["data", "list"])
    assert out.exit_code == 0
    for name in datasets.DATASETS:
        assert name in out.output
    assert "DIV2K_train_HR.zip" in out.output and "academic research" in out.output


@pytest.mark.shared
def test_shared_datasets_verify_clean_and_import(shared_data, tmp_path):
    out = CliRunner().invoke(app, ["data", "verify", "--data-root", str(shared_data)])
    assert out.exit_code == 0, out.output
    assert "0 with problems" in out.output and "CBSD68" in out.output
    out = CliRunner().invoke(app, ["data", "prepare", "Set5", "--from", str(shared_data), "--data-root", str(tmp_path / "d")])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["Set5"]
    assert len(data.load_dataset("Set5", tmp_path / "d")) == 5


# --------------------------------------------------------------------------- DIV2K sub-images


@pytest.mark.parametrize(
    "length,expected",
    [(479, []), (480, [0]), (528, [0]), (529, [0, 49]), (719, [0, 239]), (720, [0, 240]), (768, [0, 240]), (769, [0, 240, 289]),
     (2040, [0, 240, 480, 720, 960, 1200, 1440, 1560])],
)
def test_positions_follow_the_official_border_rule(length, expected):
    # a last crop flush with the border is added only when more than 48 pixels would be left out
    assert subimages.positions(length) == expected


def test_cut_goes_row_by_row():
    img = np.arange(10 * 7).reshape(10, 7).astype(np.uint8)
    pieces = subimages.cut(img, crop=4, step=3, threshold=0)  # rows at 0, 3, 6; columns at 0, 3
    assert len(pieces) == 6
    assert np.array_equal(pieces[1], img[0:4, 3:7]) and np.array_equal(pieces[2], img[3:7, 0:4])


def _div2k(root, n=2):
    folder = root / "DIV2K_train_HR"
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        _image(folder / f"{i:04d}.png", i, size=(600, 500))  # rows at 0 and 120, one column: 2 sub-images each
    return folder


def test_subimages_are_cut_once_and_reused(tmp_path, monkeypatch):
    src = _div2k(tmp_path)
    dest = subimages.ensure_subimages(tmp_path, log=lambda *a: None)
    assert dest.parent == tmp_path / "DIV2K-sub"
    assert sorted(p.name for p in dest.glob("*.png")) == ["0001_s001.png", "0001_s002.png", "0002_s001.png", "0002_s002.png"]
    hr = np.asarray(Image.open(src / "0002.png"))
    assert np.array_equal(np.asarray(Image.open(dest / "0002_s002.png")), hr[120:600, 0:480])
    assert verify("DIV2K-sub", tmp_path).ok

    monkeypatch.setattr(subimages, "cut", lambda *a, **k: pytest.fail("the cached sub-images should have been reused"))
    assert subimages.ensure_subimages(tmp_path, log=lambda *a: None) == dest
    monkeypatch.undo()

    _image(src / "0001.png", 77, size=(600, 500))  # another source image: another key
    assert subimages.ensure_subimages(tmp_path, log=lambda *a: None) != dest
    assert not list((tmp_path / "DIV2K-sub").glob(".*"))  # no temp folders left

    Image.fromarray(np.zeros((480, 480, 3), np.uint8)).save(dest / "0001_s001.png")
    report = verify("DIV2K-sub", tmp_path)
    assert report.state == "problems" and report.corrupted == [f"{dest.name}/0001_s001.png"]


def test_div2k_sub_is_a_training_dataset_name(tmp_path):
    _div2k(tmp_path)
    data._load_cached.cache_clear()
    with pytest.raises(HyperbenchError, match="798 missing"):  # the source is checked first
        data.load_dataset("DIV2K-sub", tmp_path)
    images = data.load_dataset("DIV2K-sub", tmp_path, verify=False)
    assert [im.name for im in images] == ["0001_s001", "0001_s002", "0002_s001", "0002_s002"]
    assert images[0].pixels.shape == (480, 480, 3) and images[0].size == (480, 480)
    luma = data.load_dataset("DIV2K-sub", tmp_path, colour="luma", verify=False)
    assert luma[0].pixels.shape == (480, 480)
    # lazily read images give the patches eagerly held ones give
    eager = [data.Image(im.name, im.pixels) for im in images]
    a = data.PatchSampler(images, 96).sample(6, np.random.default_rng(1))
    b = data.PatchSampler(eager, 96).sample(6, np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert download.prepare("DIV2K-sub", tmp_path, log=lambda *a: None).ok
    data._load_cached.cache_clear()
