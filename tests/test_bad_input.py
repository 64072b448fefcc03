"""Bad input through the real CLI entry point (bench.apps.cli.main, in-process so it stays fast): each case
gives one message naming the problem and the fix, exits 2, and leaves no partial files behind (no
results, no tables, no finished-looking or half-written checkpoints)."""

import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bench.data.loading
from bench.apps.cli import main
from bench.common.checkpoint import load_pth, save_tensors
from bench.common.errors import HyperbenchError
from bench.data.loading import load_dataset
from bench.models.catalog import create_model
from bench.training.profiles import expand, load_profile
from bench.training.runs import RunDir

PROFILE = """
name: bad
seed: 0
train: {{steps: 4, batch: 2, crop: {crop}, lr: {lr}, checkpoint_every: 2}}
models:
  {model}: {{meta_blocks: 1, width: 8}}
tasks:
  {task}:
    train_dataset: skimage-train
    eval_dataset: {eval_dataset}
    train_levels: [15]
    eval_levels: [{eval_level}]
    options: {options}
"""
GOOD = dict(crop=16, lr="1.0e-3", model="hyperres", task="denoise", eval_dataset="skimage-eval", eval_level=25, options="{}")


def write_profile(folder: Path, **changes) -> str:
    path = folder / "bad.yaml"
    path.write_text(PROFILE.format(**{**GOOD, **changes}))
    return str(path)


def run_cli(capsys, monkeypatch, folder: Path, *args) -> tuple[int, str]:
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["hyperbench", *args, "--runs-dir", "runs", "--results-dir", "results", "--tables-dir", "tables"])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    return exc.value.code, " ".join((captured.out + captured.err).split())


def assert_nothing_half_written(folder: Path) -> None:
    assert not (folder / "results").exists(), "results written"
    assert not (folder / "tables").exists(), "tables written"
    assert not list(folder.rglob("*.tmp")), "temporary files left"
    for run in (folder / "runs").glob("*") if (folder / "runs").exists() else []:
        assert not (run / "done").exists() and not (run / "model.safetensors").exists(), f"{run} looks finished"


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def dataset_with_manifest(monkeypatch, root: Path, files: dict[str, bytes], name: str = "Set5") -> None:
    """A data root holding `name` with these files, and a manifest whose checksums match them (so the
    files pass verification and reach the decoder and the evaluation checks)."""
    folder = root / name
    folder.mkdir(parents=True)
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    real = bench.data.loading.manifest()
    fake = {**real, name: {"count": len(files), "files": {f: hashlib.sha256(d).hexdigest() for f, d in files.items()}, "source": "test"}}
    monkeypatch.setattr(bench.data.loading, "manifest", lambda: fake)


# (what is wrong, profile changes or None for the default, CLI command, words the message must contain)
PROFILE_CASES = [
    ("unknown model", dict(model="hypernet"), "reproduce", "unknown model 'hypernet'"),
    ("unknown task", dict(task="deblur"), "reproduce", "unknown task 'deblur'"),
    ("level outside the valid range", dict(eval_level=300), "reproduce", "denoise level 300 is outside the valid range"),
    ("odd crop size", dict(crop=33), "reproduce", "train.crop = 33 is not an even number"),
    ("tiny crop size", dict(crop=2), "train", "train.crop = 2 is not an even number of pixels >= 8"),
    ("crop larger than every training image", dict(crop=4096), "train", "no training image is at least 4096x4096"),
    ("learning rate YAML reads as text", dict(lr="1e-3"), "train", "train.lr = '1e-3' is not a positive number (YAML 1.1 reads 1e-3"),
    ("unknown degradation option", dict(options="{quantize: floor}"), "reproduce", "unknown denoise degradation option 'quantize'"),
    ("bad degradation option value", dict(options="{quantise: flor}"), "reproduce", "degradation options"),
    ("unknown dataset", dict(eval_dataset="CBSD86"), "eval", "unknown dataset 'CBSD86'"),
]


