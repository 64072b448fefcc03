"""Grid execution through submitit: a smoke grid in real subprocesses (local executor), idempotent jobs,
requeue after preemption, gathering finished runs while unfinished ones are reported as missing, and the
Slurm submission (against stand-in sbatch / sacct / srun commands)."""

import json
import os
import stat

import pandas as pd
import pytest
import yaml

from bench.apps.reproduce import Paths, reproduce, train_all
from bench.common.checkpoint import load_tensors
from bench.common.errors import HyperbenchError
from bench.training.grid import TrainJob, make_executor, submit_runs
from bench.training.grid_options import GridOptions
from bench.training.profiles import PROFILE_DIR, expand, load_profile
from bench.training.runs import RunDir
from bench.training.trainer import train_run
from tests.conftest import require_module

submitit = require_module("submitit", 'pip install -e ".[dev]"', module_level=True)


def _profile(tmp_path, **train):
    """The smoke profile's HyperRes and per-level networks, super-resolution only (2 evaluation levels), no tuning, shorter training."""
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw.pop("tune", None)
    raw["models"] = {name: raw["models"][name] for name in ("hyperres", "perlevel")}
    raw["tasks"] = {"sr": {**raw["tasks"]["sr"], "eval_levels": [2, 4]}}
    raw["train"] = {**raw["train"], "steps": 10, "batch": 2, "crop": 16, "lr_milestones": [], "checkpoint_every": 5, **train}
    path = tmp_path / "grid_smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_profile(str(path))


def _paths(tmp):
    return Paths(runs=tmp / "runs", results=tmp / "results", tables=tmp / "tables")


def _steps(rundir: RunDir) -> list[int]:
    return [json.loads(line)["step"] for line in rundir.log_file.read_text().splitlines() if '"step"' in line]


@pytest.fixture
def quick_reports(monkeypatch):
    """The parameter table builds every registered model at its official size (tens of seconds); not what these tests are about."""
    from bench.reports import tables as report

    columns = ["model", "config", "ours", "official", "paper_claim", "match", "source"]
    monkeypatch.setattr(report, "param_table", lambda profile=None: pd.DataFrame(columns=columns))


def test_local_executor_trains_a_smoke_grid_in_subprocesses(tmp_path):
    profile, paths = _profile(tmp_path), _paths(tmp_path)
    entries = expand(profile)
    runs = [r for e in entries for r in e.runs]
    assert len(runs) == 3
    assert train_all(entries, paths, log=lambda *a: None, grid=GridOptions(executor="local")) == []
    assert all(RunDir(paths.runs, r).is_done for r in runs)
    records = [json.loads((paths.grid_dir() / "jobs" / f"{r.run_id}.json").read_text()) for r in runs]
    assert {rec["executor"] for rec in records} == {"local"}
    assert len({rec["job_id"] for rec in records}) == 3 and str(os.getpid()) not in {rec["job_id"] for rec in records}

    # the job trained exactly what training here trains
    hyperres = next(r for r in runs if r.model == "hyperres")
    here = RunDir(tmp_path / "here", hyperres)
    train_run(here)
    a, _ = load_tensors(RunDir(paths.runs, hyperres).model_file)
    b, _ = load_tensors(here.model_file)
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)

    # idempotent: nothing left to submit, finished runs untouched
    stamps = {r.run_id: RunDir(paths.runs, r).model_file.stat().st_mtime_ns for r in runs}
    lines = []
    assert train_all(entries, paths, log=lines.append, grid=GridOptions(executor="local")) == []
    assert any("0 to train" in line for line in lines) and any("0 to submit" in line for line in lines)
    assert stamps == {r.run_id: RunDir(paths.runs, r).model_file.stat().st_mtime_ns for r in runs}


def test_preempted_job_is_requeued_and_resumes(tmp_path, monkeypatch):
    """Slurm preemption, done by the job itself at an exact point: right after logging its checkpoint of
    step 10 the training process sends itself SIGUSR2 ($HYPERBENCH_SIGNAL_AFTER_CHECKPOINT, inherited by the
    local job), so submitit calls TrainJob.checkpoint and requeues the job; the requeued job resumes the run
    from that checkpoint. No timing window: the signal follows the event, whatever the machine's load."""
    monkeypatch.setenv("HYPERBENCH_SIGNAL_AFTER_CHECKPOINT", "10:SIGUSR2")
    profile, paths = _profile(tmp_path, steps=40, checkpoint_every=5), _paths(tmp_path)
    run = next(r for e in expand(profile, models=["hyperres"]) for r in e.runs)
    rundir = RunDir(paths.runs, run)
    (_, job), = submit_runs([run], paths.runs, paths.grid_dir(), GridOptions(executor="local"), log=lambda *a: None)
    job.result()
    steps = _steps(rundir)
    output = job.stdout() + (job.stderr() or "")
    assert "preempted" in output and "Requeued" in output
    assert rundir.is_done and steps[-1] == 40
    assert steps == [5, 10, 15, 20, 25, 30, 35, 40]  # resumed from step 10's checkpoint: nothing redone, nothing skipped


