"""Recipes applied: each run trains with its entry's official optimiser, betas, schedule, stage lengths,
loss weight, gradient clipping, levels, control mapping and degradation conventions, with the
profile's budget on top; the paper profile departs from the recipes in nothing."""

import json

import numpy as np
import pytest
import torch

from baselines.training import control_endpoints, draw_levels
from bench.common.checkpoint import load_tensors
from bench.common.errors import HyperbenchError
from bench.evaluation.evaluate import load_trained
from bench.models.catalog import create_model
from bench.training.loop import optimise
from bench.training.profiles import expand, load_profile
from bench.training.recipes import Recipe, profile_departures
from bench.training.runs import Run, RunDir
from bench.training.settings import training_settings
from bench.training.trainer import train_run

ENTRIES = {"hyperres", "perlevel", "hyperres-small", "adafm", "cfsnet", "dni", "cresmd", "hinet", "ffdnet"}


@pytest.fixture(scope="module")
def paper():
    profile = load_profile("paper")
    return profile, {(e.model, e.task): e for e in expand(profile)}


def _config(entries, model, task):
    return entries[(model, task)].runs[0].config


def test_the_paper_profile_holds_every_entry_and_departs_from_no_recipe(paper):
    profile, entries = paper
    assert {model for model, _ in entries} == ENTRIES
    for entry, rows in profile_departures(profile, list(entries.values())):
        assert rows == [], (entry.model, entry.task, rows)
    small = {task: e.model_kwargs["meta_blocks"] for (model, task), e in entries.items() if model == "hyperres-small"}
    assert small == {"dejpeg": 1, "denoise": 4, "sr": 2}  # Figs 2, 3, 4
    cresmd = entries[("cresmd", "dejpeg")].model_kwargs
    assert (cresmd["cond_dim"], cresmd["cond_index"], cresmd["blocks"]) == (3, 2, 32)


def test_paper_runs_carry_the_official_optimiser_schedule_stages_and_loss_weight(paper):
    _, entries = paper
    hyperres = _config(entries, "hyperres", "denoise")["train"]
    assert (hyperres["steps"], hyperres["batch"], hyperres["crop"], hyperres["lr"]) == (1000000, 16, 96, 1e-4)
    assert hyperres["lr_milestones"] == [500001] and hyperres["lr_gamma"] == 0.1 and "betas" not in hyperres
    adafm = _config(entries, "adafm", "denoise")
    assert adafm["train"]["stage_steps"] == {"basic": 1000000, "adafm": 500000} and adafm["levels"] == [15.0, 75.0]
    assert adafm["options"]["quantise"] == "round"  # MATLAB im2uint8
    cfsnet = _config(entries, "cfsnet", "denoise")
    assert (cfsnet["train"]["batch"], cfsnet["train"]["crop"], cfsnet["train"]["loss_weight"]) == (128, 40, 0.1)
    assert "stage_steps" not in cfsnet["train"] and cfsnet["train"]["steps"] == 50000  # 50k per step of training
    assert cfsnet["levels"] == [25.0, 50.0] and cfsnet["options"] == {"clip": False, "quantise": "none"}
    assert _config(entries, "cfsnet", "dejpeg")["levels"] == [10.0, 40.0]
    cresmd = _config(entries, "cresmd", "denoise")["train"]
    assert cresmd["betas"] == [0.9, 0.99] and cresmd["lr"] == 5e-4 and cresmd["lr_gamma"] == 0.5
    assert cresmd["lr_milestones"] == [200000, 400000, 600000, 800000] and cresmd["level_distribution"]["kind"] == "beta"
    hinet = _config(entries, "hinet", "denoise")["train"]
    assert (hinet["schedule"], hinet["eta_min"], hinet["grad_clip"], hinet["lr"], hinet["steps"]) == ("cosine", 1e-6, 0.01, 2e-4, 400000)
    assert "lr_milestones" not in hinet


def test_a_profile_budget_overrides_the_recipe_and_keeps_its_free_settings():
    entries = {(e.model, e.task): e for e in expand(load_profile("quick"), tasks=["denoise"])}
    cresmd = _config(entries, "cresmd", "denoise")["train"]
    assert (cresmd["steps"], cresmd["lr"], cresmd["lr_milestones"], cresmd["lr_gamma"]) == (800, 2e-3, [640], 0.1)  # the budget
    assert cresmd["betas"] == [0.9, 0.99]  # free: always the official
    hinet = _config(entries, "hinet", "denoise")["train"]
    assert hinet["schedule"] == "cosine" and hinet["steps"] == 800  # cosine spans the run's steps
    assert "stage_steps" not in _config(entries, "adafm", "denoise")["train"]  # the profile's steps are per stage