@pytest.mark.parametrize("what,changes,command,message", PROFILE_CASES, ids=[c[0] for c in PROFILE_CASES])
def test_bad_profile(what, changes, command, message, tmp_path, capsys, monkeypatch):
    profile = write_profile(tmp_path, **changes)
    code, text = run_cli(capsys, monkeypatch, tmp_path, command, "--profile", profile)
    assert code == 2 and message in text and "fix:" in text, text
    assert "Traceback" not in text
    assert_nothing_half_written(tmp_path)
    assert not (tmp_path / "runs").exists()  # settings are checked before any run folder is made


def test_malformed_profile_yaml(tmp_path, capsys, monkeypatch):
    (tmp_path / "bad.yaml").write_text("name: bad\ntrain: {steps: 4, batch: [2\nmodels:\n  - hyperres\n")
    code, text = run_cli(capsys, monkeypatch, tmp_path, "reproduce", "--profile", "bad.yaml")
    assert code == 2 and "is not valid YAML" in text and "fix the YAML syntax" in text
    assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("device,message", [("gpu", "unknown device 'gpu' (--device)"),
                                            ("cuda:0", "device cuda:0 asked for (--device) but torch sees no CUDA device")])
def test_unknown_or_missing_device(device, message, tmp_path, capsys, monkeypatch):
    """One check of a named device for reproduce, train and eval (and perf, its own entry): before any work."""
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.delenv("HYPERBENCH_DEVICE", raising=False)
    code, text = run_cli(capsys, monkeypatch, tmp_path, "reproduce", "--profile", write_profile(tmp_path), "--device", device)
    assert code == 2 and message in text and "fix:" in text and "Traceback" not in text, text
    assert_nothing_half_written(tmp_path)
    assert not (tmp_path / "runs").exists()


def test_nan_loss_stops_training_and_leaves_the_run_unfinished(tmp_path, capsys, monkeypatch):
    profile = write_profile(tmp_path, lr="1.0e+9")
    code, text = run_cli(capsys, monkeypatch, tmp_path, "reproduce", "--profile", profile)
    assert code == 2 and "training loss became nan" in text and "lower the learning rate" in text, text
    assert_nothing_half_written(tmp_path)
    (run,) = (tmp_path / "runs").iterdir()  # kept: its config and log say what diverged; never taken for done
    assert "training loss became nan" in (run / "log.jsonl").read_text()


