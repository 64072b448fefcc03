"""Figs 2-4 (PSNR against level for the adaptive models, and their gap to the per-level networks)
and Table 4 (mean PSNR, HyperRes vs CResMD), from the tidy results of a profile."""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import pandas as pd

from bench.common.atomic import atomic_write_text
from bench.evaluation.evaluate import INPUT
from bench.models.catalog import model_cfg, param_count
from bench.reports.figures import pyplot, save_figure
from bench.reports.markdown import markdown_table
from bench.reports.published import applicable, published
from bench.tasks.task import get_task
from bench.training.profiles import Entry, Profile

FIGURES = {"dejpeg": "fig2_dejpeg", "denoise": "fig3_denoise", "sr": "fig4_sr"}  # the paper's order
REFERENCE = "perlevel"
CONTROL_NOTE = ("control: linear between the two trained endpoint levels (HyperRes: the level itself); "
                "oracle control: tuning.md, fig_oracle_vs_linear_control")


def _params(entry: Entry) -> int:
    return param_count(entry.arch, **entry.model_kwargs)


def _budget(entry: Entry) -> str:
    """An entry's training budget for a legend: steps (per network of a bank) and training PFLOP (all its runs)."""
    from bench.training.plan import plan

    if entry.weights or not entry.runs:
        return "official weights"
    planned = plan([entry], Path("."))  # the cost only: whether the runs are done does not matter here
    steps = "/".join(dict.fromkeys(f"{p.steps:,}" for p in planned))
    return f"{steps} steps{' each' if len(planned) > 1 else ''}, {sum(p.train_flops for p in planned) / 1e15:.3g} PFLOP"


def _psnr_rows(results: pd.DataFrame, profile: Profile, task: str) -> pd.DataFrame:
    return results[(results.profile == profile.name) & (results.task == task) & (results.metric == "psnr")]


def _psnr(results: pd.DataFrame, profile: Profile, task: str) -> pd.DataFrame:
    return _psnr_rows(results, profile, task).pivot_table(index="level", columns="model", values="value")


def below_own_levels(results: pd.DataFrame, profile: Profile, entries: list[Entry], task: str) -> dict[str, list[float]]:
    """The entries (trained here) whose mean PSNR is below their degraded input at one of their own training levels:
    name -> those levels. Below the input where it was trained, an entry is untrained or broken, not merely weak."""
    table = _psnr(results, profile, task)
    if INPUT not in table.columns:
        return {}
    found = {}
    for e in entries:
        if e.task != task or e.weights or not e.runs or e.model not in table.columns:
            continue
        own = sorted({lv for run in e.runs for lv in run.levels if lv in table.index})
        below = [lv for lv in own if table[e.model][lv] < table[INPUT][lv]]
        if below:
            found[e.model] = below
    return found


def adaptive_figure(profile: Profile, task_name: str, results: pd.DataFrame, entries: list[Entry], out_dir: Path) -> list[Path]:
    plt = pyplot()

    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    table = _psnr(results, profile, task_name)
    adaptive = [e for e in entries if model_cfg(e.arch).adaptive and e.model in table.columns]
    if not adaptive:
        return []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10.4, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    seeds = results[results.task == task_name].groupby("model").n_seeds.max() if "n_seeds" in results else pd.Series(dtype=int)
    below = below_own_levels(results, profile, entries, task_name)
    for e in adaptive:
        n = int(seeds.get(e.model, 1))
        label = f"{e.model} ({_params(e):,} params; {_budget(e)}{f'; mean of {n} seeds, band: min–max' if n > 1 else ''})"
        if e.model in below:  # named in the figure: below its input where it was trained
            levels = below[e.model]
            label += f"\n    below its input at its training level{'s' if len(levels) > 1 else ''} " + ", ".join(f"{v:g}" for v in levels)
        line, = top.plot(table.index, table[e.model], marker="o", ms=3, label=label)
        _band(top, results, profile, task_name, e.model, line.get_color())
        if REFERENCE in table.columns:
            bottom.plot(table.index, table[e.model] - table[REFERENCE], marker="o", ms=3, label=label)
    if REFERENCE in table.columns:
        ref = next(e for e in entries if e.model == REFERENCE)
        n = int(seeds.get(REFERENCE, 1))
        top.plot(table.index, table[REFERENCE], color="black", ls=":",
                 label=f"per-level networks ({_params(ref):,} params each; {_budget(ref)}{f'; mean of {n} seeds, band: min–max' if n > 1 else ''})")
        _band(top, results, profile, task_name, REFERENCE, "black")
    bottom.axhline(0, color="black", lw=1, ls=":")
    top.set_ylabel("PSNR [dB]")
    bottom.set_ylabel("PSNR − per-level [dB]")
    bottom.set_xlabel(task.unit)
    note = textwrap.fill(CONTROL_NOTE, 100)  # one line would run past the figure's edges
    top.set_title(f"{task.title}, {tcfg['eval_dataset']} — profile {profile.name}\n{note}", fontsize=8)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: long labels hide no curve
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_dir / FIGURES[task_name])


def _band(ax, results: pd.DataFrame, profile: Profile, task: str, model: str, colour) -> None:
    """The min–max band over training seeds around an entry's mean curve, where it has several seeds."""
    if "n_seeds" not in results:
        return
    sub = results[(results.profile == profile.name) & (results.task == task) & (results.metric == "psnr") & (results.model == model)]
    sub = sub[sub.n_seeds > 1].sort_values("level")
    if len(sub):
        ax.fill_between(sub.level, sub.value_min, sub.value_max, color=colour, alpha=0.15, lw=0)