def test_control_mappings_are_the_official_ones(paper):
    _, entries = paper
    expected = {  # (model, task): [(level, control)], from the official code and configs
        ("cresmd", "denoise"): [(0, 0.0), (25, 0.5), (50, 1.0), (110, 2.2)],  # sigma / 50
        ("cresmd", "dejpeg"): [(10, 1.0), (40, 62 / 92), (80, 22 / 92)],  # (102 - q) / 92
        ("cfsnet", "denoise"): [(25, 0.0), (50, 1.0)],
        ("cfsnet", "dejpeg"): [(10, 0.0), (40, 1.0)],
        ("adafm", "denoise"): [(15, 0.0), (75, 1.0), (45, 0.5)],
        ("dni", "denoise"): [(15, 1.0), (75, 0.0)],  # alpha 1 = endpoint A
    }
    for (model, task), pairs in expected.items():
        run = _config(entries, model, task)
        with torch.device("meta"):
            net = create_model(run["model"], **run["model_kwargs"])
        net.endpoints = torch.zeros(2)
        net.set_endpoints(*control_endpoints(run))
        for level, control in pairs:
            assert net.control_for(level) == pytest.approx(control), (model, task, level)


def _tiny_run(tmp_path, model, task, kwargs, steps, stage_steps=None):
    """A run of the paper profile's settings for `model`, shrunk to a few steps on tiny crops."""
    entry = next(e for e in expand(load_profile("paper"), tasks=[task], models=[model]))
    config = json.loads(json.dumps(entry.runs[0].config))
    config["model_kwargs"].update(kwargs)
    config["train"].update({"steps": steps, "batch": 2, "crop": 32, "checkpoint_every": 0})
    if stage_steps:
        config["train"]["stage_steps"] = stage_steps
    config["train_dataset"] = "skimage-train"
    return RunDir(tmp_path / "runs", Run(config))


def test_a_staged_run_trains_each_stage_its_own_length_and_schedule(tmp_path):
    rundir = _tiny_run(tmp_path, "adafm", "denoise", {"blocks": 1, "width": 8}, 4, stage_steps={"basic": 3, "adafm": 2})
    rundir.run.config["train"]["lr_milestones"] = [1]
    summary = train_run(rundir)
    log = [json.loads(line) for line in rundir.log_file.read_text().splitlines() if '"stage"' in line]
    assert [(r["stage"], r["step"]) for r in log] == [("basic", 3), ("adafm", 2)]
    assert summary["steps"] == 5
    assert all(r["lr"] == pytest.approx(1e-4 * 0.1) for r in log)  # each stage's schedule restarts: past milestone 1 at its end
    assert load_trained(rundir).endpoints.tolist() == [15.0, 75.0]


def test_cresmd_trains_with_the_official_condition_normalisation(tmp_path):
    rundir = _tiny_run(tmp_path, "cresmd", "dejpeg", {"blocks": 1, "width": 8}, 2)
    train_run(rundir)
    model = load_trained(rundir)
    assert model.endpoints.tolist() == [102.0, 10.0] and model.control_for(10) == pytest.approx(1.0)


def test_the_loop_applies_betas_loss_weight_clipping_and_cosine(tmp_path, monkeypatch):
    rundir = _tiny_run(tmp_path, "hyperres", "denoise", {}, 4)
    rundir.create()
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    model = torch.nn.Module()
    model.weight = weight
    train = {"steps": 4, "batch": 1, "crop": 8, "lr": 0.1, "schedule": "cosine", "eta_min": 0.0,
             "betas": [0.5, 0.9], "loss_weight": 0.1, "grad_clip": 1e-3, "checkpoint_every": 1}
    seen = []

    def loss_fn(rng):
        return 100 * weight.abs().sum()  # gradient norm 100 * sqrt(2), clipped to 1e-3 before the step

    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm):
        seen.append(max_norm)
        return original(params, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    optimise(model, [weight], loss_fn, 4, train, rundir, "joint", 0)
    log = [json.loads(line) for line in rundir.log_file.read_text().splitlines()]
    assert log[0]["loss"] == pytest.approx(0.1 * 100 * 3.0)  # the loss weight
    assert [r["lr"] for r in log] == pytest.approx([0.1 * 0.5 * (1 + np.cos(np.pi * s / 4)) for s in range(4)])
    assert seen == [1e-3] * 4
    _, meta = load_tensors(rundir.state_file)
    assert meta["param_groups"][0]["betas"] == [0.5, 0.9]


def test_cresmd_levels_follow_the_official_beta_distribution():
    rng = np.random.default_rng(0)
    sigma = np.array(draw_levels(rng, 20000, 0, 50, False, {"kind": "beta", "a": 0.5, "b": 1.0, "round": True}))
    assert sigma.min() == 0 and sigma.max() == 50 and np.all(sigma == np.round(sigma))
    assert sigma.mean() == pytest.approx(50 / 3, abs=0.5)  # E[Beta(0.5, 1)] = 1/3: light noise most often
    quality = np.array(draw_levels(rng, 2000, 100, 10, True, {"kind": "beta", "a": 0.5, "b": 1.0, "round": True}))
    assert quality.min() >= 10 and quality.max() <= 100 and np.median(quality) > 70


def test_a_budget_missing_from_profile_and_recipe_is_a_clear_error(tmp_path):
    with pytest.raises(HyperbenchError, match=r"neither the profile nor the x recipe \(denoise\) gives train.steps"):
        training_settings(Recipe("x", "denoise", "a/b@1", {}), {"checkpoint_every": 0}, "profile p")
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nseed: 0\ntrain: {checkpoint_every: 0}\nmodels: {hyperres: {meta_blocks: {sr: 2}}}\n"
                    "tasks: {denoise: {train_dataset: skimage-train, eval_dataset: skimage-eval, train_levels: [15, 75]}}\n")
    with pytest.raises(HyperbenchError, match="models.hyperres.meta_blocks gives no value for denoise"):
        expand(load_profile(str(path)))


