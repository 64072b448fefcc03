"""A training process killed with SIGKILL resumes from its last checkpoint when the command is repeated,
and ends bit-identical (weights and metrics) to an uninterrupted run in another folder.

Both runs are separate processes, so this is also the cross-process determinism check: same config and
seed on CPU -> the same bits.
"""

import json
import os
import signal
import subprocess
import sys

import pandas as pd
from safetensors.torch import load_file

PROFILE = """
name: resume
seed: 3
train: {steps: 40, batch: 2, crop: 16, lr: 1.0e-3, lr_milestones: [20], lr_gamma: 0.5, checkpoint_every: 4}
models:
  hyperres: {meta_blocks: 1, width: 8}
tasks:
  denoise:
    train_dataset: skimage-train
    eval_dataset: skimage-eval
    train_levels: [15, 50]
    eval_levels: [25]
"""
ENV = {**os.environ, "HYPERBENCH_QUIET": "1"}


def _args(command, folder):
    return [sys.executable, "-m", "bench.apps.cli", command, "--profile", str(folder.parent / "resume.yaml"),
            "--runs-dir", str(folder / "runs"), "--results-dir", str(folder / "results"), "--tables-dir", str(folder / "tables")]


def _run(command, folder):
    out = subprocess.run(_args(command, folder), capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _run_dir(folder):
    (run,) = [p for p in (folder / "runs").iterdir() if p.is_dir()]
    return run


def _kill_after_checkpoint(folder, step):
    """The training process kills itself with SIGKILL right after logging its checkpoint of `step`
    (bench/training/loop.py, $HYPERBENCH_SIGNAL_AFTER_CHECKPOINT): an exact point, whatever the machine's load."""
    env = {**ENV, "HYPERBENCH_SIGNAL_AFTER_CHECKPOINT": f"{step}:SIGKILL"}
    proc = subprocess.run(_args("train", folder), capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"the process was not killed (exit {proc.returncode}): {proc.stderr}"


def test_killed_training_resumes_to_identical_weights_and_metrics(tmp_path):
    (tmp_path / "resume.yaml").write_text(PROFILE)
    whole, killed = tmp_path / "whole", tmp_path / "killed"

    _kill_after_checkpoint(killed, 12)
    run = _run_dir(killed)
    assert not (run / "done").exists() and not (run / "model.safetensors").exists()  # not taken for finished
    assert not (killed / "results").exists()
    steps_before = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps_before == [4, 8, 12]  # killed right after the checkpoint of step 12

    out = _run("train", killed)  # the same command again: resumes and finishes
    assert "1 to train" in out.stdout
    _run("train", whole)
    for folder in (killed, whole):
        _run("eval", folder)

    logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert logged[-1] == 40
    assert len(logged) == len(set(logged)), f"steps were redone, not resumed: {logged}"  # a restart from 0 repeats them

    a, b = load_file(run / "model.safetensors"), load_file(_run_dir(whole) / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), "resumed weights differ from the uninterrupted run"
    assert not (run / "train_state.safetensors").exists() and not list(run.glob(".*.tmp"))

    ra = pd.read_csv(killed / "results" / "resume" / "results.csv").sort_values(["model", "level", "metric"])
    rb = pd.read_csv(whole / "results" / "resume" / "results.csv").sort_values(["model", "level", "metric"])
    assert len(ra) == len(rb) == 4  # hyperres and the degraded input, PSNR and SSIM at sigma 25
    assert (ra.value.to_numpy() == rb.value.to_numpy()).all()
    assert (ra.deterministic == "on (warn-only)").all() and ra.interop_threads.notna().all() and ra.cpu.notna().all()
