"""Data-parallel training (2 CPU processes, gloo) follows the single-process loss curve on the combined
batch; the batch is split by crops; the profile's gpu flags are recorded in run configs only when on."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from bench.common.checkpoint import load_tensors
from bench.common.errors import HyperbenchError
from bench.training import distributed
from bench.training.profiles import PROFILE_DIR, expand, load_profile
from bench.training.runs import RunDir
from bench.training.trainer import train_run
from tests.conftest import require

STEPS = 5


def _tiny_run(gpu=None):
    """The smoke profile's HyperRes denoising run, shortened, logging every step."""
    profile = load_profile("smoke")
    profile.train = {**profile.train, "steps": STEPS, "batch": 4, "crop": 16, "checkpoint_every": 1, "lr_milestones": []}
    profile.gpu = gpu or {}
    (entry,) = expand(profile, ["denoise"], ["hyperres"])
    return entry.runs[0]


def _losses(rundir: RunDir) -> list[float]:
    return [json.loads(line)["loss"] for line in rundir.log_file.read_text().splitlines() if "loss" in line]


def _worker(rank, world, init_file, runs_dir, config):
    os.environ["HYPERBENCH_QUIET"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    shard, sizes = distributed.shard_crops, []

    def recording_shard(tensors, levels):  # which part of each step's batch this rank trained on
        out = shard(tensors, levels)
        sizes.append([len(tensors[0]), len(out[0])])
        return out

    distributed.shard_crops = recording_shard
    try:
        from bench.training.runs import Run

        train_run(RunDir(runs_dir, Run(config)))
        (Path(runs_dir) / f"rank{rank}.json").write_text(json.dumps(sizes))
    finally:
        distributed.shard_crops = shard
        dist.destroy_process_group()


def test_two_processes_follow_the_single_process_loss_curve(tmp_path):
    run = _tiny_run()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = RunDir(tmp_path / "single", run)
        train_run(single)
    finally:
        torch.set_num_threads(threads)
    parallel = RunDir(tmp_path / "parallel", run)
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "parallel"), run.config), nprocs=2, join=True)

    assert parallel.is_done and json.loads(parallel.done_file.read_text())["processes"] == 2
    for r in range(2):  # every step: the 4 levels x 4 crops batch, of which this rank kept 4 levels x 2 crops
        assert json.loads((tmp_path / "parallel" / f"rank{r}.json").read_text()) == [[16, 8]] * STEPS
    one, two = _losses(single), _losses(parallel)
    assert len(one) == len(two) == STEPS  # rank 0 alone wrote the log
    assert one[0] != one[-1]  # the curve moves: the comparison is not between constants
    assert two == pytest.approx(one, rel=1e-4)
    a, _ = load_tensors(single.model_file)
    b, _ = load_tensors(parallel.model_file)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-6), key


def test_each_rank_takes_its_crops_at_every_level(monkeypatch):
    levels, crops = 3, 4
    x = torch.arange(levels * crops, dtype=torch.float32).view(-1, 1, 1, 1)  # level-major: sample k*B + b
    lv = torch.tensor([15.0, 35.0, 55.0]).repeat_interleave(crops)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    parts = []
    for r in range(2):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        xs, ls = distributed.shard_crops((x, lv), levels)
        parts.append(xs.flatten().tolist())
        assert ls.tolist() == [15.0, 15.0, 35.0, 35.0, 55.0, 55.0]
    assert parts == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(HyperbenchError, match="cannot be split evenly over 3 processes"):
        distributed.shard_crops((x, lv), levels)


def test_gpu_flags_enter_run_configs_only_when_on(tmp_path):
    plain = load_profile("smoke")
    ids = {r.run_id for e in expand(plain) for r in e.runs}
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    for flags in ({}, {"bf16": False, "channels_last": False, "compile": False}):
        path = tmp_path / "flags_off.yaml"
        path.write_text(yaml.safe_dump({**raw, "gpu": flags}))
        assert {r.run_id for e in expand(load_profile(str(path))) for r in e.runs} == ids
    path = tmp_path / "flags_on.yaml"
    path.write_text(yaml.safe_dump({**raw, "gpu": {"bf16": True, "channels_last": True, "compile": False}}))
    runs = [r for e in expand(load_profile(str(path))) for r in e.runs]
    assert all(r.config["gpu"] == {"bf16": True, "channels_last": True} for r in runs)
    assert not {r.run_id for r in runs} & ids
    for bad, message in (({"fp8": True}, "unknown gpu flags"), ({"bf16": "yes"}, "is not true or false")):
        path.write_text(yaml.safe_dump({**raw, "gpu": bad}))
        with pytest.raises(HyperbenchError, match=message):
            load_profile(str(path))


