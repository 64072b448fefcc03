"""Figures: what they draw is the stored numbers, and no two of their texts overlap (every figure the
suite saves is checked; pyproject's filterwarnings makes an overlap an error in every test)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bench.reports.figures import FigureLayoutWarning, pyplot, save_figure, text_overlaps
from bench.reports.tuning import all_entries_figure, fig5_figure


def test_overlapping_title_and_tick_labels_are_found_and_reported(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    ax.set_title("a title pushed down onto the tick labels", y=-0.1)
    clashes = text_overlaps(fig)
    assert clashes and all("axes 0 title" in c for c in clashes) and any("x tick" in c for c in clashes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FigureLayoutWarning)
        with pytest.raises(FigureLayoutWarning, match="bad: overlapping texts: axes 0 title"):
            save_figure(fig, tmp_path / "bad")
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.set_title("a title in its place")
    fig.suptitle("and a suptitle above it")
    assert text_overlaps(fig) == []
    plt.close("all")


def _tuned(rng):
    rows = []
    for task, model, levels in (("dejpeg", "hyperres", (10, 30, 50)), ("denoise", "adafm", (25, 50)), ("sr", "hyperres", (2, 4))):
        for level in levels:
            for image in ("a", "b", "c"):
                best = level * rng.uniform(0.8, 1.2)
                rows.append({"task": task, "model": model, "level": level, "image": image, "dataset": "LIVE1", "best": best,
                             "reference": level, "lo": level * 0.5, "hi": level * 1.5, "control_name": "input level"})
    return pd.DataFrame(rows)


def test_fig5_draws_hyperres_dejpeg_true_and_best_levels():
    """The paper's Fig 5: per JPEG quality, a bar at the true level and one at the mean best input level."""
    optimal = _tuned(np.random.default_rng(0))
    fig = fig5_figure(optimal)
    (ax,) = fig.axes
    bars = [p.get_height() for p in ax.patches]
    sub = optimal[(optimal.task == "dejpeg") & (optimal.model == "hyperres")]
    means = sub.groupby("level").best.mean()
    assert bars == pytest.approx([10, 30, 50] + list(means.values))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "30", "50"]
    assert "HyperRes, dejpeg (LIVE1, 3 images)" in ax.get_title()
    assert text_overlaps(fig) == []
    grid = all_entries_figure(optimal)
    assert len([a for a in grid.axes if a.axison]) == 3 and text_overlaps(grid) == []
    pyplot().close("all")


def test_psnr_figure_draws_the_stored_results(tmp_path):
    from bench.reports.tables import psnr_figure
    from bench.training.profiles import load_profile

    profile = load_profile("smoke")
    rows = [{"profile": "smoke", "model": m, "task": "denoise", "metric": "psnr", "level": lv, "value": v}
            for m, base in (("hyperres", 30.0), ("degraded-input", 20.0), ("perlevel", 30.5), ("adafm", 29.0), ("hinet", 28.0), ("dni", 27.0))
            for lv, v in zip((25, 65), (base, base - 5))]
    fig = psnr_figure(profile, "denoise", pd.DataFrame(rows))
    lines = {line.get_label(): line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}
    assert list(lines["HyperRes (ours)"].get_ydata()) == [30.0, 25.0]
    colours = [line.get_color() for line in lines.values()]
    assert len(set(colours)) == len(colours) == 6  # every entry tells apart from the others, HyperRes red as elsewhere
    assert lines["HyperRes (ours)"].get_color() == "tab:red"
    assert list(lines["Degraded input (ours)"].get_xdata()) == [25, 65] and list(lines["Degraded input (ours)"].get_ydata()) == [20.0, 15.0]
    assert text_overlaps(fig) == []
    pyplot().close("all")


def test_a_regenerated_figure_keeps_its_bytes(tmp_path):
    """No creation date in the PDF: regenerating unchanged results leaves the committed figures untouched."""
    written = []
    for name in ("first", "second"):
        fig, ax = pyplot().subplots()
        ax.plot([0, 1, 2], [1, 3, 2])
        written.append(save_figure(fig, tmp_path / name))
    for a, b in zip(*written):
        assert a.suffix == b.suffix and a.read_bytes() == b.read_bytes()
    assert b"/CreationDate" not in written[0][1].read_bytes()  # the same bytes however far apart the two are made