def _level_means(per_seed: pd.DataFrame, profile: Profile, task: str, model: str) -> pd.Series:
    """An entry's PSNR averaged over the task's evaluation levels, once per training seed (index: seed)."""
    sub = _psnr_rows(per_seed, profile, task)
    return sub[sub.model == model].groupby("seed").value.mean()


def table4(profile: Profile, results: pd.DataFrame, entries: list[Entry], per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR over each task's evaluation levels for HyperRes and CResMD (paper's Table 4 is not legible: NA).
    One row per entry with seed "mean" (`ours_sd`: the standard deviation across training seeds of each seed's mean
    over the levels, NaN for one seed), then, for an entry with several seeds, one row per seed."""
    rows = []
    for task_name in dict.fromkeys(e.task for e in entries):
        table = _psnr(results, profile, task_name)
        pub, _ = applicable(published(), task_name, profile.task_cfg(task_name)["eval_dataset"], get_task(task_name).metric.key())
        for model in ("hyperres", "cresmd"):
            if model not in table.columns:
                continue
            hit = pub[(pub.table == "Table 4") & (pub.task == task_name) & (pub.model == model) & (pub.metric == "psnr")]
            p = float(hit.value.iloc[0]) if len(hit) and hit.value.iloc[0] != "NA" else math.nan
            ours = float(table[model].mean())
            by_seed = _level_means(per_seed, profile, task_name, model)
            row = {"task": task_name, "dataset": profile.task_cfg(task_name)["eval_dataset"], "model": model, "levels": len(table),
                   "seed": "mean", "ours": ours, "ours_sd": float(by_seed.std()) if len(by_seed) > 1 else math.nan,
                   "n_seeds": len(by_seed), "published": p, "delta": ours - p}
            rows.append(row)
            if len(by_seed) > 1:
                rows += [{**row, "seed": str(int(seed)), "ours": float(v), "ours_sd": math.nan, "n_seeds": 1, "delta": float(v) - p}
                         for seed, v in by_seed.items()]
    return pd.DataFrame(rows)


def write_adaptive_reports(profile: Profile, results: pd.DataFrame, entries: list[Entry], out_dir: Path,
                           per_seed: pd.DataFrame) -> tuple[list[Path], list[str]]:
    """Figs 2-4 and Table 4 (`results`: the means over seeds; `per_seed`: one row per training seed, for Table 4's
    spread); returns the files and markdown lines for the index page."""
    written, md = [], []
    for task_name in dict.fromkeys(e.task for e in entries):
        figs = adaptive_figure(profile, task_name, results, [e for e in entries if e.task == task_name], out_dir)
        written += figs
        if figs:
            md += [f"![{FIGURES[task_name]}]({figs[0].name})", ""]
    t4 = table4(profile, results, entries, per_seed)
    if len(t4):
        means = t4[t4.seed == "mean"]
        body = [[r.task, r.dataset, r.model, r.levels, f"{r.ours:.2f}" + ("" if math.isnan(r.ours_sd) else f" ± {r.ours_sd:.2f}"),
                 "—" if math.isnan(r.published) else f"{r.published:.2f}",
                 "—" if math.isnan(r.delta) else f"{r.delta:+.2f}"] for r in means.itertuples()]
        several = bool((means.n_seeds > 1).any())
        seeds_line = ("- ours: the mean over training seeds ± the standard deviation across them of each seed's mean over the levels "
                      f"(seeds: {', '.join(f'{m} {n}' for m, n in means.groupby('model', sort=False).n_seeds.max().items())}); the CSV adds one row per seed."
                      if several else "- Training variance unmeasured: one training run per entry.")
        header = ["task", "dataset", "model", "levels", "ours mean PSNR", "paper", "ours − paper"]
        text = "\n".join([
            "## Table 4 — mean PSNR over the evaluation levels, HyperRes vs CResMD", "",
            markdown_table(body, header), "",
            "- The paper's Table 4 numbers are not legible in any source found ('—'); only its text survives "
            "(CResMD has 32 residual blocks, 16 more than HyperRes, and HyperRes is reported more accurate overall).",
            seeds_line,
            f"- {CONTROL_NOTE}.", "",
        ])
        atomic_write_text(out_dir / "table4_cresmd.md", text)
        buf = io.StringIO()
        (t4 if several else t4.drop(columns=["seed", "ours_sd", "n_seeds"])).to_csv(buf, index=False, float_format="%.4f")
        atomic_write_text(out_dir / "table4_cresmd.csv", buf.getvalue())
        atomic_write_text(out_dir / "table4_cresmd.tex", _table4_latex(header, body))
        written += [out_dir / f"table4_cresmd.{ext}" for ext in ("md", "csv", "tex")]
        md += text.splitlines()
    return written, md


def _table4_latex(header, body) -> str:
    lines = [r"\begin{table}[t]", r"\centering", r"\caption{Mean PSNR, HyperRes vs CResMD}", r"\begin{tabular}{lllrrrr}", r"\toprule",
             " & ".join(header).replace("−", "$-$") + r" \\", r"\midrule"]
    lines += [" & ".join(str(c).replace("—", "--") for c in row) + r" \\" for row in body]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])