def test_checkpoint_requeues_the_same_job_and_jobs_are_idempotent(tmp_path):
    profile = _profile(tmp_path)
    run = next(r for e in expand(profile, models=["hyperres"]) for r in e.runs)
    job = TrainJob(tmp_path / "runs", run.config)
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function == job and delayed.function is not job
    first = job()
    rundir = RunDir(tmp_path / "runs", run)
    stamp = rundir.model_file.stat().st_mtime_ns
    assert job() == first and rundir.model_file.stat().st_mtime_ns == stamp  # a finished run is not trained again


def test_each_call_gathers_what_is_done_and_evaluation_jobs_equal_a_local_evaluation(tmp_path, quick_reports):
    profile, paths = _profile(tmp_path), _paths(tmp_path)
    train_all(expand(profile, models=["hyperres"]), paths, log=lambda *a: None)  # only HyperRes has finished
    lines = []
    out = reproduce(profile, paths, log=lines.append, grid=GridOptions(executor="debug", wait=False))  # jobs submitted, none run
    assert sorted(r.model for r in out["missing"]) == ["perlevel", "perlevel"]
    assert [e.model for e in out["unevaluated"]] == ["hyperres"]  # its evaluation is a job of its own, not run yet
    assert any("reported as missing" in line for line in lines) and any("evaluation: 1 jobs to submit" in line for line in lines)
    records = [json.loads(p.read_text()) for p in (paths.grid_dir() / "jobs").glob("eval-*.json")]
    assert [(r["kind"], r["model"], r["task"]) for r in records] == [("eval", "hyperres", "sr")]
    table = pd.read_csv(paths.tables_dir(profile.name) / "table3_sr.csv")
    assert table.ours.isna().all()  # nothing evaluated: every entry reported as missing

    out = reproduce(profile, paths, log=lines.append, grid=GridOptions(executor="debug", wait=True))  # the next call picks up
    assert out["missing"] == [] and out["unevaluated"] == []
    grid_rows = pd.read_csv(out["results"])
    assert set(grid_rows.model) == {"hyperres", "perlevel", "degraded-input"}
    from bench.apps.grid_status import job_rows

    states = {r["entry"]: r["state"] for r in job_rows(paths.grid_dir(), paths.runs)}
    assert states["evaluate perlevel sr"] == "finished" and states["evaluate hyperres sr"] == "finished"

    # the same runs evaluated here, in this process, give the same numbers to the last bit
    here = Paths(runs=paths.runs, results=tmp_path / "here", tables=tmp_path / "here_tables")
    local = pd.read_csv(reproduce(profile, here, log=lambda *a: None)["results"])
    key = ["model", "level", "metric"]
    merged = grid_rows.merge(local, on=key, suffixes=("_grid", "_here"), validate="one_to_one")
    assert len(merged) == len(local) and (merged.value_grid == merged.value_here).all()


def _stand_in(folder, name, body):
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_submission_is_one_array_and_skips_queued_runs(tmp_path, monkeypatch):
    profile, paths = _profile(tmp_path), _paths(tmp_path)
    runs = [r for e in expand(profile) for r in e.runs]
    options = GridOptions.from_settings({"partition": "gpu", "time_min": 90}, executor="slurm", gpus_per_job=2, array_parallelism=2)
    original_path = os.environ.get("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HyperbenchError, match="not a Slurm login node"):
        make_executor(options, tmp_path)

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "srun", "exit 0\n")
    _stand_in(bin_dir, "sbatch", f'for a; do last="$a"; done; cp "$last" {tmp_path}/script.sh; echo "Submitted batch job 4242"\n')
    _stand_in(bin_dir, "sacct", 'printf "JobID|State|NodeList\\n4242_0|PENDING|\\n4242_1|RUNNING|\\n4242_2|COMPLETED|\\n"\n')
    _stand_in(bin_dir, "squeue", "exit 1\n")  # squeue cannot answer: the job states come from sacct
    monkeypatch.setenv("PATH", f"{bin_dir}:{original_path}")
    submitted = submit_runs(runs, paths.runs, paths.grid_dir(), options, log=lambda *a: None)
    assert [job.job_id for _, job in submitted] == ["4242_0", "4242_1", "4242_2"]
    script = (tmp_path / "script.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --time=90",
                 "#SBATCH --array=0-2%2", "#SBATCH --signal=USR2"):
        assert line in script, line

    lines = []
    again = submit_runs(runs, paths.runs, paths.grid_dir(), options, log=lines.append)  # 4242_0 pending, 4242_1 running, 4242_2 ended
    assert [run.run_id for run, _ in again] == [submitted[2][0].run_id]
    assert "2 already queued or running" in lines[0]


