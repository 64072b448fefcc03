"""Reports of the tuning step: Fig 5 (best input level vs true level), the deviation table, the blind
denoising table and the noise estimator's accuracy, as markdown, CSV, PNG and PDF."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.common.atomic import atomic_write_text
from bench.reports.figures import pyplot, save_figure
from bench.tasks.task import get_task

FILES = {"fig": "fig5_optimal_input_level", "fig_all": "fig_optimal_input_level_all", "deviation": "optimal_input_level", "blind": "blind_denoise",
         "accuracy": "noise_estimator_accuracy", "index": "tuning", "oracle": "fig_oracle_vs_linear_control"}
ORACLE_NOTE = ("Control modes: 'linear' = the control the tables and Figs 2-4 use for a level (`control_for`: linear between the two "
               "trained endpoint levels; HyperRes: the level itself); 'oracle' = the control that maximises each image's PSNR, found by "
               "the search below.")
PAPER_FIG5 = ("Paper Fig 5 (deJPEG, LIVE1, HyperRes) shows bars of the best input parameter per true quality and says the "
              "difference is negligible; it prints no numbers, so there is nothing to subtract from ours.")
PAPER_ACCURACY = ("The paper (Sec. 4.4) reports 98.23 % 'average accuracy' for its estimator without defining it (no tolerance, "
                  "classes or test set are given), so that number is not comparable with any accuracy here.")


def _csv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.4f")
    return buf.getvalue()


def _fmt(v, digits=2, signed=False):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _deviation_stats(g: pd.DataFrame) -> dict:
    dev = g.best - g.reference
    rel = (dev.abs() / g.reference.abs()).where(g.reference != 0)
    return {
        "n": len(g), "reference": g.reference.mean(), "best_mean": g.best.mean(), "best_std": g.best.std(ddof=0),
        "best_q25": g.best.quantile(0.25), "best_median": g.best.median(), "best_q75": g.best.quantile(0.75),
        "mean_dev": dev.mean(), "mean_abs_dev": dev.abs().mean(), "mean_rel_dev_pct": 100 * rel.mean(),
        "psnr_reference": g.psnr_reference.mean(), "psnr_best": g.psnr_best.mean(), "gain_db": (g.psnr_best - g.psnr_reference).mean(),
        "forwards_mean": g.forwards.mean(), "grid_fallbacks": int((g.method == "grid").sum()), "at_edge": int(g.at_edge.astype(bool).sum()),
    }


def deviation_table(optimal: pd.DataFrame) -> pd.DataFrame:
    """Per task, model and true level (and 'all' levels): spread of the best control and its deviation."""
    rows = []
    for (task, model), sub in optimal.groupby(["task", "model"], sort=False):
        control = sub.control_name.iloc[0]
        for level, g in sub.groupby("level"):
            rows.append({"task": task, "model": model, "control": control, "level": f"{level:g}", **_deviation_stats(g)})
        rows.append({"task": task, "model": model, "control": control, "level": "all", **_deviation_stats(sub)})
    return pd.DataFrame(rows)


def fig5_rows(optimal: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's Fig 5: HyperRes on deJPEG; else HyperRes on the first task tuned; else none."""
    hyperres = optimal[optimal.model == "hyperres"]
    dejpeg = hyperres[hyperres.task == "dejpeg"]
    return dejpeg if len(dejpeg) else hyperres[hyperres.task == hyperres.task.iloc[0]] if len(hyperres) else hyperres


