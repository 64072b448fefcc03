"""The grid on a real Slurm (the `slurm` lane: scripts/slurm-single-node.sh --gpus 2 brings up a single-node
cluster, no accounting database; .ci/run runs these with -m slurm). CPU-partition submission with evaluation jobs,
no job submitted twice, a later call that gathers them into a smoke reproduction equal to the local one, a
GPU-partition request against placeholder GPUs with a 2-task job that reports success, and a requeued run that
resumes to the weights of an uninterrupted one."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require

pytestmark = pytest.mark.slurm  # deselected by default (-m 'not slow and not iqa and not slurm')

ENV = {**os.environ, "HYPERBENCH_QUIET": "1"}
LOCAL_SMOKE = "HYPERBENCH_LOCAL_SMOKE"  # .ci/run: the gate's local smoke results.csv, so it is not run twice


@pytest.fixture(autouse=True)
def slurm():
    ready = shutil.which("sinfo") and "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout
    require(bool(ready), "no idle Slurm node here (scripts/slurm-single-node.sh --gpus 2 brings one up)")


def _hyperbench(folder: Path, *args, env=None, timeout=900) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "bench.apps.cli", *args, "--runs-dir", str(folder / "runs"), "--results-dir",
                          str(folder / "results"), "--tables-dir", str(folder / "tables")],
                         capture_output=True, text=True, env=env or ENV, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _smoke_without_local_stages(folder: Path) -> Path:
    """The smoke profile (same name, runs and evaluation) without its budget curves and input-level tuning: those run on
    the submitting machine after the jobs, not through Slurm, and cost CI about 2 minutes; results.csv has no row of them."""
    import yaml

    from bench.training.profiles import PROFILE_DIR

    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw.pop("tune"), raw.pop("budget")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "smoke.yaml").write_text(yaml.safe_dump(raw))
    return folder / "smoke.yaml"


def test_smoke_through_slurm_on_a_cpu_partition_equals_the_local_run(tmp_path):
    """Without waiting: the first call submits the 24 training and 21 evaluation jobs, a second call while they are
    queued submits nothing twice (squeue, not sacct: there is no accounting database), and once the queue is empty
    a third call picks up where the first left off: it gathers every entry and writes the tables."""
    args = ("reproduce", "--profile", str(_smoke_without_local_stages(tmp_path / "profile")), "--executor", "slurm", "--partition", "debug",
            "--cpus-per-job", str(os.cpu_count()), "--mem-gb", "2", "--no-wait")
    first = _hyperbench(tmp_path / "slurm", *args)
    assert "Slurm: 0 GPU(s) per job" in first.stdout and "24 to submit (slurm)" in first.stdout
    assert "evaluation: 21 jobs to submit (slurm)" in first.stdout  # every entry's evaluation on every task, after the training jobs
    second = _hyperbench(tmp_path / "slurm", *args)
    assert "0 to submit (slurm)" in second.stdout, second.stdout  # the runs finished by now are skipped, the rest queued
    assert "evaluation: 0 jobs to submit (slurm), 21 already queued or running" in second.stdout, second.stdout
    _wait_until_gone(tmp_path / "slurm")
    third = _hyperbench(tmp_path / "slurm", *args)
    assert "0 to submit" in third.stdout and "evaluation:" not in third.stdout and "not evaluated" not in third.stdout, third.stdout
    status = subprocess.run([sys.executable, "-m", "bench.apps.cli", "grid", "status", "--runs-dir", str(tmp_path / "slurm" / "runs"),
                             "--results-dir", str(tmp_path / "slurm" / "results")], capture_output=True, text=True, env=ENV)
    assert status.stdout.count("evaluate ") == 21 and "ended" not in status.stdout, status.stdout
    script = next((tmp_path / "slurm" / "results" / "grid" / "logs").glob("*/*_submission.sh")).read_text()
    assert "--gpus" not in script and "--gres" not in script and f"--cpus-per-task={os.cpu_count()}" in script
    local = os.environ.get(LOCAL_SMOKE)
    if not local:  # by hand: run the local reproduction here
        _hyperbench(tmp_path / "local", "reproduce", "--profile", "smoke")
        local = tmp_path / "local" / "results" / "smoke" / "results.csv"
    gate = subprocess.run([sys.executable, "-m", "bench.apps.cli", "regress", str(tmp_path / "slurm" / "results" / "smoke" / "results.csv"),
                           "--against", str(local), "--tol", "psnr=0", "--tol", "ssim=0"], capture_output=True, text=True, env=ENV)
    assert gate.returncode == 0 and "0 regressions, 0 missing, 0 improvements, 0 new" in " ".join(gate.stdout.split()), gate.stdout
    rows = pd.read_csv(tmp_path / "slurm" / "results" / "smoke" / "results.csv", dtype={"train_threads": str})
    assert set(rows[rows.model != "degraded-input"].train_threads.astype(str)) == {str(os.cpu_count())}  # the job's CPUs, not the node's
    assert (tmp_path / "slurm" / "tables" / "smoke" / "fig_visual_sr.png").exists()  # drawn from the runs the jobs trained


def _wait_until_gone(folder: Path, limit_s: float = 600) -> None:
    ids = {p.stem: p for p in (folder / "results" / "grid" / "jobs").glob("*.json")}
    end = time.time() + limit_s
    while time.time() < end and subprocess.run(["squeue", "-h", "-u", os.environ.get("USER", "root")], capture_output=True, text=True).stdout.strip():
        time.sleep(2)
    assert ids


def test_a_gpu_partition_job_asks_for_its_gpus_and_a_two_task_job_reports_success(tmp_path):
    out = _hyperbench(tmp_path, "reproduce", "--profile", str(_smoke_without_local_stages(tmp_path / "profile")), "--tasks", "sr",
                      "--models", "hyperres", "--executor", "slurm", "--partition", "gpu", "--gpus-per-job", "2", "--cpus-per-job", "1", "--mem-gb", "2", "--wait")
    assert "Slurm: 2 GPU(s) per job" in out.stdout and "failed" not in out.stdout, out.stdout
    import json

    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "grid" / "jobs").glob("*.json")]
    scripts = {r.get("kind", "train"): next((tmp_path / "results" / "grid" / "logs").glob(f"{r['job_id'].split('_')[0]}*/*_submission.sh")).read_text()
               for r in records}
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2"):
        assert line in scripts["train"], line
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1"):  # evaluation: one GPU, one process
        assert line in scripts["eval"], line
    assert "runs not finished" not in out.stdout and (tmp_path / "tables" / "smoke" / "table3_sr.md").exists()


REQUEUE_PROFILE = "name: requeue\nextends: smoke\ntrain: {steps: 800, checkpoint_every: 500}\n"  # about 14 s of training


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run trained here in one go: what both interrupted runs must end at."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    (folder / "requeue.yaml").write_text(REQUEUE_PROFILE)
    _hyperbench(folder, "train", "--profile", str(folder / "requeue.yaml"), "--tasks", "denoise", "--models", "hyperres")
    (run,) = [p for p in (folder / "runs").iterdir() if (p / "model.safetensors").exists()]
    return run


@pytest.mark.parametrize("interrupt", [["scontrol", "requeue"], ["scancel", "--signal=USR2"]], ids=["requeue", "preempt-usr2"])
def test_a_requeued_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, interrupt, uninterrupted):
    """While the run trains: `scontrol requeue` sends SIGTERM, which makes it checkpoint the step in hand
    (bench/training/loop.py stop_on) before Slurm requeues it; USR2 (the signal submitit asks for before the time
    limit, and preemption) makes submitit requeue it, and it resumes from its last checkpoint. Either way the second
    start ends with the weights of an uninterrupted run."""
    profile = tmp_path / "requeue.yaml"
    profile.write_text(REQUEUE_PROFILE)
    selection = ("--profile", str(profile), "--tasks", "denoise", "--models", "hyperres")
    _hyperbench(tmp_path / "slurm", "reproduce", *selection, "--executor", "slurm", "--cpus-per-job", str(os.cpu_count()), "--mem-gb", "2", "--no-wait")
    job = _first_job(tmp_path / "slurm")
    _wait_for(lambda: _state(job) == "RUNNING", 300)
    time.sleep(8)  # past the start-up, into training, well before its end
    subprocess.run([*interrupt, job], check=True)
    _wait_for(lambda: _state(job) == "PENDING", 120)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)  # Slurm holds a requeued job ~2 min
    _wait_for(lambda: _state(job) == "", 600)
    local = uninterrupted
    resumed = tmp_path / "slurm" / "runs" / local.name
    log_out = next((tmp_path / "slurm" / "results" / "grid" / "logs").glob(f"{job}/*_log.out")).read_text()
    assert log_out.count("Starting with JobEnvironment") == 2, "the job did not start twice"  # requeued into the same log
    if interrupt[0] == "scontrol":  # SIGTERM: a checkpoint of the step in hand, the second segment goes on from it
        records = (resumed / "log.jsonl").read_text().splitlines()
        assert '"segment": 1' in records[0] and all('"segment": 2' in line for line in records[1:]), records
    assert (resumed / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()
    subprocess.run(["scancel", "-u", os.environ.get("USER", "root")], check=False)  # its evaluation job: not what this test is about


def _first_job(folder: Path) -> str:
    import json

    return sorted(json.loads(p.read_text())["job_id"] for p in (folder / "results" / "grid" / "jobs").glob("*.json"))[0]


def _state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def _wait_for(condition, limit_s: float) -> None:
    end = time.time() + limit_s
    while not condition():
        assert time.time() < end, "timed out"
        time.sleep(0.5)
