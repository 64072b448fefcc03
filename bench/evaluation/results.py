"""The results store: tidy CSV rows, written atomically under a file lock so concurrent writers
never lose or duplicate rows. Every row carries its metric spec, seed and library versions."""

from __future__ import annotations

import io
import platform
from pathlib import Path

import numpy as np
import pandas as pd
import PIL
import torch

from bench.common.atomic import atomic_write_text
from bench.common.locks import file_lock
from bench.version import __version__

COLUMNS = [
    "run_id", "profile", "model", "task", "dataset", "level", "input_level", "metric", "value",
    "metric_spec", "seed", "n_images", "data_source", "versions", "torch_threads", "interop_threads", "deterministic", "cpu", "device",
    "inputs_sha256",  # checksum of the set of degraded inputs of the row's level (bench.data.input_cache.set_sha256)
    "train_threads",  # torch threads of the training process(es) of the row's runs (torch_threads: the evaluating process's)
]
KEY = ["profile", "model", "task", "dataset", "level", "metric", "metric_spec", "seed"]
EVAL_FORMAT = 2  # 2: per-image rows carry input_sha256


def per_image_file(eval_dir: Path, profile, task: str, entry, metric=None) -> Path:
    """Where one entry's per-image rows of a task are stored (entry None: the degraded input's own rows),
    named by everything they depend on, so profiles that share an entry and its evaluation share the file.
    PSNR/SSIM live in one file; each pyiqa metric (`metric`: its bench.metrics.iqa.IqaSpec) in a file of its own,
    so adding a metric to a profile leaves the stored PSNR/SSIM files as they are."""
    import hashlib
    import json

    from bench.tasks.task import get_task

    tcfg = profile.task_cfg(task)
    payload = {
        "format": EVAL_FORMAT, "dataset": tcfg["eval_dataset"], "levels": tcfg["eval_levels"], "options": tcfg["options"],
        "seed": profile.seed, "metric": get_task(task).metric.key(),
        "entry": None if entry is None else {"name": entry.model, "arch": entry.arch, "runs": [r.run_id for r in entry.runs]},
    }
    if get_task(task).revision:  # only when bumped: the other tasks' files keep their names
        payload["task_revision"] = get_task(task).revision
    if metric is not None:
        payload["metric"] = metric.key()
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    name = "degraded-input" if entry is None else entry.model
    return Path(eval_dir) / f"{task}-{name}-{key}.csv" if metric is None else Path(eval_dir) / f"{task}-{name}-{metric.name}-{key}.csv"


def versions() -> str:
    import skimage  # its sample images are the smoke profile's data

    return (
        f"hyperbench {__version__}; python {platform.python_version()}; torch {torch.__version__}; "
        f"numpy {np.__version__}; pillow {PIL.__version__}; scikit-image {skimage.__version__}"
    )


def environment() -> dict:
    """What can change the last bits of a result: versions, thread counts, deterministic mode, the vector
    instructions torch's CPU kernels use (AVX2 and AVX512 kernels round differently) and the device."""
    deterministic = "off"
    if torch.are_deterministic_algorithms_enabled():
        deterministic = "on (warn-only)" if torch.is_deterministic_algorithms_warn_only_enabled() else "on"
    return {
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "deterministic": deterministic,
        "cpu": f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}",
        "device": _device_name(),
    }


def _device_name() -> str:
    """Where the models ran: cpu, or the GPU's name (GPU kernels round differently from CPU ones)."""
    from bench.training.distributed import device

    dev = device()
    return f"{dev} {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else str(dev)


def locked(path: Path):
    """The lock of a results file (beside it, `<name>.lock`)."""
    return file_lock(path.with_name(path.name + ".lock"))


def read_results(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(path, dtype={"run_id": str, "metric_spec": str, "train_threads": str})  # "2/4" stays text, "2" stays "2"


def write_rows(path, rows: list[dict]) -> pd.DataFrame:
    """Merge rows into the CSV at `path` (same key: replaced), atomically and under a lock."""
    path = Path(path)
    new = pd.DataFrame(rows, columns=COLUMNS)
    with locked(path):
        old = read_results(path)
        merged = pd.concat([old, new], ignore_index=True) if len(old) else new
        merged = merged.drop_duplicates(subset=KEY, keep="last").sort_values(KEY, kind="stable")
        buf = io.StringIO()
        merged.to_csv(buf, index=False)
        atomic_write_text(path, buf.getvalue())
    return merged
