"""Results over training seeds: each entry's mean, standard deviation and range across the seeds it was
trained with (`seeds:` in a profile), and the figure of that spread per level.

Every seed of an entry is scored on the same degraded inputs (the profile's `seed:`), so the spread across
seeds is the training variance alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.evaluation.evaluate import INPUT
from bench.reports.figures import ENTRY_COLOURS, SPARE_COLOURS, pyplot, save_figure
from bench.tasks.task import get_task

CELL = ["profile", "model", "task", "dataset", "level", "metric", "metric_spec"]  # a result without its seed
ON_PAR_MARGIN_DB = 0.1  # the margin the claims allow for "on par" (bench.reports.claims.MARGIN_DB)


def over_seeds(results: pd.DataFrame) -> pd.DataFrame:
    """One row per result cell: `value` the mean over the entry's training seeds, with `value_sd` (sample standard
    deviation, NaN for one seed), `value_min`, `value_max`, `n_seeds` and `seeds` (e.g. "0,1,2")."""
    if results.empty:
        return results.assign(value_sd=[], value_min=[], value_max=[], n_seeds=[], seeds=[])
    if "seed" not in results:  # rows without a seed column: one run each
        results = results.assign(seed=0)
    ordered = results.sort_values("seed", kind="stable")
    grouped = ordered.groupby(CELL, sort=False, dropna=False)
    stats = grouped.value.agg(value_mean="mean", value_sd="std", value_min="min", value_max="max", n_seeds="count")
    stats["seeds"] = grouped.seed.agg(lambda s: ",".join(str(int(v)) for v in s))
    first = ordered.drop_duplicates(CELL).set_index(CELL)
    merged = first.join(stats).reset_index()
    return merged.assign(value=merged.value_mean).drop(columns="value_mean")


def several_seeds(results: pd.DataFrame) -> bool:
    """Whether any entry of these results was trained with more than one seed."""
    return bool(len(results)) and "seed" in results and bool((results.groupby(CELL, dropna=False).seed.nunique() > 1).any())


def seed_counts(results: pd.DataFrame, task: str) -> dict[str, int]:
    """Training seeds per entry of one task (the degraded input left out)."""
    sub = results[(results.task == task) & (results.model != INPUT)]
    if "seed" not in sub:  # rows without a seed column: one run each
        return dict.fromkeys(map(str, sub.model.unique()), 1)
    return {str(m): int(n) for m, n in sub.groupby("model", sort=False).seed.nunique().items()}


def seed_note(results: pd.DataFrame, task: str, eval_seed: int) -> str:
    """The line under a table that says how much training variance it shows."""
    counts = seed_counts(results, task)
    if not any(n > 1 for n in counts.values()):
        return ("Training variance unmeasured: every entry is one training run (seed " + f"{eval_seed}); another seed moves these numbers, "
                "by as much as the gaps between entries at this budget (`seeds: [0, 1, 2]` in the profile trains more).")
    listed = ", ".join(f"{m} {n}" for m, n in counts.items())
    return (f"Cells of entries with several training seeds give the mean over seeds ± the standard deviation across them (seeds per "
            f"entry: {listed}); every seed is scored on the same degraded inputs (seed {eval_seed}), so the spread is training variance.")


def spread_figure(profile, task_name: str, results: pd.DataFrame):
    """Per level, each multi-seed entry's PSNR range across its training seeds (max − min) and standard deviation,
    beside the margin the claims allow for "on par"; None when no entry has several seeds."""
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    cells = over_seeds(results[(results.task == task_name) & (results.profile == profile.name) & (results.metric == "psnr")])
    cells = cells[cells.n_seeds > 1]
    if cells.empty:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.4, 4.2))
    colours = dict(ENTRY_COLOURS) | dict(zip(sorted(set(cells.model) - set(ENTRY_COLOURS)), SPARE_COLOURS))
    for model, sub in cells.groupby("model"):
        sub = sub.sort_values("level")
        n = int(sub.n_seeds.max())
        ax.plot(sub.level, sub.value_max - sub.value_min, marker="o", ms=3, color=colours.get(model), label=f"{model}: range, {n} seeds")
        ax.plot(sub.level, sub.value_sd, marker=".", ms=3, ls=":", color=colours.get(model), label=f"{model}: standard deviation")
    ax.axhline(ON_PAR_MARGIN_DB, color="black", lw=1, ls="--", label=f"{ON_PAR_MARGIN_DB} dB: the claims' margin for 'on par'")
    ax.set_xlabel(task.unit)
    ax.set_ylabel("PSNR spread across training seeds [dB]")
    ax.set_title(f"{task.title}, {tcfg['eval_dataset']} — profile {profile.name}: seed-to-seed spread", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def write_spread_figure(profile, task_name: str, results: pd.DataFrame, out_dir: Path) -> list[Path]:
    fig = spread_figure(profile, task_name, results)
    return [] if fig is None else save_figure(fig, Path(out_dir) / f"fig_seed_spread_{task_name}")
