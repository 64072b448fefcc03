"""Concurrent writers: the results store loses and duplicates no rows, and two reproductions into one
results folder (sharing the run folders, as two commands started in one project do) train every run
once and leave a complete, duplicate-free results file."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.evaluation.results import KEY, read_results

SMOKE = Path(__file__).resolve().parents[1] / "bench" / "profiles" / "smoke.yaml"
WRITES = 40

WRITER = """
import sys, time
from pathlib import Path
from bench.evaluation.results import write_rows
path, me, start = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not start.exists():  # both writers are imported and waiting before the first write
    time.sleep(0.005)
def row(model, level, value):
    return {"profile": "p", "model": model, "task": "denoise", "dataset": "d", "level": float(level), "metric": "psnr",
            "value": value, "metric_spec": "rgb|crop0|ssim11g1.5|mean", "seed": 0}
for i in range(int(sys.argv[4])):
    write_rows(path, [row("own-" + me, i, i), row("shared", i, i), row("shared", 1000, i)])
"""


def test_two_processes_writing_one_results_file_lose_and_duplicate_nothing(tmp_path):
    path, start = tmp_path / "results.csv", tmp_path / "start"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(start), str(WRITES)], stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]
    time.sleep(0.5)
    start.touch()
    for proc in writers:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        proc.stderr.close()

    df = read_results(path)
    assert not df.duplicated(subset=KEY).any()
    for name in ("a", "b"):  # disjoint rows: every write of both writers survived
        assert sorted(df[df.model == f"own-{name}"].level) == list(range(WRITES))
    shared = df[df.model == "shared"]  # overlapping rows: one row per key, last writer wins
    assert sorted(shared.level) == [*range(WRITES), 1000]
    assert shared[shared.level == 1000].value.iloc[0] == WRITES - 1
    assert len(df) == 3 * WRITES + 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_two_reproductions_into_one_results_folder(tmp_path):
    profile = yaml.safe_load(SMOKE.read_text())
    profile["name"] = "duo"  # the smoke profile, cut to HyperRes and the per-level nets, two SR levels and 20 steps to stay quick
    profile["models"] = {name: profile["models"][name] for name in ("hyperres", "perlevel")}
    profile["train"].update(steps=20, checkpoint_every=10)
    profile["tasks"] = {"sr": {**profile["tasks"]["sr"], "eval_levels": [2, 4]}}
    profile.pop("tune", None)  # input-level tuning studies are not what this test is about
    (tmp_path / "duo.yaml").write_text(yaml.safe_dump(profile))

    args = [sys.executable, "-m", "bench.apps.cli", "reproduce", "--profile", "duo.yaml", "--tasks", "sr",
            "--runs-dir", "results/runs", "--results-dir", "results", "--tables-dir", "tables"]
    env = {**os.environ, "HYPERBENCH_QUIET": "1"}
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    runs = [p for p in (tmp_path / "results" / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 3  # hyperres + two per-level networks
    for run in runs:  # trained once: the second process waited on the run's lock and found it done
        steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
        assert steps == [10, 20], (run.name, steps)
        assert (run / "done").exists()

    df = pd.read_csv(tmp_path / "results" / "duo" / "results.csv")
    assert not df.duplicated(subset=KEY).any()
    # hyperres, perlevel, degraded input x 2 levels x (PSNR, SSIM)
    assert len(df) == 3 * 2 * 2 and set(df.model) == {"hyperres", "perlevel", "degraded-input"}
    assert (tmp_path / "tables" / "duo" / "table3_sr.md").exists()
    assert not list(tmp_path.rglob("*.tmp"))
