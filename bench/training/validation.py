"""Best-validation checkpoint selection, as official HyperRes keeps model_best.pth: every few epochs
the model restores a held-out validation set at each of the run's levels, and the weights with the
best mean PSNR over the levels are the run's result (train_main.py:170, :182-183, :308-314).

An epoch is one crop from every training image (the official loader, drop_last): len(images) //
batch steps. The validation inputs are made as the evaluation inputs are (seeded by image, level and
the run's seed; the run's training degradation options), the PSNR with the task's metric spec. The
best weights and their score live in the run folder (`best.safetensors`), so an interrupted run
resumes with the best it had found.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.common.checkpoint import load_tensors, save_tensors
from bench.common.errors import HyperbenchError
from bench.data.images import modcrop, to_tensor, to_uint8
from bench.data.loading import load_dataset
from bench.evaluation.inputs import degraded_input
from bench.metrics.quality import psnr
from bench.tasks.task import get_task
from bench.training import distributed


class BestValidation:
    def __init__(self, rundir, train_images: int, data_root=None):
        run = rundir.run.config
        self.rundir, self.task, self.levels = rundir, get_task(run["task"]), run["levels"]
        self.seed, self.options = run["seed"], run["options"]
        if not run.get("valid_dataset"):
            raise HyperbenchError(f"run {rundir.run.run_id} keeps its best validation checkpoint but names no validation set",
                                  "set valid_dataset for the task in the profile (a held-out set, not the evaluation set)")
        self.images = load_dataset(run["valid_dataset"], data_root, colour=self.task.channels)
        epoch = max(1, train_images // run["train"]["batch"])
        self.every = epoch * int(run["train"].get("validate_every_epochs", 1))
        self.file = rundir.path / "best.safetensors"
        self.best = load_tensors(self.file)[1]["score"] if self.file.exists() else -math.inf

    @torch.no_grad()
    def score(self, model) -> float:
        """Mean over the levels of the mean PSNR over the validation images."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        per_level = []
        for level in self.levels:
            values = []
            for image in self.images:
                x = to_tensor(degraded_input(self.task, image.pixels, image.name, level, self.seed, self.options)).to(device)
                values.append(psnr(to_uint8(model(x, level).cpu()), modcrop(image.pixels, 2), self.task.metric))
            per_level.append(float(np.mean(values)))
        model.train(was_training)
        return float(np.mean(per_level))

    def after_step(self, model, step: int) -> None:
        if step % self.every:
            return
        value = self.score(model)
        self.rundir.log({"step": step, "valid_psnr": value})
        if value > self.best:
            self.best = value
            if distributed.is_main():
                save_tensors(self.file, {k: v.detach().cpu() for k, v in model.state_dict().items()}, {"score": value, "step": step})

    def restore_best(self, model) -> dict:
        """Load the best weights into the model (the last ones when no validation ran); their score and step."""
        if not self.file.exists():
            return {}
        state, meta = load_tensors(self.file)
        model.load_state_dict(state)
        return {"best_valid_psnr": meta["score"], "best_step": meta["step"]}
