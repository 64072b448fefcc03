"""Optimal input level search, its settings, the tuning reports and the tune step of a smoke profile."""

import numpy as np
import pandas as pd
import pytest
import torch

from bench.apps.reproduce import Paths
from bench.common.errors import HyperbenchError
from bench.models.catalog import create_model
from bench.reports.tuning import deviation_table
from bench.tasks.task import get_task
from bench.training.profiles import load_profile
from bench.tuning.search import is_unimodal, maximise, parabola_vertex
from bench.tuning.tune import TuneSettings, control_bracket, psnr_of_controls, tune_profile, tune_settings


def _counted(fn):
    calls = []

    def f(xs):
        calls.extend(xs)
        return [fn(x) for x in xs]

    return f, calls


@pytest.mark.parametrize("peak", [12.9, 20.0, 25.3, 31.7, 36.0])
def test_search_finds_a_smooth_peak_with_a_quarter_of_the_grid(peak):
    f, calls = _counted(lambda x: 30 - 0.004 * (x - peak) ** 2 - 0.0001 * (x - peak) ** 3)
    lo, hi, grid = 12.5, 37.5, 41
    search = maximise(f, lo, hi, grid=grid)
    step = (hi - lo) / (grid - 1)
    xs = np.linspace(lo, hi, grid)
    grid_best = xs[np.argmax([30 - 0.004 * (x - peak) ** 2 - 0.0001 * (x - peak) ** 3 for x in xs])]
    assert search.method == "parabolic"
    assert abs(search.best - grid_best) <= step
    assert search.forwards == len(set(calls)) <= grid / 4


def test_peak_beyond_the_bracket_ends_on_its_edge():
    f, _ = _counted(lambda x: -abs(x - 100.0))
    search = maximise(f, 0.0, 10.0, grid=41)
    assert search.best == pytest.approx(10.0, abs=0.25) and search.forwards <= 10


def test_two_peaks_fall_back_to_the_grid():
    def bimodal(x):
        return max(np.exp(-((x - 3) ** 2)), 2 * np.exp(-((x - 8.5) ** 2)))

    f, calls = _counted(bimodal)
    search = maximise(f, 0.0, 10.0, grid=41, probes=5)
    assert search.method == "grid" and search.forwards == 41 == len(calls)  # the 5 probes are grid points: not redone
    assert search.best == pytest.approx(8.5, abs=0.25)
    f, calls = _counted(lambda x: bimodal(x - 0.123))  # a bracket whose points are not round numbers
    search = maximise(f, 0.123, 10.123, grid=41, probes=5)
    assert search.method == "grid" and search.forwards == 41 == len(calls)  # the 5 probes are grid points: not redone
    assert search.best == pytest.approx(8.623, abs=0.25)


def test_unimodality_and_parabola_helpers():
    assert is_unimodal([1, 2, 3, 2, 1], 0) and is_unimodal([1, 1, 1], 0) and is_unimodal([3, 2, 1], 0)
    assert not is_unimodal([1, 3, 2, 3, 1], 0.5)
    assert is_unimodal([1, 3, 2.999, 3.2, 1], 0.01)  # a dip below eps is noise
    assert parabola_vertex(0, -4, 1, -1, 5, -9) == pytest.approx(2.0)  # -(x - 2)^2
    assert parabola_vertex(0, 0, 1, 1, 2, 2) is None


class _Lambda(torch.nn.Module):
    """A stand-in modulated model: control = (level - 15) / 60 (AdaFM-like lambda), limited to [0, 1]."""

    control_name = "lambda"
    control_range = (0.0, 1.0)

    def control_for(self, level):
        return (level - 15.0) / 60.0


def test_brackets_in_level_and_control_units():
    hyperres = create_model("hyperres", meta_blocks=1, width=4)
    denoise, dejpeg, sr = get_task("denoise"), get_task("dejpeg"), get_task("sr")
    assert control_bracket(hyperres, denoise, 25, 0.5) == (25, 12.5, 37.5)
    assert control_bracket(hyperres, denoise, 5, 0.5) == (5, 0, 10)  # minimum half-width, clipped at 0
    assert control_bracket(hyperres, dejpeg, 80, 0.5) == (80, 40, 100)  # clipped to quality 100
    assert control_bracket(hyperres, sr, 4, 0.5) == (4, 2, 6)
    ref, lo, hi = control_bracket(_Lambda(), denoise, 25, 0.5)
    assert ref == pytest.approx(10 / 60) and lo == 0.0 and hi == pytest.approx(22.5 / 60)


def test_batched_controls_equal_one_call_per_control():
    torch.manual_seed(0)
    model = create_model("hyperres", meta_blocks=2, width=8).eval()
    for p in model.parameters():  # visible level dependence
        p.data.add_(0.05 * torch.randn_like(p))
    clean = (np.random.default_rng(0).random((32, 24, 3)) * 255).astype(np.uint8)
    x = torch.rand(1, 3, 32, 24)
    spec = get_task("denoise").metric
    controls = [5.0, 20.0, 35.0, 50.0, 65.0]
    batched = psnr_of_controls(model, x, clean, spec, controls, batch=4)
    single = psnr_of_controls(model, x, clean, spec, controls, batch=1)
    assert batched == pytest.approx(single, abs=1e-3)
    assert len(set(np.round(single, 4))) > 1