@pytest.mark.parametrize("folder_state,message", [("missing", "is missing"), ("empty", "holds no images")])
def test_missing_or_empty_dataset_folder(folder_state, message, tmp_path, capsys, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    if folder_state == "empty":
        (root / "Set5").mkdir()
    profile = write_profile(tmp_path, eval_dataset="Set5")
    code, text = run_cli(capsys, monkeypatch, tmp_path, "eval", "--profile", profile, "--data-root", str(root))
    assert code == 2 and message in text and "fix:" in text, text
    assert_nothing_half_written(tmp_path)


def test_checksum_mismatch_names_the_corrupted_files(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "data" / "Set5"
    folder.mkdir(parents=True)
    for name in bench.data.loading.manifest()["Set5"]["files"]:
        (folder / name).write_bytes(png_bytes(np.zeros((32, 32, 3), np.uint8))[:40])  # truncated files under the right names
    profile = write_profile(tmp_path, eval_dataset="Set5")
    code, text = run_cli(capsys, monkeypatch, tmp_path, "eval", "--profile", profile, "--data-root", str(tmp_path / "data"))
    assert code == 2 and "does not match its checksum manifest" in text and "5 corrupted" in text and "baby.png" in text, text
    assert_nothing_half_written(tmp_path)


def test_truncated_image_that_passes_its_checksum(tmp_path, capsys, monkeypatch):
    good = png_bytes(np.full((32, 32, 3), 90, np.uint8))
    dataset_with_manifest(monkeypatch, tmp_path / "data", {"a.png": good, "b.png": good[: len(good) // 2]})
    profile = write_profile(tmp_path, eval_dataset="Set5")
    code, text = run_cli(capsys, monkeypatch, tmp_path, "eval", "--profile", profile, "--data-root", str(tmp_path / "data"))
    assert code == 2 and "cannot decode image" in text and "b.png" in text and "truncated" in text, text
    assert_nothing_half_written(tmp_path)


def test_tiny_evaluation_image_is_rejected_before_the_networks(tmp_path, capsys, monkeypatch):
    files = {"big.png": png_bytes(np.full((32, 32, 3), 90, np.uint8)), "tiny.png": png_bytes(np.full((9, 7, 3), 90, np.uint8))}
    dataset_with_manifest(monkeypatch, tmp_path / "data", files)
    profile = write_profile(tmp_path, eval_dataset="Set5")
    code, text = run_cli(capsys, monkeypatch, tmp_path, "eval", "--profile", profile, "--data-root", str(tmp_path / "data"))
    assert code == 2 and "image tiny of Set5 is 9x7" in text and "at least 11x11" in text, text  # not "run ... is not trained"
    assert_nothing_half_written(tmp_path)


def test_gray_images_in_an_rgb_set_are_replicated_and_gray_tensors_are_refused(tmp_path, monkeypatch):
    gray = png_bytes(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)))
    dataset_with_manifest(monkeypatch, tmp_path / "data", {"gray.png": gray}, name="CBSD68")
    (image,) = load_dataset("CBSD68", tmp_path / "data", colour="rgb")
    assert image.pixels.shape == (32, 32, 3)  # as the papers' loaders do for gray files in colour sets
    model = create_model("hyperres", meta_blocks=1, width=8, in_channels=3)
    with pytest.raises(HyperbenchError, match=r"built for 3 input channel\(s\) \(RGB\) but got 1") as exc:
        model(torch.rand(1, 1, 16, 16), 25.0)
    assert "in_channels=1" in exc.value.fix


def test_odd_image_size_is_refused_by_the_model_api():
    model = create_model("hyperres", meta_blocks=1, width=8)
    with pytest.raises(HyperbenchError, match="needs even height and width") as exc:
        model(torch.rand(1, 3, 17, 16), 25.0)
    assert "modcrop" in exc.value.fix


def test_truncated_image_through_the_loader_without_verification(tmp_path):
    folder = tmp_path / "Set5"
    folder.mkdir()
    (folder / "baby.png").write_bytes(png_bytes(np.zeros((32, 32, 3), np.uint8))[:60])
    with pytest.raises(HyperbenchError, match="cannot decode image .*baby.png"):
        load_dataset("Set5", tmp_path, verify=False)


def _trained_looking_run(tmp_path: Path, width: int) -> RunDir:
    """The profile's run folder, marked done, but holding weights of another width."""
    profile = load_profile(write_profile(tmp_path))
    (entry,) = expand(profile)
    rundir = RunDir(tmp_path / "runs", entry.runs[0])
    rundir.create()
    save_tensors(rundir.model_file, create_model("hyperres", meta_blocks=1, width=width).state_dict())
    rundir.mark_done({"final_loss": 0.1, "steps": 4})
    return rundir


def test_checkpoint_of_another_architecture(tmp_path, capsys, monkeypatch):
    _trained_looking_run(tmp_path, width=16)
    code, text = run_cli(capsys, monkeypatch, tmp_path, "eval", "--profile", "bad.yaml")
    assert code == 2 and "does not fit this model" in text and "with other shapes" in text and "and train again" in text, text
    assert not (tmp_path / "results").exists() and not (tmp_path / "tables").exists()


def test_damaged_checkpoint(tmp_path, capsys, monkeypatch):
    rundir = _trained_looking_run(tmp_path, width=8)
    rundir.model_file.write_bytes(rundir.model_file.read_bytes()[:100])
    code, text = run_cli(capsys, monkeypatch, tmp_path, "eval", "--profile", "bad.yaml")
    assert code == 2 and "cannot read checkpoint" in text and "delete the run folder" in text, text
    assert not (tmp_path / "results").exists()


class _Payload:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pth_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(2), "x": _Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(HyperbenchError, match="refused to load") as exc:
        load_pth(path)
    assert "state dict" in exc.value.fix
    assert not marker.exists(), "the pickle's code ran"

    # a plain state dict loads (the refusal is about code, not about .pth files)
    torch.save({"module.conv.weight": torch.ones(2)}, tmp_path / "ok.pth")
    assert torch.equal(load_pth(tmp_path / "ok.pth")["conv.weight"], torch.ones(2))
