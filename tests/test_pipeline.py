"""The smoke reproduction end to end: training, run skipping, results, tables, determinism."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bench.apps.reproduce import Paths, reproduce
from bench.evaluation.results import COLUMNS
from bench.training.profiles import expand, load_profile
from bench.training.runs import RunDir


def _paths(tmp):
    return Paths(runs=tmp / "runs", results=tmp / "results", tables=tmp / "tables")


@pytest.fixture(scope="module")
def smoke_sr(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    profile = load_profile("smoke")
    out = reproduce(profile, _paths(tmp), tasks=["sr"], log=lambda *a: None)
    return tmp, profile, out


def test_results_are_tidy_and_complete(smoke_sr):
    tmp, profile, out = smoke_sr
    df = pd.read_csv(out["results"])
    assert list(df.columns) == COLUMNS
    levels = profile.task_cfg("sr")["eval_levels"]
    for model in ("hyperres", "perlevel", "degraded-input"):
        sub = df[(df.model == model) & (df.metric == "psnr")]
        assert sorted(sub.level) == sorted(levels), model
    assert (df.metric_spec == "y|crop0|ssim11g1.5|mean|yround").all()  # the official HyperRes Y (rounded)
    assert df.versions.str.contains("torch").all() and (df.seed == 0).all()
    bank = df[(df.model == "perlevel") & (df.metric == "psnr")].set_index("level")
    assert bank.input_level[3.0] in (2.0, 4.0)  # nearest trained level is recorded


def test_tables_and_figures_written(smoke_sr):
    tmp, profile, out = smoke_sr
    names = {p.name for p in out["tables"]}
    assert {"table3_sr.md", "table3_sr.tex", "table3_sr.csv", "params.md", "fig_psnr_vs_level_sr.png", "fig_psnr_vs_level_sr.pdf"} <= names
    md = (tmp / "tables" / "smoke" / "table3_sr.md").read_text()
    assert "ours − paper" in md and "Metric spec" in md and "scikit-image sample images" in md
    assert "Published values not shown" in md and "Set5" in md  # smoke evaluates on other images than the paper
    tex = (tmp / "tables" / "smoke" / "table3_sr.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    table = pd.read_csv(tmp / "tables" / "smoke" / "table3_sr.csv")
    row = table[(table.model == "hyperres") & (table.metric == "psnr") & (table.level.astype(str) == "2")].iloc[0]
    assert math.isnan(row.published) and math.isnan(row.delta)


def test_finished_runs_are_skipped(smoke_sr):
    tmp, profile, out = smoke_sr
    entries = expand(profile, ["sr"])
    stamps = {r.run_id: RunDir(tmp / "runs", r).model_file.stat().st_mtime_ns for e in entries for r in e.runs}
    lines = []
    reproduce(profile, _paths(tmp), tasks=["sr"], log=lines.append)
    assert any("0 to train" in line for line in lines)
    assert any("already done" in line for line in lines)
    assert stamps == {r.run_id: RunDir(tmp / "runs", r).model_file.stat().st_mtime_ns for e in entries for r in e.runs}


def test_same_config_and_seed_give_identical_metrics(smoke_sr, tmp_path):
    tmp, profile, out = smoke_sr
    again = reproduce(profile, _paths(tmp_path), tasks=["sr"], log=lambda *a: None)
    a = pd.read_csv(out["results"]).sort_values(["model", "level", "metric"]).value.to_numpy()
    b = pd.read_csv(again["results"]).sort_values(["model", "level", "metric"]).value.to_numpy()
    assert len(a) == len(b)
    assert (a == b).all(), [(x, y) for x, y in zip(a, b) if x != y]


def test_run_ids_depend_on_config_only():
    profile = load_profile("smoke")
    a = [r.run_id for e in expand(profile, ["denoise"]) for r in e.runs]
    b = [r.run_id for e in expand(load_profile("smoke"), ["denoise"]) for r in e.runs]
    assert a == b and len(set(a)) == len(a)
    profile.train = {**profile.train, "steps": 41}
    assert not set(a) & {r.run_id for e in expand(profile, ["denoise"]) for r in e.runs}


def test_results_are_the_per_image_means_of_an_independently_computed_metric(smoke_sr):
    """Every results row is the mean of the stored per-image rows, and those equal PSNR/SSIM computed here
    with scikit-image on the model's own outputs for the same inputs (the MATLAB Y, rounded: the spec)."""
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from bench.data.images import modcrop, to_tensor, to_uint8
    from bench.data.loading import load_dataset
    from bench.evaluation.evaluate import assemble
    from bench.evaluation.inputs import degraded_input
    from bench.tasks.task import get_task

    tmp, profile, out = smoke_sr
    results = pd.read_csv(out["results"])
    per_image = pd.concat([pd.read_csv(f, dtype={"image": str}) for f in (tmp / "results" / "per_image").glob("sr-*.csv")])
    for row in results.itertuples():
        rows = per_image[(per_image.model == row.model) & (per_image.level == row.level)]
        assert len(rows) == row.n_images and row.value == pytest.approx(rows[row.metric].mean(), rel=1e-12), row
    task, tcfg = get_task("sr"), profile.task_cfg("sr")
    entry = expand(profile, ["sr"], ["hyperres"])[0]
    model = assemble(entry, tmp / "runs")
    level = 3.0  # sides not divisible by 3: the official resize and crop order matter
    ours = per_image[(per_image.model == "hyperres") & (per_image.level == level)].set_index("image")
    images = load_dataset(tcfg["eval_dataset"], colour=task.channels)
    assert len(images) == len(ours)
    for image in images:
        x = degraded_input(task, image.pixels, image.name, level, profile.seed, tcfg["options"])
        with torch.no_grad():
            restored = to_uint8(model(to_tensor(x), level))
        y_out, y_ref = (np.round(rgb2ycbcr(im)[..., 0]) for im in (restored, modcrop(image.pixels, 2)))
        assert ours.psnr[image.name] == pytest.approx(peak_signal_noise_ratio(y_ref, y_out, data_range=255), abs=1e-6)
        expected_ssim = structural_similarity(y_ref, y_out, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert ours.ssim[image.name] == pytest.approx(expected_ssim, abs=1e-6)


def test_budget_figure_evaluates_the_snapshots_along_training(smoke_sr):
    """Each joint run keeps its weights at 1/4, 1/2 and all of its steps; the budget rows evaluate them on the
    first images, with compute growing with the fraction, and the last snapshot is the final model."""
    from bench.evaluation.results import per_image_file

    tmp, profile, out = smoke_sr
    entries = [e for e in expand(profile, ["sr"]) if e.model in ("hyperres", "perlevel")]
    for run in (r for e in entries for r in e.runs):
        assert sorted(p.name for p in RunDir(tmp / "runs", run).path.glob("snapshot-*")) == [
            "snapshot-0000010.safetensors", "snapshot-0000020.safetensors", "snapshot-0000040.safetensors"]
    assert {"fig_budget_sr.png", "fig_budget_sr.pdf"} <= {p.name for p in out["tables"]}
    (cache,) = (tmp / "results" / "smoke" / "budget").glob("sr-*.csv")
    rows = pd.read_csv(cache)
    hyper = rows[rows.model == "hyperres"].sort_values("fraction")
    assert list(hyper.fraction) == [0.25, 0.5, 1.0] and hyper.train_flops.is_monotonic_increasing and (hyper.images == 2).all()
    final = pd.read_csv(per_image_file(tmp / "results" / "per_image", profile, "sr", entries[0]), dtype={"image": str})
    first_two = final[final.image.isin(sorted(final.image.unique(), key=list(final.image.unique()).index)[:2])]
    levels = [float(v) for v in hyper.levels.iloc[0].split()]
    assert hyper.psnr.iloc[-1] == pytest.approx(first_two[first_two.level.isin(levels)].psnr.mean(), abs=1e-9)
