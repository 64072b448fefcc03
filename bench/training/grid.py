"""Grid execution through submitit: every unfinished run of a profile becomes one job, keyed by its run id.

Executors: `local` (one subprocess per job on this machine), `debug` (submitit's in-process executor,
for stepping through a job) and `slurm` (one job array). Jobs are idempotent: a job trains its run to
completion or finds it finished (train_run skips done runs, resumes unfinished ones from
train_state.safetensors, and RunDir.training_lock keeps two jobs of one run from training at once).
On preemption or timeout submitit calls TrainJob.checkpoint, which requeues the same job; it resumes
from the run's last checkpoint. Every submitted job is recorded under <results>/grid/jobs/<run_id>.json,
and a run whose recorded job is still queued or running is not submitted again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from bench.common.atomic import atomic_write_text
from bench.common.errors import HyperbenchError
from bench.training.grid_options import EXECUTORS, GridOptions
from bench.training.runs import Run, RunDir

ALIVE_SLURM_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED"}


class TrainJob:
    """One run as a submitit job: train it (or find it finished). The same callable is requeued on preemption."""

    def __init__(self, runs_dir, config: dict, data_root=None, threads: int | None = None):
        self.runs_dir, self.config, self.data_root = str(runs_dir), config, str(data_root) if data_root else None
        self.threads = threads  # torch CPU threads; None: torch's default

    @property
    def run(self) -> Run:
        return Run(self.config)

    def __call__(self) -> dict:
        import submitit
        import torch

        from bench.training.trainer import train_run

        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            tasks = submitit.JobEnvironment().num_tasks
        except RuntimeError:  # called outside a submitit job (by hand, or in a test)
            tasks = 1
        if tasks > 1:  # one task per GPU: the tasks of this job train the run data-parallel
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return train_run(RunDir(Path(self.runs_dir), self.run), self.data_root)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption / timeout: requeue this job; training resumes from train_state.safetensors."""
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.runs_dir, self.config, self.data_root, self.threads))

    def __eq__(self, other):
        return isinstance(other, TrainJob) and vars(self) == vars(other)


def make_executor(options: GridOptions, folder: Path):
    """The submitit executor for `options.executor`, with the Slurm settings."""
    try:
        import submitit
    except ImportError:
        raise HyperbenchError("grid execution needs the submitit package", 'pip install "hyperres-bench[cluster]" (or pip install submitit)') from None
    if options.executor not in EXECUTORS or options.executor == "none":
        raise HyperbenchError(f"no submitit executor for {options.executor!r}", "use --executor local, debug or slurm")
    if options.executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise HyperbenchError("--executor slurm, but sbatch/srun are not on PATH: this is not a Slurm login node",
                              "run from a Slurm login node, or use --executor local on this machine")
    executor = submitit.AutoExecutor(folder=str(folder / "logs" / "%j"), cluster=options.executor)
    params = {"name": "hyperbench", "timeout_min": options.time_min}
    if options.executor == "slurm":
        params.update(gpus_per_node=options.gpus_per_job, tasks_per_node=options.gpus_per_job, nodes=1,
                      slurm_array_parallelism=options.array_parallelism)
        for key, value in (("slurm_partition", options.partition), ("cpus_per_task", options.cpus_per_job),
                           ("mem_gb", options.mem_gb), ("slurm_account", options.account)):
            if value is not None:
                params[key] = value
    executor.update_parameters(**params)
    return executor


def _threads_per_job(options: GridOptions, jobs: int) -> int | None:
    """The local executor runs all jobs at once: share this machine's cores instead of oversubscribing them."""
    if options.executor == "local":
        return max(1, (os.cpu_count() or 1) // jobs)
    return options.cpus_per_job if options.executor == "slurm" else None


def _record_path(folder: Path, run: Run) -> Path:
    return folder / "jobs" / f"{run.run_id}.json"


def _job_alive(record: dict) -> bool:
    """Is the job recorded for a run still queued or running?"""
    if record.get("executor") == "slurm":
        from submitit.slurm.slurm import SlurmJob

        return SlurmJob(record["folder"], record["job_id"]).state.split()[0] in ALIVE_SLURM_STATES
    if record.get("executor") == "local" and str(record.get("job_id", "")).isdigit():
        try:
            os.kill(int(record["job_id"]), 0)  # the local executor's job id is the process id
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return False


def submit_runs(runs: list[Run], runs_dir: Path, folder: Path, options: GridOptions, data_root=None, log=print) -> list[tuple[Run, object]]:
    """Submit one job per unfinished run that has no live job yet; returns (run, job) pairs of the new jobs."""
    todo, skipped = [], 0
    for run in {run.run_id: run for run in runs}.values():  # a run shared by two entries is trained once
        if RunDir(runs_dir, run).is_done:
            continue
        record_file = _record_path(folder, run)
        if record_file.exists() and _job_alive(json.loads(record_file.read_text())):
            skipped += 1
            continue
        todo.append(run)
    log(f"{len(runs)} runs: {len(todo)} to submit ({options.executor}), {skipped} already queued or running")
    processes = options.gpus_per_job if options.executor == "slurm" else 1
    for run in todo:  # data-parallel jobs split every step's crops evenly over their processes
        if run.config["protocol"] == "joint" and run.config["train"]["batch"] % processes:
            raise HyperbenchError(f"train.batch = {run.config['train']['batch']} crops cannot be split over {processes} GPUs per job",
                                  f"use --gpus-per-job with a divisor of {run.config['train']['batch']}")
    if not todo:
        return []
    executor = make_executor(options, folder)
    threads = _threads_per_job(options, len(todo))
    with executor.batch():  # one Slurm array
        jobs = [executor.submit(TrainJob(runs_dir, run.config, data_root, threads)) for run in todo]
    for run, job in zip(todo, jobs):
        record = {"run_id": run.run_id, "job_id": str(job.job_id), "executor": options.executor, "folder": str(folder / "logs" / "%j"),
                  "model": run.model, "task": run.task, "levels": run.levels, "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_text(_record_path(folder, run), json.dumps(record, indent=2))
        log(f"  job {job.job_id}: {run.model} {run.task} levels {run.levels} -> {Path(runs_dir) / run.run_id}")
    return list(zip(todo, jobs))


def wait_for(submitted: list[tuple[Run, object]], log=print) -> list[Run]:
    """Wait for the jobs; a failed job is logged (with the end of its stderr) and its run left unfinished. Returns the failed runs."""
    failed = []
    for run, job in submitted:
        try:
            job.result()
        except Exception as exc:  # a job's failure must not stop the others from being gathered
            failed.append(run)
            first = str(exc).strip().splitlines()
            log(f"  job {job.job_id} ({run.model} {run.task} levels {run.levels}) failed: {first[-1] if first else type(exc).__name__}")
    return failed


def train_on_grid(runs: list[Run], runs_dir: Path, folder: Path, options: GridOptions, data_root=None, log=print) -> list[Run]:
    """Submit the unfinished runs (absolute paths: jobs may start elsewhere), wait when the executor does; returns the runs still unfinished."""
    from bench.data.loading import resolve_data_root

    root = resolve_data_root(data_root)
    submitted = submit_runs(runs, Path(runs_dir).resolve(), Path(folder).resolve(), options, str(root.resolve()) if root else None, log)
    if options.waits:
        wait_for(submitted, log)
    elif submitted:
        log(f"not waiting for {len(submitted)} {options.executor} jobs; logs under {folder}")
    return [run for run in runs if not RunDir(runs_dir, run).is_done]
