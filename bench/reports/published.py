"""The papers' published numbers (paper_tables/published/, data with sources) and their look-up."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "paper_tables" / "published"


def published() -> pd.DataFrame:
    path = PUBLISHED_DIR / "hyperres_tables.csv"
    if not path.exists():  # installed without the repository's paper_tables folder
        return pd.DataFrame(columns=["table", "task", "model", "level", "metric", "value", "confidence"])
    return pd.read_csv(path, dtype=str)


def published_value(pub, task, model, level, metric):
    key = "mean" if level == "mean" else f"{float(level):g}"
    hit = pub[(pub.task == task) & (pub.model == model) & (pub.level == key) & (pub.metric == metric)]
    if hit.empty or hit.value.iloc[0] == "NA":
        return math.nan, ""
    return float(hit.value.iloc[0]), hit.confidence.iloc[0]
