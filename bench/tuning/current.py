"""Which stored tuning results belong to a profile's current runs.

Tuning results are cached under results/<profile>/tuning/ by a key of everything they depend on, so the
files of runs trained earlier stay there. `current.json` names, per kind (`optimal-<task>-<model>`,
`blind-denoise`), the file the latest `hyperbench tune` of the profile produced or read: the claims
report reads those and never a stale cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.common.atomic import atomic_write_text

INDEX = "current.json"


def tuning_dir(paths, profile_name: str) -> Path:
    return paths.results / profile_name / "tuning"


def mark_current(paths, profile_name: str, kind: str, path: Path) -> None:
    index = tuning_dir(paths, profile_name) / INDEX
    current = json.loads(index.read_text()) if index.exists() else {}
    current[kind] = path.name
    atomic_write_text(index, json.dumps(current, indent=1, sort_keys=True) + "\n")


def current_frame(paths, profile_name: str, kind: str) -> pd.DataFrame | None:
    """The rows of the current file of `kind`, or None when the profile was not tuned for it."""
    index = tuning_dir(paths, profile_name) / INDEX
    name = json.loads(index.read_text()).get(kind) if index.exists() else None
    path = tuning_dir(paths, profile_name) / name if name else None
    return pd.read_csv(path, dtype={"image": str}) if path and path.exists() else None