def test_bad_grid_settings_name_the_problem(tmp_path):
    with pytest.raises(HyperbenchError, match="executor 'pbs'"):
        GridOptions.from_settings({}, executor="pbs")
    with pytest.raises(HyperbenchError, match="grid.gpus_per_job = -1"):
        GridOptions.from_settings({"gpus_per_job": -1})
    assert GridOptions.from_settings({"gpus_per_job": 0}).gpus()[0] == 0  # a CPU partition
    runs = [r for e in expand(_profile(tmp_path)) for r in e.runs]  # batch 2
    with pytest.raises(HyperbenchError, match="cannot be split over 3 GPUs"):
        submit_runs(runs, tmp_path / "runs", tmp_path / "grid", GridOptions(executor="slurm", gpus_per_job=3), log=lambda *a: None)
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**raw, "grid": {"partition": "gpu", "walltime": 3}}))
    with pytest.raises(HyperbenchError, match="unknown grid keys"):
        load_profile(str(path))


def test_cli_reproduce_with_the_debug_executor(tmp_path, quick_reports):
    from typer.testing import CliRunner

    from bench.apps.cli import app

    profile = _profile(tmp_path)
    result = CliRunner().invoke(app, ["reproduce", "-p", str(profile.source), "-m", "hyperres", "--executor", "debug",
                                      "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
                                      "--tables-dir", str(tmp_path / "tables")])
    assert result.exit_code == 0, result.output
    assert "1 to submit (debug)" in result.output and "not finished" not in result.output
    (run,) = [r for e in expand(profile, models=["hyperres"]) for r in e.runs]
    assert RunDir(tmp_path / "runs", run).is_done


