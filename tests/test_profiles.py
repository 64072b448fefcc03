"""Profiles that extend others, staged reproduction (`first:`), and evaluation caching per entry (a new entry is the only one evaluated)."""

import pandas as pd
import pytest

from bench.apps.reproduce import Paths, evaluate_task, reproduce, stages, train_all
from bench.common.errors import HyperbenchError
from bench.evaluation import evaluate as ev
from bench.training.profiles import expand, load_profile


def _write(path, text):
    path.write_text(text)
    return path


def test_extends_adds_models_and_keeps_the_base_runs(tmp_path):
    child = _write(tmp_path / "child.yaml", """
name: child
extends: smoke
conventions: ["one more convention"]
models:
  hyperres-wide: {model: hyperres, meta_blocks: 1, width: 12}
tasks:
  sr: {eval_levels: [2, 4]}
""")
    base, prof = load_profile("smoke"), load_profile(str(child))
    assert prof.name == "child" and list(prof.models)[: len(base.models)] == list(base.models)
    assert prof.models["hyperres-wide"]["width"] == 12 and prof.train == base.train and prof.tune == base.tune
    assert prof.conventions == base.conventions + ["one more convention"]
    assert prof.task_cfg("sr")["eval_levels"] == [2, 4] and prof.task_cfg("sr")["train_levels"] == base.task_cfg("sr")["train_levels"]
    ids = {(e.model, e.task): [r.run_id for r in e.runs] for e in expand(prof)}
    assert all(ids[(e.model, e.task)] == [r.run_id for r in e.runs] for e in expand(base))  # the base's runs are reused
    wide = next(e for e in expand(prof, ["sr"], ["hyperres-wide"]))
    assert wide.arch == "hyperres" and wide.runs[0].run_id not in ids[("hyperres", "sr")]