def fig5_figure(optimal: pd.DataFrame):
    """The paper's Fig 5: per true level, the true level and the best input level of HyperRes (mean ± std
    over images; dots: the images), so a reader sees at once whether the best input is the true one."""
    plt = pyplot()
    sub = fig5_rows(optimal)
    task = get_task(sub.task.iloc[0])
    levels = sorted(sub.level.unique())
    pos = np.arange(len(levels))
    groups = [sub[sub.level == lv] for lv in levels]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    ax.bar(pos - 0.2, levels, width=0.4, color="0.6", label="true level")
    ax.bar(pos + 0.2, [g.best.mean() for g in groups], yerr=[g.best.std(ddof=0) for g in groups], width=0.4, color="tab:red",
           alpha=0.7, capsize=3, label="best input level (mean ± std)")
    for p, g in zip(pos, groups):
        ax.scatter(np.full(len(g), p + 0.2) + np.linspace(-0.12, 0.12, len(g)), g.best, s=6, color="k", alpha=0.5, zorder=3)
    ax.set_xticks(pos, [f"{lv:g}" for lv in levels])
    ax.set_xlabel(f"true level ({task.unit})")
    ax.set_ylabel(f"input level ({task.unit})")
    ax.set_title(f"Fig 5: best input level vs true level — HyperRes, {task.name} ({sub.dataset.iloc[0]}, {sub.image.nunique()} images)",
                 fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def all_entries_figure(optimal: pd.DataFrame):
    """Supplementary to Fig 5, one panel per (task, model): bars = mean best control (error bar: std over
    images), dots = images, black ticks = the control the evaluation uses for the true level, grey = the
    search bracket."""
    plt = pyplot()

    groups = list(optimal.groupby(["task", "model"], sort=False))
    cols = min(3, len(groups))
    rows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows + 0.4), squeeze=False, layout="constrained")
    for ax, ((task_name, model), sub) in zip(axes.flat, groups):
        task = get_task(task_name)
        levels = sorted(sub.level.unique())
        pos = np.arange(len(levels))
        stats = [sub[sub.level == lv] for lv in levels]
        ax.bar(pos, [g.hi.mean() - g.lo.mean() for g in stats], bottom=[g.lo.mean() for g in stats], width=0.8, color="0.92",
               zorder=0, label="search bracket")
        ax.bar(pos, [g.best.mean() for g in stats], yerr=[g.best.std(ddof=0) for g in stats], width=0.6, color="tab:red", alpha=0.55,
               capsize=3, label="best (mean ± std)")
        for p, g in zip(pos, stats):
            ax.scatter(np.full(len(g), p) + np.linspace(-0.18, 0.18, len(g)), g.best, s=6, color="k", alpha=0.5, zorder=3)
        ax.scatter(pos, [g.reference.mean() for g in stats], marker="_", s=500, color="k", lw=2, zorder=4, label="control at true level")
        ax.set_xticks(pos, [f"{lv:g}" for lv in levels])
        ax.set_xlabel(f"true level ({task.unit})")
        ax.set_ylabel(f"best {sub.control_name.iloc[0]}")
        ax.set_title(f"{task_name} — {model} ({sub.dataset.iloc[0]}, {sub.image.nunique()} images)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle("PSNR-optimal control vs true degradation level, every tuned entry (supplementary to Fig 5)", fontsize=10)
    return fig


def oracle_figure(optimal: pd.DataFrame, out_base) -> list:
    """Per task: mean PSNR over the tuned images at each true level with the linear control (solid) and the
    oracle control (dashed), one colour per model: what the level-to-control mapping leaves on the table."""
    plt = pyplot()

    tasks = list(dict.fromkeys(optimal.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.8 * len(tasks), 4.2), squeeze=False, layout="constrained")
    for ax, task_name in zip(axes.flat, tasks):
        sub = optimal[optimal.task == task_name]
        for i, (model, g) in enumerate(sub.groupby("model", sort=False)):
            means = g.groupby("level")[["psnr_reference", "psnr_best"]].mean()
            colour = f"C{i}"
            ax.plot(means.index, means.psnr_reference, marker="o", ms=3, color=colour, label=f"{model} linear")
            ax.plot(means.index, means.psnr_best, marker="^", ms=3, ls="--", color=colour, label=f"{model} oracle")
        ax.set_xlabel(f"true level ({get_task(task_name).unit})")
        ax.set_ylabel("PSNR [dB]")
        ax.set_title(f"{task_name} ({sub.dataset.iloc[0]}, {sub.image.nunique()} images)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle("Linear vs oracle (per-image PSNR-optimal) control", fontsize=10)
    return save_figure(fig, out_base)


def blind_table(blind: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model, sub in blind.groupby("model", sort=False):
        for level, g in list(sub.groupby("level")) + [("mean", sub)]:
            rows.append({
                "model": model, "level": level if level == "mean" else f"{level:g}", "n": len(g), "mean_estimate": g.estimate.mean() if level != "mean" else math.nan,
                "mae": (g.estimate - g.level).abs().mean(), "psnr_input": g.psnr_input.mean(), "psnr_true_level": g.psnr_true.mean(),
                "psnr_estimated_level": g.psnr_estimated.mean(), "delta_db": (g.psnr_estimated - g.psnr_true).mean(),
            })
    return pd.DataFrame(rows)


def accuracy_table(blind: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """MAE, bias, RMSE and the fraction within +-tolerance per true sigma (one row per image and level)."""
    est = blind.drop_duplicates(["image", "level"])
    rows = []
    for level, g in list(est.groupby("level")) + [("all", est)]:
        err = g.estimate - g.level
        rows.append({"level": level if level == "all" else f"{level:g}", "n": len(g), "mean_estimate": g.estimate.mean() if level != "all" else math.nan,
                     "bias": err.mean(), "mae": err.abs().mean(), "rmse": float(np.sqrt((err**2).mean())),
                     f"within_{tolerance:g}_pct": 100 * (err.abs() <= tolerance).mean()})
    return pd.DataFrame(rows)


def _deviation_md(table: pd.DataFrame) -> str:
    body = [[r.task, r.model, r.control, r.level, r.n, _fmt(r.reference) if r.level != "all" else "—",
             f"{_fmt(r.best_mean)} ± {_fmt(r.best_std)}", f"{_fmt(r.best_median)} [{_fmt(r.best_q25)}, {_fmt(r.best_q75)}]",
             _fmt(r.mean_dev, signed=True), _fmt(r.mean_abs_dev), _fmt(r.mean_rel_dev_pct, 1), _fmt(r.psnr_reference), _fmt(r.psnr_best),
             _fmt(r.gain_db, 3, signed=True), _fmt(r.forwards_mean, 1), r.grid_fallbacks, r.at_edge] for r in table.itertuples()]
    header = ["task", "model", "control", "true level", "n", "control at true level", "best (mean ± std)", "best median [q25, q75]",
              "mean deviation", "mean |deviation|", "mean |relative deviation| %", "PSNR at true", "PSNR at best", "gain [dB]",
              "forwards / search", "grid fallbacks", "best on bracket edge"]
    return tabulate(body, header, tablefmt="github")


def write_tuning_reports(profile, paths, optimal: pd.DataFrame, blind: pd.DataFrame | None, estimator_source: str, settings) -> list:
    out = paths.tables_dir(profile.name)
    out.mkdir(parents=True, exist_ok=True)
    written, index = [], [f"# Input-level tuning — profile `{profile.name}`", ""]
    if len(optimal):
        table = deviation_table(optimal)
        atomic_write_text(out / f"{FILES['deviation']}.csv", _csv(table.assign(profile=profile.name)))
        notes = [
            "Best control = the control that maximises the image's PSNR (the task's metric spec, uint8-rounded output) for a degraded "
            "input made exactly as in the evaluation (seeded from image, level and seed); deviation = best − control at the true level "
            "(for HyperRes the control is the input level itself, in task units).",
            f"Search bracket: true level ± max({settings.window:g} × level, a task minimum: σ 5, q 5, scale 0.5), clipped to the task's "
            "valid range, mapped to control units; 'best on bracket edge' counts searches whose best lies within half a grid step of an edge "
            "(the optimum may lie outside the bracket).",
            f"Search: {settings.probes} probes over the bracket, then successive parabolic interpolation with golden-section fallback to a "
            f"resolution of one step of a {settings.grid}-point grid; a dense {settings.grid}-point grid when the probes are not unimodal "
            f"(dips > {settings.eps:g} dB). 'forwards / search' counts network evaluations.",
            f"Images: the first {settings.images or 'all'} evaluation images of each task; per-task datasets are in the figure titles.",
            ORACLE_NOTE + " 'PSNR at true' is the linear mode, 'PSNR at best' the oracle mode, gain = oracle − linear.",
            PAPER_FIG5,
            f"Profile `{profile.name}` differs from the paper in: " + ("; ".join(profile.conventions) or "nothing declared") + ".",
        ]
        md = ["## Optimal input level vs true level (Fig 5)", "", _deviation_md(table), ""] + [f"- {n}" for n in notes]
        atomic_write_text(out / f"{FILES['deviation']}.md", "\n".join(md) + "\n")
        written += [out / f"{FILES['deviation']}.md", out / f"{FILES['deviation']}.csv"]
        if len(fig5_rows(optimal)):
            written += save_figure(fig5_figure(optimal), out / FILES["fig"])
            index += md + ["", f"![Fig 5]({FILES['fig']}.png)", ""]
        else:
            index += md + ["", "Fig 5 (HyperRes) not drawn: HyperRes was not tuned in this selection.", ""]
        written += save_figure(all_entries_figure(optimal), out / FILES["fig_all"])
        written += oracle_figure(optimal, out / FILES["oracle"])
        index += [f"![every tuned entry]({FILES['fig_all']}.png)", "", f"![linear vs oracle control]({FILES['oracle']}.png)", ""]
    if blind is not None and len(blind):
        tol = float(settings.blind.get("tolerance", 2.0))
        dataset = blind.dataset.iloc[0]
        options = profile.task_cfg("denoise")["options"]
        noise = f"AWGN on 0-255 pixels, options {options} (floor = the official 8-bit truncation), seeded as in the evaluation"
        btable = blind_table(blind)
        body = [[r.model, r.level, r.n, _fmt(r.mean_estimate), _fmt(r.mae), _fmt(r.psnr_input), _fmt(r.psnr_true_level),
                 _fmt(r.psnr_estimated_level), _fmt(r.delta_db, 3, signed=True)] for r in btable.itertuples()]
        md = [f"## Blind denoising ({dataset}): estimated vs true noise level", "",
              tabulate(body, ["model", "σ", "n", "mean estimate", "MAE", "PSNR input", "PSNR (true σ)", "PSNR (estimated σ)", "Δ [dB]"], tablefmt="github"),
              "", f"- Estimator: {estimator_source}.", f"- Noise: {noise}.",
              "- The estimate (clamped to [0, 255]) replaces the true σ as the model's level; Δ = PSNR(estimated) − PSNR(true); mean = over all levels."]
        atomic_write_text(out / f"{FILES['blind']}.md", "\n".join(md) + "\n")
        atomic_write_text(out / f"{FILES['blind']}.csv", _csv(btable.assign(profile=profile.name, dataset=dataset, estimator=estimator_source)))
        atable = accuracy_table(blind, tol)
        abody = [[r[0], r[1], _fmt(r[2]), _fmt(r[3], signed=True), _fmt(r[4]), _fmt(r[5]), _fmt(r[6], 1)] for r in atable.itertuples(index=False)]
        amd = [f"## Noise estimator accuracy ({dataset})", "",
               tabulate(abody, ["true σ", "n", "mean estimate", "bias", "MAE", "RMSE", f"within ±{tol:g} [%]"], tablefmt="github"), "",
               f"- Accuracy (last column): the fraction of (image, σ) pairs whose estimate is within ±{tol:g} of the true σ on the 0-255 scale.",
               f"- {PAPER_ACCURACY}", f"- Estimator: {estimator_source}.", f"- Noise: {noise}."]
        atomic_write_text(out / f"{FILES['accuracy']}.md", "\n".join(amd) + "\n")
        atomic_write_text(out / f"{FILES['accuracy']}.csv", _csv(atable.assign(profile=profile.name, dataset=dataset, estimator=estimator_source)))
        written += [out / f"{FILES['blind']}.{e}" for e in ("md", "csv")] + [out / f"{FILES['accuracy']}.{e}" for e in ("md", "csv")]
        index += md + [""] + amd + [""]
    if written:
        atomic_write_text(out / f"{FILES['index']}.md", "\n".join(index) + "\n")
        written.append(out / f"{FILES['index']}.md")
    return written
