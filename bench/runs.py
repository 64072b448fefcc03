"""Run folders: <runs_dir>/<run_id>/ with the resolved config, checkpoints, a training log and a
`done` marker. A run with a `done` marker is finished and is skipped; one without resumes."""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

import torch

from bench.checkpoint import atomic_write_text, load_state_into, load_tensors
from bench.errors import HyperbenchError
from bench.profiles import Run
from bench.registry import create_model


class RunDir:
    def __init__(self, runs_dir: Path, run: Run):
        self.run = run
        self.path = Path(runs_dir) / run.run_id
        self.config = self.path / "config.json"
        self.model_file = self.path / "model.safetensors"
        self.state_file = self.path / "train_state.safetensors"
        self.log_file = self.path / "log.jsonl"
        self.done_file = self.path / "done"

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            atomic_write_text(self.config, json.dumps(self.run.config, indent=2, sort_keys=True))

    @contextmanager
    def training_lock(self):
        """Exclusive while one process trains this run; the kernel drops the lock if that process dies."""
        with open(self.path / "train.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def remove_stale_temp_files(self) -> None:
        """Half-written checkpoints of a killed process (atomic writes leave .<name>.*.tmp). Only files written
        under the training lock are removed, so call it holding the lock."""
        for name in (self.state_file.name, self.model_file.name):
            for tmp in self.path.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)

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

    def load_model(self) -> torch.nn.Module:
        if not self.is_done:
            raise HyperbenchError(
                f"run {self.run.run_id} ({self.run.model}, {self.run.task}, levels {self.run.levels}) is not trained",
                "run `hyperbench train` (or `hyperbench reproduce`) with the same profile first",
            )
        model = create_model(self.run.model, **self.run.config["model_kwargs"])
        state, _ = load_tensors(self.model_file)
        try:
            load_state_into(model, state, str(self.model_file))
        except HyperbenchError as exc:  # the run's own config no longer builds the network its weights came from
            raise HyperbenchError(exc.problem, f"delete {self.path} and train again (the model code or its arguments changed since it was trained)") from None
        return model.eval()