def test_extends_cycle_and_missing_base_fail_clearly(tmp_path):
    _write(tmp_path / "a.yaml", f"name: a\nextends: {tmp_path / 'b.yaml'}\n")
    _write(tmp_path / "b.yaml", f"name: b\nextends: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(HyperbenchError, match="extends"):
        load_profile(str(tmp_path / "a.yaml"))
    _write(tmp_path / "c.yaml", "name: c\nextends: no-such-profile\n")
    with pytest.raises(HyperbenchError, match="missing"):
        load_profile(str(tmp_path / "c.yaml"))


def test_quick_has_every_zoo_entry_after_hyperres_and_the_per_level_networks():
    quick = load_profile("quick")
    assert quick.first == ["hyperres", "perlevel"]
    assert {"adafm", "cfsnet", "dni", "cresmd", "hinet", "ffdnet"} <= {quick.models[m].get("model", m) for m in quick.models}
    assert quick.models["hyperres-1block"] == {"model": "hyperres", "meta_blocks": 1, "width": 32}  # the size of Figs 2-4
    first, everything = stages(quick, expand(quick))
    assert {e.model for e in first} == {"hyperres", "perlevel"} and len(everything) == len(expand(quick))


def test_first_entries_have_their_tables_before_the_rest_trains(tmp_path):
    profile = load_profile("smoke")
    profile.tasks = {"sr": {**profile.task_cfg("sr"), "eval_levels": [2.0, 3.0]}}
    profile.train, profile.tune, profile.first = {**profile.train, "steps": 2}, {}, ["hyperres"]
    profile.models = {m: profile.models[m] for m in ("hyperres", "dni")}
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables")
    table = paths.tables_dir(profile.name) / "table3_sr.csv"
    seen = {}

    def log(line):
        if "train dni" in line:  # the zoo starts: the first entries' table is already there, without it
            seen["models"] = set(pd.read_csv(table).model)
    reproduce(profile, paths, log=log)
    assert "hyperres" in seen["models"] and "dni" not in seen["models"]
    assert {"hyperres", "dni"} <= set(pd.read_csv(table).model)


def test_first_must_name_models_of_the_profile(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "name: bad\nextends: smoke\nfirst: [hyperess]\n")
    with pytest.raises(HyperbenchError, match="did you mean 'hyperres'"):
        load_profile(str(bad))


def test_a_new_entry_is_the_only_one_evaluated(tmp_path):
    profile = load_profile("smoke")
    profile.tasks = {"sr": {**profile.task_cfg("sr"), "eval_levels": [2.0, 3.0]}}
    profile.train = {**profile.train, "steps": 2}
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables")
    entries = expand(profile, ["sr"], ["hyperres", "dni"])
    train_all(entries, paths, log=lambda *a: None)
    first = evaluate_task(profile, "sr", entries[:1], paths, log=lambda *a: None)
    assert set(first.model) == {"hyperres", ev.INPUT}
    lines = []
    both = evaluate_task(profile, "sr", entries, paths, log=lines.append)
    assert any("1 of 2 entries" in line for line in lines), lines
    again = []
    cached = evaluate_task(profile, "sr", entries, paths, log=again.append)
    assert any("already done" in line for line in again)
    key = ["model", "image", "level"]
    pd.testing.assert_frame_equal(both.sort_values(key).reset_index(drop=True), cached.sort_values(key).reset_index(drop=True))
    old = first[first.model == "hyperres"].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(old, both[both.model == "hyperres"].sort_values(key).reset_index(drop=True))


def test_official_per_task_kwargs_and_revisions_enter_run_configs():
    profile = load_profile("smoke")
    residual = {e.task: e.model_kwargs.get("residual", True) for e in expand(profile, models=["cfsnet"])}
    assert residual == {"denoise": True, "dejpeg": False, "sr": False}  # CFSNet predicts the noise for denoising only
    profile.models["cfsnet"] = {**profile.models["cfsnet"], "residual": True}  # a profile's own setting wins
    assert all(e.model_kwargs["residual"] for e in expand(profile, models=["cfsnet"]))
    configs = {e.model: e.runs[0].config for e in expand(profile, ["denoise"], ["hinet", "hyperres"])}
    assert configs["hinet"]["revision"] == 2 and "revision" not in configs["hyperres"]


def test_cosine_schedule_of_an_official_recipe():
    from bench.training.loop import lr_at

    train = {"lr": 2e-4, "steps": 100, "lr_milestones": [50]}
    lrs = [lr_at(s, {**train, "schedule": "cosine", "eta_min": 1e-7}) for s in range(101)]
    assert lrs[0] == pytest.approx(2e-4) and lrs[100] == pytest.approx(1e-7) and lrs[50] == pytest.approx((2e-4 + 1e-7) / 2)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lr_at(49, train) == pytest.approx(2e-4) and lr_at(50, train) == pytest.approx(2e-5)  # step schedule: MultiStepLR


def test_a_task_revision_retires_only_that_tasks_runs():
    """SR's inputs changed (cv2's fx mapping), and deJPEG's (OpenCV's exact luma): their runs get new ids;
    denoise runs keep theirs."""
    from bench.tasks.task import get_task
    from bench.training.profiles import expand, load_profile

    assert get_task("sr").revision >= 1 and get_task("dejpeg").revision >= 1 and get_task("denoise").revision == 0
    for entry in expand(load_profile("smoke"), models=["hyperres"]):
        config = entry.runs[0].config
        assert ("task_revision" in config) == (entry.task != "denoise")


def test_a_task_revision_renames_that_tasks_evaluation_and_tuning_files(monkeypatch):
    """Rows that no run id ties to the task's inputs (the degraded input's, imported official weights') are
    keyed by the revision too, when it is bumped (revision 0 stays out of the key: denoise files keep their names)."""
    import dataclasses

    from bench.evaluation.results import per_image_file
    from bench.tasks import task as tasks
    from bench.tuning.tune import _revision

    profile = load_profile("smoke")
    dejpeg = per_image_file("eval", profile, "dejpeg", None)
    monkeypatch.setitem(tasks.TASKS, "dejpeg", dataclasses.replace(tasks.TASKS["dejpeg"], revision=0))
    assert per_image_file("eval", profile, "dejpeg", None) != dejpeg  # the bump renamed deJPEG's files
    assert _revision(tasks.TASKS["dejpeg"]) == {} and _revision(tasks.TASKS["sr"]) == {"task_revision": tasks.TASKS["sr"].revision}


def test_an_unknown_top_level_key_is_an_error_with_did_you_mean(tmp_path):
    """`trian:` beside `extends: smoke` would otherwise be ignored and the base's train settings used."""
    path = tmp_path / "mine.yaml"
    path.write_text("extends: smoke\nname: mine\ntrian: {steps: 5}\n")
    with pytest.raises(HyperbenchError, match="unknown key 'trian'") as exc:
        load_profile(str(path))
    assert "did you mean 'train'" in exc.value.fix


def test_an_entry_may_train_longer_than_the_rest_and_the_rest_keep_their_runs(tmp_path):
    child = _write(tmp_path / "child.yaml", """
name: child
extends: smoke
models:
  hyperres: {meta_blocks: 1, width: 8, train: {steps: 7, lr_milestones: [5]}}
""")
    base, prof = load_profile("smoke"), load_profile(str(child))
    assert {k: v for k, v in prof.models["hyperres"].items() if k != "train"} == base.models["hyperres"]  # only its budget differs
    runs = {(e.model, e.task): e.runs for e in expand(prof)}
    base_runs = {(e.model, e.task): e.runs for e in expand(base)}
    for (model, task), rs in runs.items():
        if model == "hyperres":
            assert rs[0].config["train"]["steps"] == 7 and rs[0].config["train"]["lr_milestones"] == [5]
            assert rs[0].config["train"]["batch"] == base.train["batch"]  # the keys it does not set come from the profile
            assert rs[0].run_id != base_runs[(model, task)][0].run_id
        else:  # every other entry trains exactly as in the base profile: same runs, nothing retrained
            assert [r.run_id for r in rs] == [r.run_id for r in base_runs[(model, task)]]
    assert expand(prof, ["sr"], ["hyperres"])[0].model_kwargs == expand(base, ["sr"], ["hyperres"])[0].model_kwargs  # no `train` among them


def test_a_train_section_may_give_one_task_its_own_budget_and_the_other_tasks_keep_their_runs(tmp_path):
    child = _write(tmp_path / "child.yaml", """
name: child
extends: smoke
train: {denoise: {batch: 3}}
models:
  hyperres: {meta_blocks: 1, width: 8, train: {steps: 7, sr: {steps: 11, lr_milestones: [9]}}}
""")
    base, prof = load_profile("smoke"), load_profile(str(child))
    base_runs = {(e.model, e.task): e.runs for e in expand(base)}
    for entry in expand(prof):
        train = entry.runs[0].config["train"]
        assert not set(train) & {"denoise", "dejpeg", "sr"}  # task sections are resolved, never stored in a run
        if entry.model == "hyperres":  # profile, profile's task section, entry, entry's task section: the later wins
            assert train["steps"] == (11 if entry.task == "sr" else 7)
            assert train["lr_milestones"] == ([9] if entry.task == "sr" else base.train["lr_milestones"])
        else:
            assert train["steps"] == base.train["steps"]
        assert train["batch"] == (3 if entry.task == "denoise" else base.train["batch"])
        if entry.task != "denoise" and entry.model != "hyperres":  # untouched: the same runs as the base profile's
            assert [r.run_id for r in entry.runs] == [r.run_id for r in base_runs[(entry.model, entry.task)]]
    bad = _write(tmp_path / "bad.yaml", "name: bad\nextends: smoke\nmodels:\n  hyperres: {train: {sr: {stepz: 7}}}\n")
    with pytest.raises(HyperbenchError, match=r"models\.hyperres\.train\.sr"):
        load_profile(str(bad))
    bad = _write(tmp_path / "bad2.yaml", "name: bad2\nextends: smoke\nmodels:\n  hyperres: {train: {sr: {dejpeg: {steps: 7}}}}\n")
    with pytest.raises(HyperbenchError, match=r"unknown keys \['dejpeg'\]"):
        load_profile(str(bad))


def test_an_entry_train_section_is_checked_like_the_profiles(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "name: bad\nextends: smoke\nmodels:\n  hyperres: {train: {stepz: 7}}\n")
    with pytest.raises(HyperbenchError, match=r"models\.hyperres\.train"):
        load_profile(str(bad))
    bad = _write(tmp_path / "bad2.yaml", "name: bad2\nextends: smoke\nmodels:\n  hyperres: {train: {select: best}}\n")
    with pytest.raises(HyperbenchError, match="select"):
        load_profile(str(bad))


def test_an_entry_may_have_its_own_speed_flags_and_the_rest_keep_their_runs(tmp_path):
    child = _write(tmp_path / "child.yaml", """
name: child
extends: smoke
models:
  hyperres: {meta_blocks: 1, width: 8, gpu: {bf16: true, channels_last: true}}
""")
    base, prof = load_profile("smoke"), load_profile(str(child))
    runs = {(e.model, e.task): e for e in expand(prof)}
    for entry in expand(base):
        ours = runs[(entry.model, entry.task)]
        if entry.model == "hyperres":
            assert ours.runs[0].config["gpu"] == {"bf16": True, "channels_last": True}
            assert ours.runs[0].run_id != entry.runs[0].run_id and ours.model_kwargs == entry.model_kwargs  # no `gpu` among them
        else:
            assert "gpu" not in ours.runs[0].config and [r.run_id for r in ours.runs] == [r.run_id for r in entry.runs]
    bad = _write(tmp_path / "bad.yaml", "name: bad\nextends: smoke\nmodels:\n  hyperres: {gpu: {bf17: true}}\n")
    with pytest.raises(HyperbenchError, match=r"models\.hyperres.*unknown gpu flags"):
        load_profile(str(bad))


def test_long_trains_its_main_models_longer_with_three_seeds_and_its_zoo_at_equal_compute():
    from bench.training.plan import plan

    quick, long = load_profile("quick"), load_profile("long")
    quick_runs = {(e.model, e.task): [r.run_id for r in e.runs] for e in expand(quick)}
    long_entries = expand(long)
    assert {(e.model, e.task) for e in long_entries} == set(quick_runs)  # every entry of the zoo
    steps = {("hyperres", "sr"): 30000, ("hyperres", "denoise"): 9000, ("perlevel", "denoise"): 9000}  # the budget per task
    for entry in long_entries:
        if entry.model in long.first:
            want = steps.get((entry.model, entry.task), 12000)
            assert all(r.config["train"]["steps"] == want and r.config["train"]["lr_milestones"] == [want * 4 // 5] for r in entry.runs)
            assert all(r.config["gpu"] == {"bf16": True, "channels_last": True} for r in entry.runs)
            assert not set(r.run_id for r in entry.runs) & set(quick_runs[(entry.model, entry.task)])
        else:  # the zoo: 20 TFLOP of training per run, whatever a step of the model costs
            planned = plan([entry], "/nonexistent")  # whole steps per stage: at most a step of each stage short
            assert all(0.999 * 20e12 <= p.train_flops <= 20e12 for p in planned), (entry.model, entry.task, planned[0].train_flops)
            assert all(r.config["train"].get("lr_milestones", [round(0.8 * r.config["train"]["steps"])]) == [round(0.8 * r.config["train"]["steps"])]
                       for r in entry.runs)  # a cosine schedule (HINet) spans the steps instead
            assert not set(r.run_id for r in entry.runs) & set(quick_runs[(entry.model, entry.task)])
    seeds = {(e.model, e.task): [] for e in long_entries}
    for e in long_entries:
        seeds[(e.model, e.task)].append(e.seed)
    assert all(seeds[(m, t)] == [0, 1, 2] for m in ("hyperres", "perlevel") for t in ("denoise", "dejpeg"))
    assert seeds[("hyperres", "sr")] == [0] and seeds[("adafm", "denoise")] == [0]
    for task in long.tasks:  # the same evaluation as quick
        assert {k: v for k, v in long.task_cfg(task).items() if k != "bank_levels"} == \
            {k: v for k, v in quick.task_cfg(task).items() if k != "bank_levels"}
    assert long.task_cfg("denoise")["bank_levels"] == [5, 25, 45, 65, 85] and long.task_cfg("sr")["bank_levels"] == [2, 3, 4, 5, 6]
    assert long.task_cfg("dejpeg")["bank_levels"] == [10, 30, 50, 70, 80]


def test_a_later_steps_replaces_an_earlier_tflop_and_bad_compute_budgets_are_refused(tmp_path):
    from bench.training.profiles import compute_budget, entry_train

    long = load_profile("long")
    assert "tflop" not in entry_train(long, "hyperres", "denoise") and entry_train(long, "adafm", "denoise")["tflop"] == 20
    assert "lr_milestone_fractions" not in entry_train(long, "hyperres", "sr")
    for bad in ({"tflop": -1}, {"tflop": "x"}, {"tflop": 1, "lr_milestone_fractions": [1.5]}):
        with pytest.raises(HyperbenchError):
            compute_budget({"batch": 8, "crop": 48, **bad}, "ffdnet", {"width": 8, "convs": 3, "in_channels": 3}, [0.0, 75.0], "noise_map")


def test_a_budget_in_tflop_takes_batch_and_crop_from_the_recipe_and_one_mapping_gives_steps_or_tflop(tmp_path):
    from bench.training.plan import plan

    path = tmp_path / "compute.yaml"
    path.write_text("name: compute\nextends: paper\ntrain: {tflop: 200}\n")
    entries = [e for e in expand(load_profile(str(path)), ["denoise"], ["adafm"])]
    planned = plan(entries, tmp_path)
    assert all(0.99 * 200e12 <= p.train_flops <= 200e12 for p in planned)  # batch and crop from AdaFM's official recipe
    path.write_text("name: compute\nextends: smoke\ntrain: {steps: 40, tflop: 5, batch: 4, crop: 32, lr: 1.0e-3}\n")
    with pytest.raises(HyperbenchError) as err:
        load_profile(str(path))
    assert "both steps and tflop" in str(err.value)
