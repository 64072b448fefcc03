"""Official recipes as data: every table entry carries one, every value has its source, and the
departures of a profile from them are found and printed."""

import re

import pytest
from typer.testing import CliRunner

from bench.apps.cli import app
from bench.common.errors import HyperbenchError
from bench.models.catalog import list_models, model_cfg
from bench.training.profiles import expand, load_profile
from bench.training.recipes import FIELDS, Recipe, _read, departures, departures_text, load_recipe, profile_departures

TABLE_ENTRIES = [name for name in list_models() if model_cfg(name).tasks]
CITATION = re.compile(r"[\w./-]+\.(py|json|yml|m|md):\d+|README\.md")  # path:line (or the README of a code-less repository)


@pytest.mark.parametrize("name", TABLE_ENTRIES)
def test_every_table_entry_has_a_recipe_with_sources(name):
    for task in model_cfg(name).tasks:
        recipe = load_recipe(name, task)
        assert recipe.code.count("/") == 1 and "@" in recipe.code, recipe.code  # owner/repo@commit
        assert recipe.facts, (name, task)
        for field, fact in recipe.facts.items():
            assert field in FIELDS
            if fact.unfixed:
                assert len(fact.unfixed) > 20, (name, task, field)  # says what the suite chooses and why
            else:
                assert CITATION.search(fact.source), (name, task, field, fact.source)


def test_the_recipe_says_what_the_official_code_sets():
    hyperres = load_recipe("hyperres", "denoise")
    assert hyperres.value("lr") == 1.0e-4 and hyperres.value("batch") == 16 and hyperres.value("crop") == 96
    assert hyperres.value("schedule") == {"kind": "multistep", "milestones": [500001], "gamma": 0.1}  # decays from update 500,002
    assert hyperres.value("noise") == {"clip": True, "quantise": "floor"}
    assert load_recipe("hyperres", "sr").value("resize") == "opencv"
    cresmd = load_recipe("cresmd", "denoise")
    assert cresmd.value("betas") == [0.9, 0.99] and cresmd.value("lr") == 5.0e-4
    assert cresmd.value("control") == {"endpoints": [0, 50]} and load_recipe("cresmd", "dejpeg").value("control") == {"endpoints": [102, 10]}
    cfsnet = load_recipe("cfsnet", "denoise")
    assert cfsnet.value("batch") == 128 and cfsnet.value("crop") == 40 and cfsnet.value("levels") == [25, 50]
    assert cfsnet.value("loss_weight") == 0.1 and load_recipe("hinet", "sr").value("grad_clip") == 0.01
    assert load_recipe("hinet", "denoise").value("schedule")["kind"] == "cosine"


def test_a_profile_with_the_official_settings_departs_in_nothing_it_sets():
    hyperres = load_recipe("hyperres", "denoise")
    official = {"steps": 1000000, "batch": 16, "crop": 96, "lr": 1.0e-4, "lr_milestones": [500001], "lr_gamma": 0.1, "select": "best_validation",
                "data_protocol": "fixed"}
    assert departures(hyperres, official, {"clip": True, "quantise": "floor"}) == []
    changed = departures(hyperres, {**official, "steps": 800, "lr_milestones": [640]}, {"clip": True, "quantise": "round"})
    assert {(f, str(a), str(b)) for f, a, b in changed} >= {("steps", "1000000", "800"), ("noise", "{'quantise': 'floor'}", "{'quantise': 'round'}")}
    assert "schedule" in {f for f, _, _ in changed}


def test_departures_compare_every_setting_the_run_trains_with():
    """Betas, schedule kind and floor, gradient clipping: a run's own settings, compared with the recipe's."""
    hinet = load_recipe("hinet", "denoise")
    train = {"steps": 400000, "batch": 64, "crop": 256, "lr": 2.0e-4, "schedule": "cosine", "eta_min": 1.0e-6, "grad_clip": 0.01}
    assert departures(hinet, train, {}) == []
    other = {f for f, _, _ in departures(hinet, {**train, "betas": [0.9, 0.99], "eta_min": 1.0e-7}, {})}
    assert other == {"betas", "schedule"}
    unclipped = {key: value for key, value in train.items() if key != "grad_clip"}
    assert [f for f, _, _ in departures(hinet, unclipped, {})] == ["grad_clip"]


def test_quick_departures_are_listed_under_the_tables_and_by_the_command():
    profile = load_profile("quick")
    entries = expand(profile, tasks=["denoise"])
    rows = {entry.model: found for entry, found in profile_departures(profile, entries)}
    assert {"hyperres", "perlevel", "adafm", "cfsnet", "cresmd", "hinet"} <= set(rows)
    assert ("steps", 1000000, 800) in rows["hyperres"]
    assert any(f == "stages" for f, _, _ in rows["adafm"])  # 800 steps per stage vs 1M + 500k
    lines = departures_text(profile, entries)
    assert any(line.startswith("hyperres departs from its official recipe in: steps 1000000 -> 800") for line in lines)
    result = CliRunner().invoke(app, ["recipe", "--diff", "quick"])
    assert result.exit_code == 0 and "hyperres" in result.output and "1000000" in result.output


def test_recipe_command_prints_values_with_sources():
    result = CliRunner().invoke(app, ["recipe", "hyperres", "--task", "sr"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "train_main.py:56" in result.output and "generate_LR_SR.py:25-28" in result.output
    bad = CliRunner().invoke(app, ["recipe", "cresmd", "--task", "sr"])
    assert isinstance(bad.exception, HyperbenchError) and "does not do sr" in str(bad.exception)


@pytest.mark.parametrize("text, message", [
    ("all: {}\n", "must be a mapping with `code:`"),
    ("code: a/b@1\nall: {speed: {value: 1, source: 'x.py:1'}}\n", "not a recipe field"),
    ("code: a/b@1\nall: {lr: {value: 1.0e-4}}\n", "needs `value` and a `source`"),
    ("code: a/b@1\ndeblur: {}\n", "unknown sections"),
    ("code: a/b@1\nall: [lr]\n", "section all must map recipe fields to facts"),
])
def test_a_bad_recipe_file_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(HyperbenchError, match=re.escape(message)):
        _read(path)


def test_unfixed_facts_are_no_departures():
    recipe = Recipe("x", "sr", "a/b@1", {})
    assert departures(recipe, {"steps": 5}, {}) == []