def test_tune_section_errors_are_clear():
    profile = load_profile("smoke")
    profile.tune = {"imgs": 3}
    with pytest.raises(HyperbenchError, match="unknown keys"):
        tune_settings(profile)
    for bad in ({"window": 0}, {"window": "wide"}, {"grid": 4}, {"probes": 50}, {"images": 0}, {"blind": {"crops": 0}}):
        profile.tune = bad
        with pytest.raises(HyperbenchError, match="tune section"):
            tune_settings(profile)
    profile.tune = {"levels": {"denoise": [300]}}
    with pytest.raises(HyperbenchError, match="outside the valid range"):
        tune_settings(profile)
    profile.tune = {"estimator": {"weights": "mine"}}
    with pytest.raises(HyperbenchError, match="official"):
        tune_settings(profile)
    assert tune_settings(load_profile("quick")).blind["images"] == 24


def test_deviation_table_statistics():
    frame = pd.DataFrame({
        "task": "denoise", "model": "m", "control_name": "input level", "dataset": "d", "image": ["a", "b", "a", "b"],
        "level": [10.0, 10.0, 50.0, 50.0], "reference": [10.0, 10.0, 50.0, 50.0], "best": [12.0, 9.0, 45.0, 50.0],
        "psnr_reference": [30.0, 31.0, 25.0, 26.0], "psnr_best": [30.5, 31.0, 25.2, 26.0], "forwards": [7, 8, 6, 9],
        "method": ["parabolic", "parabolic", "grid", "parabolic"], "at_edge": [False, False, True, False], "lo": 0.0, "hi": 1.0,
    })
    table = deviation_table(frame).set_index("level")
    assert table.mean_abs_dev["10"] == pytest.approx(1.5) and table.mean_dev["10"] == pytest.approx(0.5)
    assert table.mean_rel_dev_pct["50"] == pytest.approx(5.0) and table.best_std["50"] == pytest.approx(2.5)
    assert table.mean_abs_dev["all"] == pytest.approx(2.0) and table.gain_db["all"] == pytest.approx(0.175)
    assert table.grid_fallbacks["all"] == 1 and table.at_edge["all"] == 1 and table.n["all"] == 4


@pytest.fixture(scope="module")
def smoke_denoise(tmp_path_factory):
    """The smoke HyperRes trained for denoising (seconds), shared by the tune-step tests."""
    from bench.apps.reproduce import train_all
    from bench.training.profiles import expand

    tmp = tmp_path_factory.mktemp("tune")
    paths = Paths(runs=tmp / "runs", results=tmp / "results", tables=tmp / "tables")
    profile = load_profile("smoke")
    train_all(expand(profile, ["denoise"], ["hyperres"]), paths, log=lambda *a: None)
    return profile, paths


def test_tune_step_writes_fig5_and_tables(smoke_denoise):
    profile, paths = smoke_denoise
    settings = TuneSettings(images=1, levels={"denoise": [25.0, 50.0]}, blind={"images": 1, "levels": [25.0], "crops": 1},
                            estimator={"weights": "train", "steps": 2, "batch": 2})
    logs = []
    written = tune_profile(profile, paths, ["denoise"], ["hyperres"], log=logs.append, settings=settings)
    names = {p.name for p in written}
    assert {"fig5_optimal_input_level.png", "fig5_optimal_input_level.pdf", "optimal_input_level.md", "optimal_input_level.csv",
            "blind_denoise.md", "noise_estimator_accuracy.md", "tuning.md", "fig_oracle_vs_linear_control.png"} <= names
    assert "'oracle' = the control that maximises" in (paths.tables_dir("smoke") / "optimal_input_level.md").read_text()
    table = pd.read_csv(paths.tables_dir("smoke") / "optimal_input_level.csv")
    assert list(table.level.astype(str)) == ["25", "50", "all"]
    assert (table.forwards_mean <= 41 / 4).all() and (table.psnr_best >= table.psnr_reference - 1e-9).all()
    blind = (paths.tables_dir("smoke") / "blind_denoise.md").read_text()
    assert "trained here" in blind and "NOT the official" in blind
    accuracy = (paths.tables_dir("smoke") / "noise_estimator_accuracy.md").read_text()
    assert "within ±2" in accuracy and "98.23" in accuracy and "without defining it" in accuracy
    again = []
    tune_profile(profile, paths, ["denoise"], ["hyperres"], log=again.append, settings=settings)
    assert sum("already done" in line for line in again) == 2  # optimal-level rows and blind rows are cached


def test_tune_needs_trained_runs(tmp_path):
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables")
    with pytest.raises(HyperbenchError, match="not trained"):
        tune_profile(load_profile("smoke"), paths, ["sr"], ["hyperres"], log=lambda *a: None)
    assert not (tmp_path / "tables").exists()
