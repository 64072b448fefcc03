"""The papers' published numbers (paper_tables/published/, data with sources) and their look-up."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "paper_tables" / "published"


def published() -> pd.DataFrame:
    path = PUBLISHED_DIR / "hyperres_tables.csv"
    if not path.exists():  # installed without the repository's paper_tables folder
        return pd.DataFrame(columns=["table", "task", "dataset", "model", "level", "metric", "metric_spec", "value", "digits", "confidence"])
    return pd.read_csv(path, dtype=str)


def applicable(pub: pd.DataFrame, task: str, dataset: str, spec_key: str) -> tuple[pd.DataFrame, str]:
    """The published rows of `task` that apply to results on `dataset` measured with the metric spec
    `spec_key` (both must be the published row's), and, when some rows of the task do not apply, why:
    the table shows '—' there and prints the reason."""
    rows = pub[pub.task == task]
    same = rows[(rows.dataset == dataset) & (rows.metric_spec == spec_key)]
    other = rows.drop(same.index)
    if other.empty:
        return same, ""
    where = "; ".join(f"{d} with `{s}`" for d, s in sorted(set(zip(other.dataset, other.metric_spec))))
    return same, (f"Published values not shown: the paper's are on {where}; this profile evaluates on {dataset} "
                  f"with `{spec_key}`, and a published number stands beside a result only for the same dataset and metric spec.")


def published_value(pub, task, model, level, metric) -> tuple[float, str, int | None]:
    """(value, confidence, decimals as printed); NaN and None where the paper prints no legible number."""
    key = "mean" if level == "mean" else f"{float(level):g}"
    hit = pub[(pub.task == task) & (pub.model == model) & (pub.level == key) & (pub.metric == metric)]
    if hit.empty or pd.isna(hit.value.iloc[0]) or hit.value.iloc[0] == "NA":
        return math.nan, "", None
    return float(hit.value.iloc[0]), hit.confidence.iloc[0], int(hit.digits.iloc[0])
