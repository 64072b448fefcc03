"""`hyperbench grid status`: every recorded grid job of a results folder: its run, state, elapsed time, requeues,
last log line and where its log is; a job that ended without finishing its run says why (its stderr's last lines)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.training.grid import squeue_state


def job_rows(grid_dir: Path, runs_dir: Path, run_ids: set[str] | None = None) -> list[dict]:
    """One row per recorded job: training jobs (one per run) and evaluation jobs (one per entry and task)."""
    rows = []
    for record_file in sorted((grid_dir / "jobs").glob("*.json")):
        record = json.loads(record_file.read_text())
        evaluation = record.get("kind") == "eval"
        if run_ids is not None and not set(record["runs"] if evaluation else [record["run_id"]]) & run_ids:
            continue
        logs = Path(record["folder"].replace("%j", record["job_id"]))
        out, err = _newest(logs, "*_log.out"), _newest(logs, "*_log.err")
        queued = squeue_state(record["job_id"]) if record.get("executor") == "slurm" else None
        if evaluation:
            done = all(Path(f).exists() for f in record["outputs"])
            state = queued or ("finished" if done else "ended, not evaluated")
            entry, elapsed = f"evaluate {record['model']} {record['task']}", record.get("elapsed_s")
            requeues = max(0, _starts(out) - 1)
        else:
            run_dir = Path(runs_dir) / record["run_id"]
            done = (run_dir / "done").exists()
            state = queued or ("finished" if done else "ended, run unfinished")
            logged = _records(run_dir)
            requeues = max((r.get("segment", 1) for r in logged), default=1) - 1  # segments: 1 + the requeues and resumes
            elapsed = json.loads((run_dir / "done").read_text()).get("wall_s") if done else logged[-1].get("segment_s") if logged else None
            entry = f"{record['model']} {record['task']} {','.join(f'{v:g}' for v in record['levels'])}"
        ended = state.startswith("ended")
        rows.append({
            "run": record["run_id"], "entry": entry, "job": record["job_id"], "state": state, "elapsed_s": elapsed,
            "requeues": requeues, "last line": _last_line(out), "log": str(out or logs),
            "why": " | ".join(_tail(err, 3) or _tail(out, 1)) if ended else "",
        })
    return rows


def _starts(log: Path | None) -> int:
    """How often submitit started the job (a requeued job starts again into the same log)."""
    return log.read_text(errors="replace").count("Starting with JobEnvironment") if log and log.exists() else 0


def _newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


def _tail(path: Path | None, n: int) -> list[str]:
    if path is None or not path.exists():
        return []
    return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()][-n:]


def _last_line(path: Path | None) -> str:
    lines = _tail(path, 1)
    return lines[0][-60:] if lines else ""


def _records(run_dir: Path) -> list[dict]:
    """The run's checkpoint log (bench.training.loop writes one record per checkpoint)."""
    log = run_dir / "log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def profile_run_ids(profile) -> set[str]:
    from bench.training.profiles import expand

    return {run.run_id for entry in expand(profile) for run in entry.runs}
