"""Runs and their folders. A run is one training job; it is identified by the hash of its resolved
config, so the same settings always land in the same folder and finished work is never redone.
<runs_dir>/<run_id>/ holds the resolved config, checkpoints, a training log and a `done` marker. A run
with a `done` marker is finished and is skipped; one without resumes."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common.atomic import atomic_write_text
from bench.common.locks import file_lock

RUN_FORMAT = 1  # bump when a change in training code changes what a run config means


@dataclass(frozen=True)
class Run:
    """One training job; `config` is everything that decides its weights."""

    config: dict

    @property
    def run_id(self) -> str:
        canon = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:12]

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def levels(self) -> list[float]:
        return self.config["levels"]


class RunDir:
    def __init__(self, runs_dir: Path, run: Run):
        self.run = run
        self.path = Path(runs_dir) / run.run_id
        self.config = self.path / "config.json"
        self.model_file = self.path / "model.safetensors"
        self.state_file = self.path / "train_state.safetensors"
        self.log_file = self.path / "log.jsonl"
        self.done_file = self.path / "done"
        self.data_root = None  # where the trainer found the datasets (validation sets are read from there too)
        self.prior_s, self.segment, self.started = 0.0, 1, time.time()  # the training clock (start_segment)

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            atomic_write_text(self.config, json.dumps(self.run.config, indent=2, sort_keys=True))

    def training_lock(self):
        """Exclusive while one process trains this run; the kernel drops the lock if that process dies."""
        return file_lock(self.path / "train.lock")

    def remove_stale_temp_files(self) -> None:
        """Half-written checkpoints of a killed process (atomic writes leave .<name>.*.tmp). Only files written
        under the training lock are removed, so call it holding the lock."""
        for name in (self.state_file.name, self.model_file.name):
            for tmp in self.path.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)

    def start_segment(self) -> None:
        """Start timing this process's segment of the training. The earlier segments' time and count come
        from the resume state, where every checkpoint stores them: a killed segment counts up to its last
        checkpoint (the work after it is redone, and timed, by the next one); one killed before its first
        checkpoint left nothing and is not counted."""
        from bench.common.checkpoint import read_metadata

        meta = read_metadata(self.state_file) if self.state_file.exists() else {}
        self.prior_s = float(meta.get("wall_s", 0.0))
        self.segment = int(meta.get("segments", 1)) + 1 if meta else 1  # a state of older code: one segment before
        self.started = time.time()

    def segment_s(self) -> float:
        return time.time() - self.started

    def wall_s(self) -> float:
        """Seconds of training so far, every segment's."""
        return self.prior_s + self.segment_s()

    @property
    def is_done(self) -> bool:
        return self.done_file.exists() and self.model_file.exists()

    def summary(self) -> dict:
        return json.loads(self.done_file.read_text()) if self.done_file.exists() else {}

    def mark_done(self, summary: dict) -> None:
        atomic_write_text(self.done_file, json.dumps(summary, indent=2, sort_keys=True))

    def log(self, record: dict) -> None:
        with open(self.log_file, "a") as f:
            f.write(json.dumps(record) + "\n")
