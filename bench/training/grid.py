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
import signal
import time
from dataclasses import replace
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

        from bench.training.loop import Stopped, stop_on
        from bench.training.trainer import train_run

        try:
            tasks = submitit.JobEnvironment().num_tasks
        except RuntimeError:  # called outside a submitit job (by hand, or in a test)
            tasks = 1
        use_job_threads(self.threads, tasks)
        if tasks > 1:  # one task per GPU: the tasks of this job train the run data-parallel
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        stop_on(signal.SIGTERM)  # Slurm's warning before a requeue or cancel kills the job (about 30 s): checkpoint now
        try:
            return train_run(RunDir(Path(self.runs_dir), self.run), self.data_root)
        except Stopped as exc:  # Slurm requeues the job (scontrol requeue) or the next reproduce resubmits the run
            return {"run_id": self.run.run_id, "stopped": str(exc)}

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption / timeout: requeue this job; training resumes from train_state.safetensors."""
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.runs_dir, self.config, self.data_root, self.threads))

    def __eq__(self, other):
        return isinstance(other, TrainJob) and vars(self) == vars(other)


def use_job_threads(threads: int | None, tasks: int = 1) -> None:
    """Inside a job: torch's threads as given, else as many as the CPUs Slurm gave each task (torch's default is one
    per core of the node, which oversubscribes the CPUs a job was given)."""
    import torch

    threads = threads or slurm_cpus(tasks)
    if threads:
        torch.set_num_threads(threads)


def absolute_data_root(data_root) -> str | None:
    """The data root as an absolute path (a job may start in another folder); None: the dataset's default."""
    from bench.data.loading import resolve_data_root

    root = resolve_data_root(data_root)
    return str(root.resolve()) if root else None