def test_hyperres_keeps_its_best_validation_weights(tmp_path):
    """Official model_best.pth: validated every `validate_every_epochs` epochs (an epoch: images // batch
    steps), the weights with the best mean PSNR over the levels are the run's result, the score logged."""
    rundir = _tiny_run(tmp_path, "hyperres", "denoise", {"meta_blocks": 1, "width": 8}, 4)
    config = rundir.run.config
    assert config["train"]["select"] == "best_validation" and config["valid_dataset"] == "Set14"
    config["train"].update({"batch": 2, "validate_every_epochs": 1, "lr": 1e-2})  # 4 training images // 2 = 2 steps an epoch
    config["valid_dataset"] = "skimage-eval"
    summary = train_run(rundir)
    scores = [json.loads(line) for line in rundir.log_file.read_text().splitlines() if "valid_psnr" in line]
    assert [r["step"] for r in scores] == [2, 4]
    best = max(scores, key=lambda r: r["valid_psnr"])
    assert summary["best_step"] == best["step"] and summary["best_valid_psnr"] == best["valid_psnr"]
    kept, meta = load_tensors(rundir.path / "best.safetensors")
    trained = load_trained(rundir).state_dict()
    assert meta["step"] == best["step"] and all(torch.equal(trained[k], v) for k, v in kept.items())


def test_best_validation_needs_a_validation_set_and_select_is_checked(tmp_path):
    text = ("name: p\nseed: 0\ntrain: {checkpoint_every: 0}\nmodels: {hyperres: {meta_blocks: 1, width: 8}}\n"
            "tasks: {denoise: {train_dataset: skimage-train, eval_dataset: skimage-eval, train_levels: [15, 75]}}\n")
    path = tmp_path / "p.yaml"
    path.write_text(text)  # no validation set: the last weights (no key: same run ids), listed as a departure
    profile = load_profile(str(path))
    entries = expand(profile)
    assert "select" not in entries[0].runs[0].config["train"]
    assert ("checkpoint", "best_validation", "last") in profile_departures(profile, entries)[0][1]
    path.write_text(text.replace("checkpoint_every: 0", "checkpoint_every: 0, select: best_validation"))
    with pytest.raises(HyperbenchError, match="train.select is best_validation, but task denoise names no valid_dataset"):
        expand(load_profile(str(path)))
    path.write_text(text.replace("checkpoint_every: 0", "checkpoint_every: 0, select: best"))
    with pytest.raises(HyperbenchError, match="train.select is 'best'"):
        load_profile(str(path))


def test_the_optimiser_follows_the_schedule_across_milestones_and_a_resume(tmp_path):
    """The rate the optimiser used (logged from its param group) at every step: x0.5 at each milestone, and
    the same after an interruption at step 3 and a resume from the step-2 checkpoint."""
    rundir = _tiny_run(tmp_path, "hyperres", "denoise", {}, 6)
    rundir.create()
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    model = torch.nn.Module()
    model.weight = weight
    train = {"steps": 6, "batch": 1, "crop": 8, "lr": 0.1, "lr_milestones": [2, 4], "lr_gamma": 0.5, "checkpoint_every": 1}

    def interrupt_at_3(step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimise(model, [weight], lambda rng: weight.abs().sum(), 6, train, rundir, "joint", 0, after_step=interrupt_at_3)
    optimise(model, [weight], lambda rng: weight.abs().sum(), 6, train, rundir, "joint", 0)
    log = [json.loads(line) for line in rundir.log_file.read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]  # step 3 had no checkpoint: it is redone, once
    assert [r["lr"] for r in log] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
