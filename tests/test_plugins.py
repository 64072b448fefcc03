"""A baseline added as an external package (tests/fixtures/toy_baseline) shows up in `hyperbench list`,
trains with its own protocol in the smoke profile and lands in the generated tables.

The package is pip-installed into a temporary target folder that only the subprocesses see (PYTHONPATH),
so the global environment stays clean. pip needs no network: --no-index, --no-deps and
--no-build-isolation build it with the setuptools already installed.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

FIXTURE = Path(__file__).parent / "fixtures" / "toy_baseline"
SMOKE = Path(__file__).resolve().parents[1] / "bench" / "profiles" / "smoke.yaml"


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    src = tmp / "src"
    shutil.copytree(FIXTURE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))  # build outside the repo
    site = tmp / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=120,
    )
    assert pip.returncode == 0, pip.stderr
    return site


def _hyperbench(site, *args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HYPERBENCH_QUIET": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "bench.apps.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_installed_plugin_is_listed(toy_site, tmp_path):
    out = _hyperbench(toy_site, "list", "toy*", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "toynet" in out.stdout and "toy-random-level" in out.stdout
    assert "failed to load" not in out.stderr


def test_plugin_is_invisible_without_the_install(tmp_path):
    code = "from bench import list_models; print(list_models())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and "hyperres" in out.stdout
    assert "toynet" not in out.stdout  # the global environment was not touched


def test_plugin_trains_in_smoke_profile_and_reaches_the_tables(toy_site, tmp_path):
    profile = yaml.safe_load(SMOKE.read_text())
    profile["name"] = "smoke-toy"
    profile["models"]["toynet"] = {"width": 8}
    (tmp_path / "smoke-toy.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))

    out = _hyperbench(toy_site, "reproduce", "--profile", "smoke-toy.yaml", "--tasks", "denoise", "--models", "toynet",
                      "--runs-dir", "runs", "--results-dir", "results", "--tables-dir", "tables", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr

    results = pd.read_csv(tmp_path / "results" / "smoke-toy" / "results.csv")
    toy = results[(results.model == "toynet") & (results.metric == "psnr")]
    assert sorted(toy.level) == sorted(profile["tasks"]["denoise"]["eval_levels"])
    assert toy.value.between(5, 60).all()

    md = (tmp_path / "tables" / "smoke-toy" / "table2_denoise.md").read_text()
    toy_rows = [line for line in md.splitlines() if line.startswith("| toynet")]
    assert toy_rows, md
    ours = next(line for line in md.splitlines()[md.splitlines().index(toy_rows[0]):] if "| ours " in line)
    psnr_at_25 = toy[toy.level == 25].value.iloc[0]
    assert f"{psnr_at_25:.2f}" in ours  # the table shows the measured number, not a placeholder

    # without ../shared the tuning step also trains a noise estimator run: count the plugin's runs only
    run_dirs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and json.loads((p / "config.json").read_text())["model"] == "toynet"]
    assert len(run_dirs) == 1 and (run_dirs[0] / "done").exists()
    assert '"protocol": "toy-random-level"' in (run_dirs[0] / "config.json").read_text()
