"""The gpu-sprint profile (docs/gpu.md) and the CUDA path, exercised on the CPU as far as it goes: the
profile's flags (bf16 autocast, channels_last), the fixed data protocol and loader workers, through
training, evaluation and Table 2."""

import json
import os
import subprocess
import sys

import pandas as pd

from bench.tasks.task import get_task
from bench.training.profiles import expand, load_profile

ON_CPU = """
name: sprint-cpu
extends: gpu-sprint
train: {steps: 3, batch: 2, crop: 16, lr_milestones: [2], checkpoint_every: 3}
models:
  hyperres: {meta_blocks: 1, width: 8}
  perlevel: {blocks: 1, width: 8}
tasks:
  denoise: {train_dataset: skimage-train, eval_dataset: skimage-eval}
"""


def test_the_sprint_trains_the_paper_network_at_table_2s_levels():
    profile = load_profile("gpu-sprint")
    entries = expand(profile)
    table2 = [float(v) for v in get_task("denoise").table_levels]
    assert profile.task_cfg("denoise")["eval_levels"] == table2
    assert sorted(r.levels[0] for e in entries if e.model == "perlevel" for r in e.runs) == table2
    for entry in entries:
        config = entry.runs[0].config
        size = {k: config["model_kwargs"].get(k) for k in ("meta_blocks", "blocks", "width")}
        assert size in ({"meta_blocks": 16, "blocks": None, "width": 64}, {"meta_blocks": None, "blocks": 16, "width": 64})
        assert config["train"]["data_protocol"] == "fixed" and config["gpu"] == {"bf16": True, "channels_last": True}
        assert (config["train"]["steps"], config["train"]["batch"], config["train"]["crop"]) == (3000, 16, 96)
        assert config["train_dataset"] == "CBSD432"


def test_the_sprint_path_runs_end_to_end_on_the_cpu_with_workers(tmp_path):
    (tmp_path / "p.yaml").write_text(ON_CPU)
    env = {**os.environ, "HYPERBENCH_QUIET": "1"}
    args = [sys.executable, "-m", "bench.apps.cli", "reproduce", "--profile", str(tmp_path / "p.yaml"), "--device", "cpu", "--workers", "2",
            "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"), "--tables-dir", str(tmp_path / "tables")]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    results = pd.read_csv(tmp_path / "results" / "sprint-cpu" / "results.csv")
    psnr = results[results.metric == "psnr"]
    assert set(psnr.model) == {"hyperres", "perlevel", "degraded-input"} and sorted(set(psnr.level)) == [5.0, 25.0, 45.0, 65.0, 85.0]
    assert set(results.device) == {"cpu"}
    table = (tmp_path / "tables" / "sprint-cpu" / "table2_denoise.md").read_text()
    assert "bf16 autocast and channels_last" in table  # the profile's conventions sit under the table
    configs = [json.loads((p / "config.json").read_text()) for p in (tmp_path / "runs").iterdir()]
    assert len(configs) == 6 and all(c["gpu"] == {"bf16": True, "channels_last": True} for c in configs)
    assert (tmp_path / "training-data").is_dir()  # the fixed store, beside the runs folder