def slurm_cpus(tasks: int = 1) -> int | None:
    """The CPUs Slurm gave each task of this job (None outside Slurm): --cpus-per-task when given, else the
    node's CPUs of the job shared by its tasks (Slurm's default is one CPU per task)."""
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit():
        return int(per_task)
    on_node = os.environ.get("SLURM_CPUS_ON_NODE", "")
    return max(1, int(on_node) // max(1, tasks)) if on_node.isdigit() else None


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
    executor = submitit.AutoExecutor(folder=str(folder / "logs" / "%j"), cluster=options.executor, slurm_max_num_timeout=options.max_requeues)
    params = {"name": "hyperbench", "timeout_min": options.time_min}
    if options.executor == "slurm":
        gpus, _ = options.gpus()
        params.update(tasks_per_node=max(1, gpus), nodes=1, slurm_array_parallelism=options.array_parallelism)
        if gpus:  # a CPU job asks for no generic resource at all (a CPU partition has none to give)
            params["gpus_per_node"] = gpus
        for key, value in (("slurm_partition", options.partition), ("cpus_per_task", options.cpus_per_job),
                           ("mem_gb", options.mem_gb), ("slurm_account", options.account)):
            if value is not None:
                params[key] = value
    executor.update_parameters(**params)
    return executor


def threads_per_job(options: GridOptions, jobs: int) -> int | None:
    """The local executor runs all jobs at once: share this machine's cores instead of oversubscribing them."""
    if options.executor == "local":
        return max(1, (os.cpu_count() or 1) // jobs)
    return options.cpus_per_job if options.executor == "slurm" else None


def record_path(folder: Path, name: str) -> Path:
    """Where the job of a run (its run id) or of an evaluation (eval-...) is recorded."""
    return folder / "jobs" / f"{name}.json"


def _job_alive(record: dict) -> bool:
    """Is the job recorded for a run still queued or running?"""
    if record.get("executor") == "slurm":
        state = squeue_state(record["job_id"])
        if state is None:  # squeue unavailable: ask submitit, which asks sacct (Slurm accounting)
            from submitit.slurm.slurm import SlurmJob

            state = SlurmJob(record["folder"], record["job_id"]).state
        return bool(state.strip()) and state.split()[0] in ALIVE_SLURM_STATES
    if record.get("executor") == "local" and str(record.get("job_id", "")).isdigit():
        try:
            os.kill(int(record["job_id"]), 0)  # the local executor's job id is the process id
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return False


def squeue_state(job_id: str) -> str | None:
    """A job's state from squeue, which needs no accounting database: "" once the job has left the queue (ended),
    None when squeue cannot be asked."""
    import subprocess

    if not shutil.which("squeue"):
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:  # "Invalid job id specified": the job ended long ago
        return "" if "Invalid job id" in out.stderr else None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def submit_runs(runs: list[Run], runs_dir: Path, folder: Path, options: GridOptions, data_root=None, log=print,
                resources: dict | None = None) -> list[tuple[Run, object]]:
    """Submit one job per unfinished run that has no live job yet; returns (run, job) pairs of the new jobs.
    `resources`: run id -> its entry's own grid settings (gpus_per_job, cpus_per_job, mem_gb, time_min)."""
    todo, skipped = [], 0
    for run in {run.run_id: run for run in runs}.values():  # a run shared by two entries is trained once
        if RunDir(runs_dir, run).is_done:
            continue
        if live_job(folder, run.run_id):
            skipped += 1
            continue
        todo.append(run)
    log(f"{len(runs)} runs: {len(todo)} to submit ({options.executor}), {skipped} already queued or running")
    if not todo:
        return []
    groups: dict[tuple, list[Run]] = {}  # one array per set of resources: an entry may ask for its own (models.X.grid)
    for run in todo:
        groups.setdefault(tuple(sorted((resources or {}).get(run.run_id, {}).items())), []).append(run)
    submitted = []
    for own, group in groups.items():
        group_options = replace(options, **dict(own))
        if own:
            log(f"  {len(group)} runs with their entry's resources: {', '.join(f'{k}={v}' for k, v in own)}")
        submitted += _submit_array(group, runs_dir, folder, group_options, data_root, log)
    return submitted


def _submit_array(todo: list[Run], runs_dir: Path, folder: Path, options: GridOptions, data_root, log) -> list[tuple[Run, object]]:
    """One job array of training runs."""
    processes = max(1, options.gpus()[0]) if options.executor == "slurm" else 1
    for run in todo:  # data-parallel jobs split every step's crops evenly over their processes
        if run.config["protocol"] == "joint" and run.config["train"]["batch"] % processes:
            raise HyperbenchError(f"train.batch = {run.config['train']['batch']} crops cannot be split over {processes} GPUs per job",
                                  f"use --gpus-per-job with a divisor of {run.config['train']['batch']}")
    threads = threads_per_job(options, len(todo))
    jobs = [(run.run_id, TrainJob(runs_dir, run.config, data_root, threads),
             {"run_id": run.run_id, "model": run.model, "task": run.task, "levels": run.levels}) for run in todo]
    submitted = submit_batch(jobs, folder, options, log)
    for run, job in zip(todo, submitted):
        log(f"  job {job.job_id}: {run.model} {run.task} levels {run.levels} -> {Path(runs_dir) / run.run_id}")
    return list(zip(todo, submitted))


def submit_batch(jobs: list[tuple[str, object, dict]], folder: Path, options: GridOptions, log, after: list[str] = ()) -> list:
    """Submit (name, callable, record) jobs as one array and record each under <folder>/jobs/<name>.json; `after`: Slurm
    job ids they wait for (afterany: they start when those ended, however). A refused submission is a clear error
    that names the options, and leaves no files behind. Returns submitit's jobs."""
    if options.executor == "slurm":
        gpus, why = options.gpus()
        log(f"Slurm: {gpus} GPU(s) per job ({why})")
    executor = make_executor(options, folder)
    if after and options.executor == "slurm":
        executor.update_parameters(slurm_additional_parameters={"dependency": "afterany:" + ":".join(after)})
    before = {p for p in folder.rglob("*")} if folder.exists() else set()
    try:
        with executor.batch():  # one Slurm array
            submitted = [executor.submit(fn) for _, fn, _ in jobs]
    except Exception as exc:  # sbatch's refusal (submitit raises it with sbatch's stderr)
        for path in sorted(set(folder.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):  # the job pickles it wrote
            path.unlink() if path.is_file() else shutil.rmtree(path, ignore_errors=True)
        said = [line.strip() for line in str(exc).splitlines() if "error" in line.lower()] or [str(exc).strip().splitlines()[-1]]
        gpus, _ = options.gpus()
        raise HyperbenchError(
            f"{options.executor} refused the {len(jobs)} jobs: {said[0][:300]}",
            f"check --partition ({options.partition or 'the default'}: `sinfo` lists them), --gpus-per-job ({gpus}; 0 on a partition "
            f"without GPUs), --cpus-per-job, --mem-gb and --time-min against the partition's limits; nothing was submitted") from None
    for (name, _, record), job in zip(jobs, submitted):
        record = {**record, "job_id": str(job.job_id), "executor": options.executor, "folder": str(folder / "logs" / "%j"),
                  "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_text(record_path(folder, name), json.dumps(record, indent=2))
    return submitted


def live_job(folder: Path, name: str) -> str | None:
    """The id of the job recorded under `name` while it is queued or running, else None."""
    record_file = record_path(folder, name)
    if not record_file.exists():
        return None
    record = json.loads(record_file.read_text())
    return record["job_id"] if _job_alive(record) else None


def wait_for(submitted: list[tuple[object, object]], log=print, describe=None) -> list:
    """Wait for (thing, job) pairs; a failed job is logged (with the end of its stderr) and its thing (a run, an
    evaluation) left unfinished. Returns the things whose jobs failed."""
    describe = describe or (lambda run: f"{run.model} {run.task} levels {run.levels}")
    failed = []
    for run, job in submitted:
        try:
            _left_queue(job)
            job.results()  # every task's result: a multi-GPU job has one task per GPU
        except Exception as exc:  # a job's failure must not stop the others from being gathered
            failed.append(run)
            first = str(exc).strip().splitlines()
            log(f"  job {job.job_id} ({describe(run)}) failed: {first[-1] if first else type(exc).__name__}")
    return failed


def _left_queue(job, poll_s: float = 5.0) -> None:
    """For a Slurm job: wait until squeue no longer lists it. Without accounting (no sacct), submitit cannot tell
    that a job ended without a result and would wait forever: such a job fails here with its stderr's last lines."""
    from submitit.slurm.slurm import SlurmJob

    if not isinstance(job, SlurmJob) or squeue_state(job.job_id) is None:
        return  # local jobs, or no squeue to ask: submitit knows
    while squeue_state(job.job_id):
        time.sleep(poll_s)
    tasks = [job.task(i) for i in range(job.num_tasks)] if job.num_tasks > 1 else [job]
    if not all(t.paths.result_pickle.exists() for t in tasks):
        tail = job.paths.stderr.read_text(errors="replace").strip().splitlines()[-5:] if job.paths.stderr.exists() else []
        raise RuntimeError("the job left the queue without a result (cancelled, killed or failed)" + (": " + " | ".join(tail) if tail else ""))


def train_on_grid(runs: list[Run], runs_dir: Path, folder: Path, options: GridOptions, data_root=None, log=print,
                  resources: dict | None = None) -> list[Run]:
    """Submit the unfinished runs (absolute paths: jobs may start elsewhere), wait when the executor does; returns the runs still unfinished."""
    submitted = submit_runs(runs, Path(runs_dir).resolve(), Path(folder).resolve(), options, absolute_data_root(data_root), log, resources)
    if options.waits:
        wait_for(submitted, log)
    elif submitted:
        log(f"not waiting for {len(submitted)} {options.executor} jobs; logs under {folder}")
    return [run for run in runs if not RunDir(runs_dir, run).is_done]
