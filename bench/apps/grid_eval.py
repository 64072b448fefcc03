"""Evaluation as grid jobs: after training, each entry's evaluation on a task becomes a job of its own, on the
training device (`reproduce --executor slurm|local|debug`). A job writes the same per-image files a local
evaluation writes (bench/apps/reproduce.py evaluate_task), so the submitting machine only gathers them.

Without waiting, each `reproduce` call goes as far as it can: on Slurm the evaluation jobs are submitted with the
training jobs and start after them (afterany); a later call gathers what is stored. A job whose training run is
unfinished when it starts (the run failed or was cancelled) evaluates nothing and says so; the next call submits
both again. Every job is recorded under <results>/grid/jobs/eval-<task>-<entry>-<key>.json."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from bench.training.grid import absolute_data_root, live_job, record_path, submit_batch, threads_per_job, use_job_threads, wait_for
from bench.training.grid_options import GridOptions
from bench.training.profiles import Entry, Profile
from bench.training.runs import RunDir


class EvalJob:
    """One entry's evaluation on one task (and the degraded input's rows, when not stored yet)."""

    def __init__(self, profile: Profile, entry: Entry, paths, data_root=None, threads: int | None = None, record: str | None = None):
        self.profile, self.entry, self.paths, self.data_root, self.threads, self.record = profile, entry, paths, data_root, threads, record

    def __call__(self) -> dict:
        import json

        from bench.apps.evaluate_entries import deterministic, evaluate_task
        from bench.common.atomic import atomic_write_text

        use_job_threads(self.threads)  # the job's CPUs, as a local evaluation with that many threads
        deterministic()
        unfinished = [run.run_id for run in self.entry.runs if not RunDir(self.paths.runs, run).is_done]
        if unfinished:  # its training job failed or was cancelled: the next reproduce call submits both again
            print(f"not evaluated: {self.entry.model} ({self.entry.task}) has unfinished runs {', '.join(unfinished)}", flush=True)
            return {"evaluated": False, "unfinished": unfinished}
        t0 = time.time()
        evaluate_task(self.profile, self.entry.task, [self.entry], self.paths, self.data_root)
        elapsed = time.time() - t0
        if self.record and Path(self.record).exists():  # grid status shows how long it took
            record = json.loads(Path(self.record).read_text())
            atomic_write_text(Path(self.record), json.dumps({**record, "elapsed_s": round(elapsed, 1)}, indent=2))
        return {"evaluated": True, "elapsed_s": elapsed}

    def checkpoint(self, *args, **kwargs):
        """Preempted or timed out: requeue the same evaluation (it starts over; stored files are kept)."""
        import submitit

        return submitit.helpers.DelayedSubmission(EvalJob(self.profile, self.entry, self.paths, self.data_root, self.threads, self.record))


def job_name(profile: Profile, entry: Entry, paths) -> str:
    """The record name of an entry's evaluation: its per-image file's, so a changed evaluation is a new job."""
    from bench.evaluation.results import per_image_file

    return "eval-" + per_image_file(paths.eval_dir(), profile, entry.task, entry).stem


def outputs(profile: Profile, entry: Entry, paths) -> list[Path]:
    """The files an entry's evaluation stores: its per-image rows of every metric of the profile, and the degraded input's."""
    from bench.evaluation.results import per_image_file
    from bench.metrics.iqa import profile_specs
    from bench.tasks.task import get_task

    metrics = [None, *profile_specs(profile, get_task(entry.task))]
    return [per_image_file(paths.eval_dir(), profile, entry.task, who, m) for who in (entry, None) for m in metrics]


def evaluated(profile: Profile, entry: Entry, paths) -> bool:
    return all(path.exists() for path in outputs(profile, entry, paths))


def evaluate_on_grid(profile: Profile, entries: list[Entry], paths, options: GridOptions, data_root=None, log=print) -> list[Entry]:
    """Submit the evaluation of every entry not evaluated yet (one job per entry and task), wait when the executor
    does; returns the entries whose evaluation is stored. On Slurm an entry still training is submitted too, to start
    after its training jobs; elsewhere it waits for a later call."""
    data_root = absolute_data_root(data_root)
    paths = replace(paths, runs=Path(paths.runs).resolve(), results=Path(paths.results).resolve())  # jobs may start elsewhere
    folder = paths.grid_dir()
    todo, queued, after = [], 0, set()
    for entry in entries:
        if evaluated(profile, entry, paths):
            continue
        if live_job(folder, job_name(profile, entry, paths)):
            queued += 1
            continue
        training = [live_job(folder, run.run_id) for run in entry.runs if not RunDir(paths.runs, run).is_done]
        if training and (options.executor != "slurm" or not all(training)):
            continue  # no job to start after (a failed run is resubmitted by the next call), or no dependencies here
        after.update(job for job in training if job)
        todo.append(entry)
    if todo or queued:
        log(f"evaluation: {len(todo)} jobs to submit ({options.executor}), {queued} already queued or running")
    groups: dict[tuple, list[Entry]] = {}  # the entry's own resources (models.X.grid), as for its training
    for entry in todo:
        groups.setdefault(tuple(sorted(entry.grid.items())), []).append(entry)
    submitted = []
    for own, group in groups.items():
        group_options = replace(options, **dict(own))
        group_options = replace(group_options, gpus_per_job=min(1, group_options.gpus()[0]))  # evaluation is not data-parallel
        threads = threads_per_job(group_options, len(group))
        jobs = [(name, EvalJob(profile, e, paths, data_root, threads, str(record_path(folder, name))),
                 {"kind": "eval", "run_id": name, "model": e.model, "task": e.task, "seed": e.seed,
                  "runs": [run.run_id for run in e.runs], "outputs": [str(f) for f in outputs(profile, e, paths)]})
                for e, name in ((e, job_name(profile, e, paths)) for e in group)]
        jobs_out = submit_batch(jobs, folder, group_options, log, after=sorted(after))
        for entry, job in zip(group, jobs_out):
            log(f"  job {job.job_id}: evaluate {entry.model} {entry.task}" + (f" after jobs {', '.join(sorted(after))}" if after else ""))
        submitted += list(zip(group, jobs_out))
    if options.waits:
        wait_for(submitted, log, describe=lambda e: f"evaluate {e.model} {e.task}")
    elif submitted:
        log(f"not waiting for {len(submitted)} evaluation jobs; run the same command again to gather them")
    return [e for e in entries if evaluated(profile, e, paths)]

