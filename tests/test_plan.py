"""`hyperbench reproduce --dry-run`: every run of the profile with its settings and training FLOPs, nothing run."""

import json

import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from bench.apps.cli import app
from bench.models.catalog import create_model
from bench.training.plan import BACKWARD_FACTOR, forward_flops_fit, plan
from bench.training.profiles import expand, load_profile


def _counted(model, side, level):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, model.in_channels, side, side), torch.tensor([level]))
    return counter.get_total_flops()


def test_the_fit_predicts_the_counted_flops_at_another_size():
    for arch, kwargs in (("hyperres", {"meta_blocks": 2, "width": 16}), ("plain", {"blocks": 2, "width": 8}), ("hinet", {"width": 4})):
        const, per_pixel = forward_flops_fit(arch, json.dumps(kwargs, sort_keys=True), 25.0)
        counted = _counted(create_model(arch, **kwargs).eval(), 96, 25.0)
        assert abs(const + per_pixel * 96 * 96 - counted) <= 1e-6 * counted, arch


def test_the_plan_holds_every_run_with_its_cost(tmp_path):
    profile = load_profile("smoke")
    entries = expand(profile)
    planned = plan(entries, tmp_path)
    assert [p.run_id for p in planned] == [r.run_id for e in entries for r in e.runs]
    assert not any(p.done for p in planned)
    joint = next(p for p in planned if p.entry == "hyperres" and p.task == "denoise")
    member = next(p for p in planned if p.entry == "perlevel" and p.task == "denoise")
    staged = next(p for p in planned if p.entry == "adafm" and p.task == "denoise")
    train = profile.train
    assert joint.crops_per_step == train["batch"] * len(joint.levels) and member.crops_per_step == train["batch"]
    assert staged.steps == 2 * train["steps"] and joint.steps == train["steps"]
    kwargs = expand(profile, ["denoise"], ["hyperres"])[0].model_kwargs
    const, per_pixel = forward_flops_fit("hyperres", json.dumps(kwargs, sort_keys=True), 15.0)
    assert joint.train_flops == BACKWARD_FACTOR * (const + per_pixel * train["crop"] ** 2) * joint.crops_per_step * joint.steps


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    result = CliRunner().invoke(app, ["reproduce", "-p", "paper", "--dry-run", "--tflops", "300", "--runs-dir", str(tmp_path / "runs"),
                                      "--results-dir", str(tmp_path / "results"), "--tables-dir", str(tmp_path / "tables")])
    assert result.exit_code == 0, result.output
    assert "profile paper: " in result.output and "hyperres" in result.output and "perlevel" in result.output
    assert "to train" in result.output and "TFLOP/s sustained" in result.output
    assert not list(tmp_path.iterdir())
