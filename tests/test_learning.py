"""HyperRes and a per-level network learn: 200 steps on the smoke training images lower the loss and
restore a fixed held-out image at a high trained level (sigma 50) well above the degraded input."""

import json

import numpy as np
import pytest
import torch

from bench.data.images import modcrop, to_tensor, to_uint8
from bench.data.loading import load_dataset
from bench.evaluation.evaluate import load_trained
from bench.evaluation.inputs import degraded_input
from bench.metrics.quality import psnr
from bench.tasks.task import get_task
from bench.training.runs import RUN_FORMAT, Run, RunDir
from bench.training.trainer import train_run

LEVEL = 50.0
TRAIN = {"steps": 200, "batch": 4, "crop": 32, "lr": 2e-3, "lr_milestones": [150], "lr_gamma": 0.1, "checkpoint_every": 1}  # a log line (the loss) every step


@pytest.mark.parametrize("model,kwargs,levels", [
    ("hyperres", {"meta_blocks": 1, "width": 8}, [15.0, LEVEL]),
    ("perlevel", {"blocks": 1, "width": 8, "levels": [LEVEL]}, [LEVEL]),
])
def test_a_network_learns_to_beat_its_input(tmp_path, model, kwargs, levels):
    task = get_task("denoise")
    config = {
        "format": RUN_FORMAT, "model": model, "model_kwargs": {**kwargs, "in_channels": 3}, "task": "denoise",
        "levels": levels, "protocol": "joint", "train": TRAIN, "train_dataset": "skimage-train",
        "options": task.options(), "seed": 0,
    }
    rundir = RunDir(tmp_path / "runs", Run(config))
    train_run(rundir)
    losses = [json.loads(line)["loss"] for line in rundir.log_file.read_text().splitlines() if '"loss"' in line]
    assert len(losses) == TRAIN["steps"]
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:20])  # the loss falls

    image = load_dataset("skimage-eval")[0]  # not a training image
    noisy = degraded_input(task, image.pixels, image.name, LEVEL, 0, task.options())
    clean = modcrop(image.pixels, 2)
    with torch.no_grad():
        restored = to_uint8(load_trained(rundir)(to_tensor(noisy), LEVEL))
    given = to_uint8(to_tensor(noisy))  # the input as the tables score it
    assert psnr(restored, clean, task.metric) > psnr(given, clean, task.metric) + 1.0  # sigma 50: above the input
