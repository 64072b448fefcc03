"""The noise estimator: official weights (strict load, accuracy on CBSD68), seeded crops, trainer."""

import json
import math

import pandas as pd
import pytest
import torch

from bench.common.errors import HyperbenchError
from bench.data.loading import load_dataset
from bench.models import noisenet, noisenet_official
from bench.models.catalog import count_params, create_model
from bench.reports.tuning import accuracy_table
from bench.training.profiles import load_profile
from bench.tuning.blind import accuracy_rows, estimator_for
from bench.tuning.tune import TuneSettings


@pytest.fixture
def official():
    path = noisenet_official.official_weights_path()
    if path is None:
        pytest.skip("../shared/reference/weights/hyperres_noise_detect.pth is not on this machine")
    return path


def test_official_weights_load_strictly_with_the_official_count(official, official_counts):
    model = noisenet_official.load_official(official)
    assert count_params(model) == official_counts["HyperRes"]["NoiseNet_noise_detect"]["params"] == 330_561
    assert len(model.state_dict()) == 24


def test_official_estimator_mae_on_cbsd68(official, shared_data):
    """Done criterion: sigma 10..50 on all 68 CBSD68 images, the task's floor-quantised noise, MAE <= 1
    (one seeded 128x128 crop per image, as the official forward, to stay fast)."""
    model = noisenet_official.load_official(official, crops=1)
    images = load_dataset("CBSD68", shared_data)
    rows = accuracy_rows(model, images, [10.0, 20.0, 30.0, 40.0, 50.0], seed=0, options={"clip": True, "quantise": "floor"})
    table = accuracy_table(pd.DataFrame(rows), tolerance=2.0).set_index("level")
    assert table.n["all"] == 68 * 5
    assert table.mae["all"] <= 1.0, table
    assert (table.mae.drop("all") <= 1.5).all(), table


def test_estimates_follow_the_noise_on_sample_images(official):
    model = noisenet_official.load_official(official, crops=2)
    image = load_dataset("skimage-eval")[0]
    rows = accuracy_rows(model, [image], [5.0, 30.0, 60.0], seed=0, options={"clip": True, "quantise": "none"})
    estimates = [r["estimate"] for r in rows]
    assert estimates == sorted(estimates)
    assert all(abs(r["estimate"] - r["level"]) < 3 for r in rows), rows


def test_flushing_the_official_subnormal_weights_leaves_every_estimate_unchanged(official):
    """load_official zeroes the subnormal weights (nearly half the file) for speed; the raw file's weights give the same bits."""
    from bench.common.checkpoint import load_pth, load_state_into

    raw_state = load_pth(official)
    tiny = torch.finfo(torch.float32).tiny
    assert sum(int(((v != 0) & (v.abs() < tiny)).sum()) for v in raw_state.values()) > 100_000  # why the flush exists
    raw = create_model("noisenet", crops=2, seed=0)
    load_state_into(raw, raw_state, str(official))
    flushed = noisenet_official.load_official(official, crops=2)
    assert not any(bool(((v != 0) & (v.abs() < tiny)).any()) for v in flushed.state_dict().values())
    image = load_dataset("skimage-eval")[0]
    levels = [0.0, 5.0, 30.0, 60.0, 100.0]
    with torch.no_grad():
        ours = accuracy_rows(flushed, [image], levels, seed=0, options={"clip": True, "quantise": "floor"})
        theirs = accuracy_rows(raw.eval(), [image], levels, seed=0, options={"clip": True, "quantise": "floor"})
    assert [r["estimate"] for r in ours] == [r["estimate"] for r in theirs]


def test_crops_are_seeded_and_counted():
    torch.manual_seed(0)
    model = create_model("noisenet", width=8, crops=3, seed=0)
    assert model.crop_positions(300, 200) == model.crop_positions(300, 200)
    assert len(model.crop_positions(300, 200)) == 3
    assert all(0 <= t <= 300 - 128 and 0 <= s <= 200 - 128 for t, s in model.crop_positions(300, 200))
    assert model.crop_positions(300, 200) != create_model("noisenet", width=8, crops=3, seed=1).crop_positions(300, 200)
    assert model.crop_positions(128, 128) == [(0, 0)]  # an exact crop is used once
    x = torch.rand(2, 3, 200, 160)
    with torch.no_grad():
        assert torch.equal(model.estimate(x), model.estimate(x))
        one = model.estimate(x[:1])
    manual = torch.stack([model.forward_crops(x[:1, :, t : t + 128, s : s + 128]) for t, s in model.crop_positions(200, 160)]).mean()
    assert one.item() == pytest.approx(manual.item(), abs=1e-5)


def test_small_images_are_mirror_tiled_and_forward_is_a_level_map():
    x = torch.rand(2, 3, 20, 12)
    tiled = noisenet.mirror_tile(x, 32)
    assert tiled.shape == (2, 3, 40, 48)
    assert torch.equal(tiled[..., :20, :12], x) and torch.equal(tiled[..., 20:40, :12], x.flip(-2))
    model = create_model("noisenet", width=8, crop=32, crops=2)
    with torch.no_grad():
        level_map = model(x, 15.0)
        estimate = model.estimate(x)
    assert level_map.shape == x.shape and torch.equal(level_map[:, 0, 0, 0], estimate)


def test_bad_settings_and_files_are_clear(tmp_path):
    with pytest.raises(HyperbenchError, match="multiple of 32"):
        create_model("noisenet", crop=100)
    with pytest.raises(HyperbenchError, match="RGB"):
        create_model("noisenet", width=8).estimate(torch.rand(1, 1, 64, 64))
    with pytest.raises(HyperbenchError, match="not on this machine"):
        noisenet_official.load_official(tmp_path / "absent.pth")
    fake = tmp_path / "noise_detect.pth"
    torch.save(create_model("noisenet").state_dict(), fake)
    with pytest.raises(HyperbenchError, match="not the official"):
        noisenet_official.load_official(fake)


def test_trainer_runs_and_resumes_to_a_loadable_estimator(tmp_path):
    """A tiny estimator training (smoke size) through the run machinery; a second call reuses it."""
    from bench.apps.reproduce import Paths

    profile = load_profile("smoke")
    settings = TuneSettings(blind={"crops": 1}, estimator={"weights": "train", "steps": 3, "batch": 2, "checkpoint_every": 2})
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables")
    logs = []
    model, text, identity = estimator_for(profile, settings, paths, log=logs.append)
    assert any("training a noise estimator" in line for line in logs)
    assert "trained here" in text and "NOT the official" in text and identity.startswith("run:")
    run_dir = paths.runs / identity[4:]
    summary = json.loads((run_dir / "done").read_text())
    assert summary["steps"] == 3 and math.isfinite(summary["final_loss"])
    assert summary["final_loss"] < 60  # L1 in sigma units; targets lie in 0..100
    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if "loss_ema" in line]
    assert logged[-1]["step"] == 3 and logged[-1]["loss_ema"] == pytest.approx(summary["final_loss"])  # the summary is the run's own loss
    with torch.no_grad():
        assert torch.isfinite(model.estimate(torch.rand(1, 3, 128, 128))).all()
    again = []
    estimator_for(profile, settings, paths, log=again.append)
    assert not again  # finished run reused, nothing retrained
