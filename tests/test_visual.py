"""Visual comparison figures (fig_visual_<task>): each crop drawn is that region of the output the model gives when the
test recomputes it, each label's PSNR/SSIM is the table's metric on that crop, the written rule picks the window of
largest difference, a profile's `visual:` section is honoured and a bad one is a clear error, and 9 entries fit."""

import dataclasses

import numpy as np
import pytest
import torch

from bench.apps.reproduce import Paths, train_all
from bench.common.errors import HyperbenchError
from bench.data.images import modcrop, to_tensor, to_uint8
from bench.data.loading import load_dataset
from bench.evaluation.evaluate import INPUT, assemble
from bench.evaluation.inputs import degraded_input
from bench.metrics.quality import psnr, ssim
from bench.reports.figures import save_figure, text_overlaps
from bench.reports.visual import Panel, Row, Visual, panel_label, visual_figure, visual_rows, write_visual_report
from bench.reports.visual_rule import STRIDE, best_window, visual_settings
from bench.tasks.task import get_task
from bench.training.profiles import expand, load_profile

MODELS = ["hyperres", "perlevel"]  # the pair the rule compares


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The smoke profile's denoising entries trained 2 steps each: the figure needs finished runs, not good ones."""
    tmp = tmp_path_factory.mktemp("visual")
    profile = load_profile("smoke")
    profile.train = {**profile.train, "steps": 2, "lr_milestones": [1], "checkpoint_every": 1}
    paths = Paths(runs=tmp / "runs", results=tmp / "results", tables=tmp / "tables")
    entries = expand(profile, ["denoise"], MODELS)
    train_all(entries, paths, log=lambda *a: None)
    return profile, paths, entries


def _recomputed(profile, paths, entries, image, level):
    """The clean image and every output, made here without the figure's code: the degraded input from its
    definition, each model assembled and given the level evaluation gives it."""
    task, tcfg = get_task("denoise"), profile.task_cfg("denoise")
    im = {i.name: i for i in load_dataset(tcfg["eval_dataset"], colour=task.channels)}[image]
    x = to_tensor(degraded_input(task, im.pixels, im.name, level, profile.seed, tcfg["options"]))
    outputs = {INPUT: to_uint8(x)}
    for e in entries:
        model = assemble(e, paths.runs)
        given = model.nearest_level(level) if hasattr(model, "nearest_level") else level
        with torch.no_grad():
            outputs[e.model] = to_uint8(model(x, given))
    return modcrop(im.pixels, 2), outputs


def test_crops_are_the_model_outputs_and_labels_the_metric_on_them(trained):
    profile, paths, entries = trained
    visual = visual_rows(profile, paths, entries, "denoise")
    assert [r.level for r in visual.rows] == [45.0]  # the middle of the printed levels 5, 25, 45, 65, 85
    spec = dataclasses.replace(get_task("denoise").metric, crop_border=0)
    for row in visual.rows:
        clean, outputs = _recomputed(profile, paths, entries, row.image, row.level)
        window = (slice(row.top, row.top + row.size), slice(row.left, row.left + row.size))
        assert row.size == 96 and np.array_equal(row.whole, clean)
        drawn = {p.name: p for p in row.panels}
        assert list(drawn) == ["clean", INPUT, *MODELS]
        assert np.array_equal(drawn["clean"].pixels, clean[window])
        for name, out in outputs.items():
            panel = drawn[name]
            assert np.array_equal(panel.pixels, out[window]), name
            assert panel.psnr == psnr(out[window], clean[window], spec) and panel.ssim == ssim(out[window], clean[window], spec)
            assert f"PSNR {panel.psnr:.2f} dB, SSIM {panel.ssim:.4f}" in panel.label
        assert "†25" in drawn["perlevel"].label  # the bank answered with its nearest network (25 and 65 are trained)
    assert "largest difference on purpose" in visual.caption and "not by hand" in visual.caption
    assert "where HyperRes and Per-level networks (paper: Baseline) differ most" in visual.caption


def test_the_rule_picks_the_window_of_largest_difference(trained):
    """Brute force over every window of every image agrees with the rule. Without the per-level networks, HyperRes is
    compared with its input (two barely trained networks give the same output, and so no difference to rank)."""
    profile, paths, entries = trained
    hyperres = [e for e in entries if e.model == "hyperres"]
    visual = visual_rows(profile, paths, hyperres, "denoise")
    assert "where HyperRes and its input (degraded input) differ most" in visual.caption
    best = None
    for image in [i.name for i in load_dataset("skimage-eval")]:
        _, out = _recomputed(profile, paths, hyperres, image, 45.0)
        diff = np.abs(out["hyperres"].astype(float) - out[INPUT].astype(float))
        for top in range(0, diff.shape[0] - 96 + 1, STRIDE):
            for left in range(0, diff.shape[1] - 96 + 1, STRIDE):
                score = diff[top : top + 96, left : left + 96].mean()
                if best is None or score > best[0] + 1e-9:  # the first of equals, in reading order
                    best = (score, image, top, left)
    row = visual.rows[0]
    assert (row.image, row.top, row.left) == best[1:]


def test_best_window_keeps_inside_the_border_and_breaks_ties_in_reading_order():
    a, b = np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8)
    assert best_window(a, b, 16, 0, stride=8)[:3] == (0, 0, 16)  # all equal: the first window
    b[2, 60] = 200  # outside a 4 px border
    b[40, 40] = 100
    top, left, side, score = best_window(a, b, 16, 4, stride=8)
    assert (top, left, side) == (28, 28, 16) and score == 100 / 256
    assert best_window(a, b, 96, 4)[2] == 56  # a crop larger than the image shrinks to fit inside the border


