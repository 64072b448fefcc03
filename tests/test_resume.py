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
import pytest
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
    segments = [json.loads((r / "done").read_text())["segments"] for r in (run, _run_dir(whole))]
    assert segments == [2, 1]

    a, b = load_file(run / "model.safetensors"), load_file(_run_dir(whole) / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), "resumed weights differ from the uninterrupted run"
    assert not (run / "train_state.safetensors").exists() and not list(run.glob(".*.tmp"))

    ra = pd.read_csv(killed / "results" / "resume" / "results.csv").sort_values(["model", "level", "metric"])
    rb = pd.read_csv(whole / "results" / "resume" / "results.csv").sort_values(["model", "level", "metric"])
    assert len(ra) == len(rb) == 4  # hyperres and the degraded input, PSNR and SSIM at sigma 25
    assert (ra.value.to_numpy() == rb.value.to_numpy()).all()
    assert (ra.deterministic == "on (warn-only)").all() and ra.interop_threads.notna().all() and ra.cpu.notna().all()


class _Preempted(Exception):
    pass


def test_wall_time_sums_every_segment_of_a_resumed_run(tmp_path, monkeypatch):
    """wall_s in the done summary is the time of every process segment that trained the run, not only the
    last one's; `segments` counts them. The first segment is stopped right after its checkpoint of step 4
    ($HYPERBENCH_SIGNAL_AFTER_CHECKPOINT, here a signal whose handler raises), in-process."""
    from bench.common.checkpoint import read_metadata
    from bench.tasks.task import get_task
    from bench.training.runs import RUN_FORMAT, Run, RunDir
    from bench.training.trainer import train_run

    config = {
        "format": RUN_FORMAT, "model": "plain", "model_kwargs": {"blocks": 1, "width": 8, "in_channels": 3}, "task": "denoise",
        "levels": [25.0], "protocol": "joint", "train_dataset": "skimage-train", "options": get_task("denoise").options(), "seed": 0,
        "train": {"steps": 8, "batch": 2, "crop": 16, "lr": 1e-3, "lr_milestones": [], "lr_gamma": 0.1, "checkpoint_every": 4},
    }
    rundir = RunDir(tmp_path / "runs", Run(config))

    def preempt(signum, frame):
        raise _Preempted

    previous = signal.signal(signal.SIGUSR1, preempt)
    try:
        monkeypatch.setenv("HYPERBENCH_SIGNAL_AFTER_CHECKPOINT", "4:SIGUSR1")
        with pytest.raises(_Preempted):
            train_run(rundir)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert read_metadata(rundir.state_file)["segments"] == 1 and not rundir.is_done
    monkeypatch.delenv("HYPERBENCH_SIGNAL_AFTER_CHECKPOINT")
    summary = train_run(rundir)

    records = [json.loads(line) for line in rundir.log_file.read_text().splitlines()]
    assert [(r["step"], r["segment"]) for r in records] == [(4, 1), (8, 2)]
    first, second = records[0]["segment_s"], records[1]["segment_s"]
    assert summary["segments"] == 2 and json.loads(rundir.done_file.read_text())["segments"] == 2
    assert summary["wall_s"] + 0.01 >= first + second  # 0.01: wall_s is rounded to hundredths


def test_a_stop_request_checkpoints_the_current_step_and_resumes_to_identical_weights(tmp_path, monkeypatch):
    """SIGTERM in a grid job (Slurm's notice before a requeue or cancel kills it) checkpoints the step in hand, between
    the regular checkpoints, and the run resumes from there to the weights of an uninterrupted run."""
    from bench.tasks.task import get_task
    from bench.training import loop
    from bench.training.runs import RUN_FORMAT, Run, RunDir
    from bench.training.trainer import train_run

    config = {
        "format": RUN_FORMAT, "model": "plain", "model_kwargs": {"blocks": 1, "width": 8, "in_channels": 3}, "task": "denoise",
        "levels": [25.0], "protocol": "joint", "train_dataset": "skimage-train", "options": get_task("denoise").options(), "seed": 0,
        "train": {"steps": 12, "batch": 2, "crop": 16, "lr": 1e-3, "lr_milestones": [], "lr_gamma": 0.1, "checkpoint_every": 8},
    }
    whole = RunDir(tmp_path / "whole", Run(config))
    train_run(whole)
    stopped = RunDir(tmp_path / "stopped", Run(config))
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(loop.STOP, "requested", False)
    try:
        loop.stop_on(signal.SIGTERM)
        monkeypatch.setenv("HYPERBENCH_SIGNAL_AFTER_CHECKPOINT", "5:SIGTERM")  # after step 5: no regular checkpoint there
        with pytest.raises(loop.Stopped, match="after step 6"):
            train_run(stopped)
    finally:
        signal.signal(signal.SIGTERM, previous)
        loop.STOP.requested = False
    records = [json.loads(line) for line in stopped.log_file.read_text().splitlines()]
    assert [r["step"] for r in records] == [6] and not stopped.is_done
    monkeypatch.delenv("HYPERBENCH_SIGNAL_AFTER_CHECKPOINT")
    train_run(stopped)
    assert [json.loads(line)["step"] for line in stopped.log_file.read_text().splitlines()] == [6, 8, 12]
    assert stopped.model_file.read_bytes() == whole.model_file.read_bytes()  # same tensors, same bytes