AVX2_CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n"
AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM_CPUINFO = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def test_bf16_autocast_on_a_cpu_without_bf16_instructions_is_named_before_training():
    """Emulated bf16 (AVX2: about 7x slower than fp32 for long's 4 x 32 step, measured on the 2-core AVX2
    machine) is said before the runs start; CPUs with bf16 instructions, GPUs and fp32 runs say nothing."""
    assert distributed.cpu_has_native_bf16(AVX2_CPUINFO) is False
    assert distributed.cpu_has_native_bf16(AMX_CPUINFO) is True
    assert distributed.cpu_has_native_bf16(ARM_CPUINFO) is True
    assert distributed.cpu_has_native_bf16("processor\t: 0\n") is None
    long_runs = [run.config for e in expand(load_profile("long"), ["denoise"]) for run in e.runs]
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    warning = distributed.emulated_bf16_warning(long_runs, cpu, AVX2_CPUINFO)
    flagged = sum(1 for c in long_runs if c.get("gpu", {}).get("bf16"))
    assert flagged and warning.startswith(f"{flagged} runs train under bf16 autocast") and "hyperbench perf" in warning
    assert distributed.emulated_bf16_warning(long_runs, cpu, AMX_CPUINFO) is None
    assert distributed.emulated_bf16_warning(long_runs, cuda, AVX2_CPUINFO) is None
    assert distributed.emulated_bf16_warning(long_runs, cpu, "") is None  # cannot tell: no claim
    quick_runs = [run.config for e in expand(load_profile("quick"), ["denoise"]) for run in e.runs]
    assert distributed.emulated_bf16_warning(quick_runs, cpu, AVX2_CPUINFO) is None


def test_training_with_bf16_and_channels_last_flags(tmp_path, monkeypatch):
    """The flags change how a step runs (the convolutions compute in bf16 on NHWC tensors), not what is
    trained: the same loss scale; without them every convolution is float32 on NCHW tensors."""
    seen = []
    conv2d = torch.nn.functional.conv2d

    def spy(x, *args, **kwargs):
        out = conv2d(x, *args, **kwargs)
        nhwc_only = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        seen.append((out.dtype, nhwc_only))
        return out

    monkeypatch.setattr(torch.nn.functional, "conv2d", spy)
    rundir = RunDir(tmp_path, _tiny_run({"bf16": True, "channels_last": True}))
    summary = train_run(rundir)
    assert rundir.is_done and json.loads(rundir.config.read_text())["gpu"] == {"bf16": True, "channels_last": True}
    flagged, seen[:] = list(seen), []
    assert flagged and all(dtype == torch.bfloat16 for dtype, _ in flagged) and any(nhwc for _, nhwc in flagged)
    reference = RunDir(tmp_path, _tiny_run())
    train_run(reference)
    assert seen and all(dtype == torch.float32 and not nhwc for dtype, nhwc in seen)
    assert summary["final_loss"] == pytest.approx(reference.summary()["final_loss"], rel=0.05)


def test_torchrun_launch_of_the_train_command(tmp_path):
    require(shutil.which("torchrun") is not None, "torchrun is not on PATH (it comes with torch)")
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw.pop("tune", None)
    raw["train"] = {**raw["train"], "steps": 3, "batch": 2, "crop": 16}
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "HYPERBENCH_QUIET": "1", "OMP_NUM_THREADS": "1"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "bench.apps.cli", "train", "-p", str(profile),
           "-t", "sr", "-m", "hyperres", "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (entry,) = expand(load_profile(str(profile)), ["sr"], ["hyperres"])
    rundir = RunDir(tmp_path / "runs", entry.runs[0])
    assert rundir.is_done and rundir.summary()["processes"] == 2
    assert len(_losses(rundir)) >= 1