def test_the_profiles_visual_section_is_honoured(trained, tmp_path):
    profile, paths, entries = trained
    path = tmp_path / "visual.yaml"
    path.write_text("extends: smoke\nname: smoke-visual\nvisual: {crop: 48, denoise: {images: [chelsea], levels: [25, 65]}}\n")
    named = dataclasses.replace(profile, visual=load_profile(str(path)).visual)
    visual = visual_rows(named, paths, entries, "denoise")
    assert [(r.image, r.level, r.size) for r in visual.rows] == [("chelsea", 25.0, 48), ("chelsea", 65.0, 48)]
    assert "named by the profile" in visual.caption
    clean, outputs = _recomputed(profile, paths, entries, "chelsea", 65.0)
    row = visual.rows[1]
    window = (slice(row.top, row.top + 48), slice(row.left, row.left + 48))
    assert np.array_equal(row.panels[2].pixels, outputs["hyperres"][window])
    unknown = dataclasses.replace(profile, visual={"denoise": {"images": ["chelsey"], "levels": None, "crop": 96}})
    with pytest.raises(HyperbenchError, match="chelsey.*not an image of skimage-eval") as info:
        visual_rows(unknown, paths, entries, "denoise")
    assert "chelsea" in info.value.fix


@pytest.mark.parametrize("raw, problem", [
    ("big", "visual must be a mapping"),
    ({"croop": 96}, "unknown key 'croop'"),
    ({"crop": 8}, "visual.crop is 8"),
    ({"crop": True}, "visual.crop is True"),
    ({"images": []}, "visual.images must be a non-empty list"),
    ({"denoise": {"levels": [50]}}, "visual.denoise.levels has 50, which is not an evaluation level of denoise"),
    ({"levels": [25]}, "visual.levels has 25, which is not an evaluation level of dejpeg"),
    ({"sr": {"crop": 64}}, "visual.sr names a task the profile does not evaluate"),
    ({"denoise": {"image": ["a"]}}, "visual.denoise has an unknown key 'image'"),
])
def test_a_bad_visual_section_is_a_clear_error(raw, problem):
    with pytest.raises(HyperbenchError, match=problem.replace("(", r"\(")) as info:
        visual_settings(raw, "profile p.yaml", {"denoise": [5.0, 25.0, 45.0], "dejpeg": [10.0, 50.0]})
    assert info.value.fix


def test_a_bad_visual_section_fails_when_the_profile_loads(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("extends: smoke\nname: bad\nvisual: {crop: 8}\n")
    with pytest.raises(HyperbenchError, match=r"bad.yaml: visual.crop is 8"):
        load_profile(str(path))


def test_nine_entries_stay_legible(tmp_path):
    def ramp(shape):  # smooth pixels: the check is on the labels, and noise would only slow the PNG and PDF down
        x = np.linspace(0, 255, shape[1]).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(x[:, None] if len(shape) == 3 else x, shape))

    names = ["HyperRes", "Per-level networks (paper: Baseline) †25", "hyperres-1block", "adafm", "cfsnet †65", "dni †85",
             "cresmd", "hinet", "a-third-party-model-with-a-long-name"]
    rows = []
    for image, shape in (("0001", (321, 481, 3)), ("0002", (481, 321))):  # landscape RGB, portrait gray
        crop = ramp((96, 96) + shape[2:])
        panels = [Panel("clean", "Clean (reference)", crop)] + [Panel(n, panel_label(n, 28.31, 0.8123), crop) for n in [INPUT, *names]]
        rows.append(Row(image, 45.0, 16, 32, 96, ramp(shape), panels))
    caption = "Chosen by a written rule, not by hand. " * 12
    fig = visual_figure(Visual("denoise", "Visual comparison — Denoising (AWGN), CBSD68, profile quick", caption, rows))
    assert text_overlaps(fig) == []
    assert all(t.get_fontsize() == 8 for ax in fig.axes if ax.get_visible() for t in [ax.title])
    save_figure(fig, tmp_path / "fig_visual_nine")  # pytest makes a FigureLayoutWarning an error
    unwrapped = visual_figure(Visual("denoise", "t", "c", [dataclasses.replace(rows[0], panels=[
        dataclasses.replace(p, label=p.name + " and a longer name\nPSNR 28.31 dB, SSIM 0.8123") for p in rows[0].panels])]))
    assert text_overlaps(unwrapped)  # the check sees labels that run into each other


def test_reports_draw_it_only_where_the_runs_are(trained, tmp_path):
    profile, paths, entries = trained
    files, md = write_visual_report(profile, paths, entries, log=lambda *a: None)
    assert [f.name for f in files] == ["fig_visual_denoise.png", "fig_visual_denoise.pdf"] and all(f.stat().st_size for f in files)
    assert "![visual comparison](fig_visual_denoise.png)" in md
    assert list((paths.eval_dir() / "visual").glob("denoise-*.json"))  # the choice is cached: `tables` does not scan again
    lines = []
    elsewhere = dataclasses.replace(paths, runs=tmp_path / "no-runs")
    files, md = write_visual_report(profile, elsewhere, entries, log=lines.append)
    assert files == [] and "not drawn: no trained runs" in md[0] and lines