def test_without_accounting_squeue_says_which_jobs_are_queued(tmp_path, monkeypatch):
    """Small clusters run without slurmdbd: sacct fails, squeue still lists queued and running jobs."""
    profile, paths = _profile(tmp_path), _paths(tmp_path)
    runs = [r for e in expand(profile) for r in e.runs]
    options = GridOptions.from_settings({}, executor="slurm", gpus_per_job=0)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "srun", "exit 0\n")
    _stand_in(bin_dir, "sbatch", f'for a; do last="$a"; done; cp "$last" {tmp_path}/script.sh; echo "Submitted batch job 77"\n')
    _stand_in(bin_dir, "sacct", 'echo "Slurm accounting storage is disabled" >&2; exit 1\n')
    _stand_in(bin_dir, "squeue", 'case "$3" in 77_0) echo RUNNING;; 77_1) echo PENDING;; *) ;; esac\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    lines = []
    submitted = submit_runs(runs, paths.runs, paths.grid_dir(), options, log=lines.append)
    assert len(submitted) == 3 and "Slurm: 0 GPU(s) per job" in lines[1]
    script = (tmp_path / "script.sh").read_text()
    assert "--gpus" not in script and "--gres" not in script and "#SBATCH --ntasks-per-node=1" in script  # a CPU job
    again = submit_runs(runs, paths.runs, paths.grid_dir(), options, log=lambda *a: None)
    assert [run.run_id for run, _ in again] == [submitted[2][0].run_id]  # 77_2 left the queue: submitted again


def test_gpus_per_job_defaults_to_the_device_and_says_why():
    assert GridOptions(executor="slurm").gpus() == (0, GridOptions(executor="slurm").gpus()[1])
    assert GridOptions(executor="slurm", device="cuda:1").gpus()[0] == 1
    assert GridOptions(executor="slurm", device="cuda", gpus_per_job=0).gpus()[0] == 0  # an explicit 0 wins
    assert "CPU job" in GridOptions(executor="slurm").gpus()[1]


def test_a_refused_submission_names_the_options_and_leaves_nothing_behind(tmp_path, monkeypatch):
    profile, paths = _profile(tmp_path), _paths(tmp_path)
    runs = [r for e in expand(profile) for r in e.runs]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "srun", "exit 0\n")
    _stand_in(bin_dir, "sbatch", 'echo "sbatch: error: Invalid generic resource (gres) specification" >&2; exit 1\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    with pytest.raises(HyperbenchError) as err:
        submit_runs(runs, paths.runs, paths.grid_dir(), GridOptions(executor="slurm", gpus_per_job=1, partition="cpu"), log=lambda *a: None)
    text = str(err.value)
    assert "Invalid generic resource" in text and "--gpus-per-job (1; 0 on a partition without GPUs)" in text and "--partition (cpu" in text
    assert not [p for p in paths.grid_dir().rglob("*") if p.is_file()]  # no orphan job pickles, no job records


def test_an_entry_may_ask_for_its_own_resources_in_an_array_of_its_own(tmp_path, monkeypatch):
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw["models"]["hinet"] = {**raw["models"]["hinet"], "grid": {"mem_gb": 32, "cpus_per_job": 4}}
    path = tmp_path / "resources.yaml"
    path.write_text(yaml.safe_dump(raw))
    profile = load_profile(str(path))
    entries = [e for e in expand(profile, ["denoise"]) if e.model in ("hinet", "ffdnet")]
    assert {e.model: e.grid for e in entries} == {"hinet": {"mem_gb": 32, "cpus_per_job": 4}, "ffdnet": {}}
    assert {r.run_id for e in entries for r in e.runs} == {r.run_id for e in expand(load_profile("smoke"), ["denoise"]) if e.model in ("hinet", "ffdnet")
                                                          for r in e.runs}  # resources are no part of a run's id
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "srun", "exit 0\n")
    _stand_in(bin_dir, "squeue", "exit 0\n")
    _stand_in(bin_dir, "sbatch", f'for a; do last="$a"; done; n=$(ls {tmp_path}/script*.sh 2>/dev/null | wc -l); cp "$last" {tmp_path}/script$n.sh; '
                                 'echo "Submitted batch job 9$n"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    resources = {r.run_id: e.grid for e in entries for r in e.runs if e.grid}
    submit_runs([r for e in entries for r in e.runs], tmp_path / "runs", tmp_path / "grid", GridOptions(executor="slurm", mem_gb=4),
                log=lambda *a: None, resources=resources)
    scripts = sorted(tmp_path.glob("script*.sh"))
    assert len(scripts) == 2  # two arrays
    texts = [p.read_text() for p in scripts]
    assert any("--mem=4G" in t or "--mem=4096" in t for t in texts) and any("--mem=32G" in t or "--mem=32768" in t for t in texts)
    assert any("--cpus-per-task=4" in t for t in texts)
    path.write_text(yaml.safe_dump({**raw, "models": {**raw["models"], "hinet": {"width": 4, "grid": {"partition": "big"}}}}))
    with pytest.raises(HyperbenchError, match="models.hinet.grid sets"):
        load_profile(str(path))


def test_grid_status_reads_the_job_records_logs_and_runs(tmp_path, monkeypatch):
    import json

    from bench.apps.grid_status import job_rows

    monkeypatch.setenv("PATH", "/nonexistent")  # no squeue: the state comes from the run folder
    grid, runs = tmp_path / "grid", tmp_path / "runs"
    for job, run, done in (("7_0", "aaa", True), ("7_1", "bbb", False)):
        record = {"run_id": run, "job_id": job, "executor": "slurm", "folder": str(grid / "logs" / "%j"), "model": "hyperres",
                  "task": "sr", "levels": [2.0, 3.0]}
        (grid / "jobs").mkdir(parents=True, exist_ok=True)
        (grid / "jobs" / f"{run}.json").write_text(json.dumps(record))
        (runs / run).mkdir(parents=True)
        (runs / run / "log.jsonl").write_text('{"step": 4, "segment": 1, "segment_s": 1.5}\n{"step": 8, "segment": 2, "segment_s": 2.5}\n')
        if done:
            (runs / run / "done").write_text(json.dumps({"wall_s": 4.0}))
        (grid / "logs" / job).mkdir(parents=True)
        (grid / "logs" / job / f"{job}_0_log.out").write_text("starting\nstep 8\n")
        (grid / "logs" / job / f"{job}_0_log.err").write_text("Traceback\nMemoryError: out of memory\n")
    rows = {r["job"]: r for r in job_rows(grid, runs)}
    assert rows["7_0"]["state"] == "finished" and rows["7_0"]["elapsed_s"] == 4.0 and rows["7_0"]["requeues"] == 1 and not rows["7_0"]["why"]
    assert rows["7_1"]["state"] == "ended, run unfinished" and "MemoryError: out of memory" in rows["7_1"]["why"]
    assert rows["7_1"]["last line"] == "step 8" and rows["7_1"]["log"].endswith("7_1_0_log.out")
    assert [r["job"] for r in job_rows(grid, runs, {"aaa"})] == ["7_0"]
