"""Training seeds (`seeds:`): one run per seed, the evaluation inputs of `seed:` for all of them, and tables,
figures and results that show the spread across seeds."""

import math

import pandas as pd
import pytest
import yaml

from bench.apps.reproduce import Paths, reproduce
from bench.common.errors import HyperbenchError
from bench.training.profiles import expand, load_profile


def _profile(tmp_path, **changes):
    raw = yaml.safe_load(load_profile("smoke").source.read_text())
    for key, value in changes.items():
        if key == "models":
            for name, extra in value.items():
                raw["models"][name] = {**(raw["models"][name] or {}), **extra}
        else:
            raw[key] = value
    path = tmp_path / "seeds.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_profile(str(path))


def test_each_seed_is_its_own_run_and_the_profile_seed_keeps_its_run_id(tmp_path):
    base = {(e.model, e.task): e.runs for e in expand(load_profile("smoke"))}
    profile = _profile(tmp_path, models={"hyperres": {"seeds": [0, 1, 2]}})
    entries = [e for e in expand(profile, ["sr"]) if e.model == "hyperres"]
    assert [e.seed for e in entries] == [0, 1, 2] and [e.primary for e in entries] == [True, False, False]
    assert entries[0].runs == base[("hyperres", "sr")]  # adding seeds retrains nothing that was there
    assert len({e.runs[0].run_id for e in entries}) == 3
    assert [e.runs[0].config["seed"] for e in entries] == [0, 1, 2]
    others = [e for e in expand(profile, ["sr"]) if e.model != "hyperres"]
    assert all(e.seed == 0 and e.runs == base[(e.model, "sr")] for e in others)  # one seed each, as before


def test_profile_seeds_apply_to_every_entry_and_an_entry_may_set_its_own(tmp_path):
    profile = _profile(tmp_path, seeds=[3, 4], models={"perlevel": {"seeds": [7]}})
    seeds = {}
    for e in expand(profile, ["denoise"]):
        seeds.setdefault(e.model, []).append(e.seed)
    assert seeds["hyperres"] == [3, 4] and seeds["perlevel"] == [7] and seeds["adafm"] == [3, 4]
    primary = {e.model: e.seed for e in expand(profile, ["denoise"]) if e.primary}
    assert primary["hyperres"] == 3 and primary["perlevel"] == 7  # seed 0 is not trained: the first listed seed


@pytest.mark.parametrize("seeds", [[], [0, 0], [-1], ["a"], 3, [True]])
def test_bad_seeds_are_refused_with_the_fix(tmp_path, seeds):
    with pytest.raises(HyperbenchError) as err:
        _profile(tmp_path, models={"hyperres": {"seeds": seeds}})
    assert "models.hyperres.seeds" in str(err.value) and "seeds: [0, 1, 2]" in str(err.value)


def test_dry_run_counts_the_seeds(tmp_path, capsys):
    from typer.testing import CliRunner

    from bench.apps.cli import app

    path = _profile(tmp_path, models={"hyperres": {"seeds": [0, 1, 2]}}).source
    out = CliRunner().invoke(app, ["reproduce", "--profile", str(path), "--dry-run", "--tasks", "sr", "--runs-dir", str(tmp_path / "runs")])
    assert out.exit_code == 0, out.output
    assert "hyperres x 3 seeds" in out.output and "seed" in out.output.splitlines()[1]


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    profile = _profile(tmp, models={"hyperres": {"seeds": [0, 1]}})
    paths = Paths(runs=tmp / "runs", results=tmp / "results", tables=tmp / "tables")
    reproduce(profile, paths, tasks=["sr"], models=["hyperres", "perlevel"], log=lambda *a: None)
    return profile, paths


def test_results_hold_one_row_per_training_seed_on_the_same_inputs(two_seeds):
    profile, paths = two_seeds
    rows = pd.read_csv(paths.results_file(profile.name))
    hyper = rows[(rows.model == "hyperres") & (rows.metric == "psnr")]
    assert sorted(hyper.seed.unique()) == [0, 1] and len(hyper) == 2 * len(profile.task_cfg("sr")["eval_levels"])
    assert set(rows[rows.model == "perlevel"].seed) == {0} and set(rows[rows.model == "degraded-input"].seed) == {0}
    by_seed = hyper.pivot_table(index="level", columns="seed", values="value")
    assert (by_seed[0] != by_seed[1]).any()  # another training seed, another network
    inputs = hyper.pivot_table(index="level", columns="seed", values="inputs_sha256", aggfunc="first")
    assert (inputs[0] == inputs[1]).all()  # every seed is scored on the same degraded inputs


def test_tables_show_the_mean_and_sd_over_seeds_and_keep_each_seed_in_the_csv(two_seeds):
    profile, paths = two_seeds
    out = paths.tables_dir(profile.name)
    rows = pd.read_csv(paths.results_file(profile.name))
    hyper = rows[(rows.model == "hyperres") & (rows.metric == "psnr") & (rows.level == 2.0)].value
    table = pd.read_csv(out / "table3_sr.csv", dtype={"seed": str})
    cell = table[(table.model == "hyperres") & (table.metric == "psnr") & (table.level == "2") & (table.seed == "mean")].iloc[0]
    assert cell.ours == pytest.approx(hyper.mean(), abs=1e-4) and cell.ours_sd == pytest.approx(hyper.std(), abs=1e-4) and cell.n_seeds == 2
    per_seed = table[(table.model == "hyperres") & (table.metric == "psnr") & (table.level == "2") & (table.seed != "mean")]
    assert sorted(per_seed.seed) == ["0", "1"] and sorted(per_seed.ours.round(4)) == sorted(hyper.round(4))
    md = (out / "table3_sr.md").read_text()
    assert f"{hyper.mean():.2f} ± {hyper.std():.2f}" in md and "mean over seeds ± the standard deviation" in md
    assert "HyperRes, seed 1" in md  # the training summary lists each seed's run
    assert (out / "fig_seed_spread_sr.png").exists() and (out / "fig_psnr_vs_level_sr.png").exists()


def test_table4_gives_the_mean_and_sd_over_seeds_of_each_seeds_level_mean(two_seeds):
    profile, paths = two_seeds
    out = paths.tables_dir(profile.name)
    rows = pd.read_csv(paths.results_file(profile.name))
    level_means = rows[(rows.model == "hyperres") & (rows.metric == "psnr")].groupby("seed").value.mean()  # one per seed
    table = pd.read_csv(out / "table4_cresmd.csv", dtype={"seed": str})
    hyper = table[table.model == "hyperres"].set_index("seed")
    assert sorted(hyper.index) == ["0", "1", "mean"] and hyper.n_seeds["mean"] == 2
    assert hyper.ours["0"] == pytest.approx(level_means[0], abs=1e-4) and hyper.ours["1"] == pytest.approx(level_means[1], abs=1e-4)
    assert hyper.ours["mean"] == pytest.approx(level_means.mean(), abs=1e-4)
    assert hyper.ours_sd["mean"] == pytest.approx(level_means.std(), abs=1e-4)
    md = (out / "table4_cresmd.md").read_text()
    assert f"{level_means.mean():.2f} ± {level_means.std():.2f}" in md and "seeds: hyperres 2" in md


def test_with_one_seed_a_table_says_the_training_variance_is_unmeasured(tmp_path):
    from bench.reports.seeds import seed_note

    rows = pd.DataFrame({"task": ["sr"] * 2, "model": ["hyperres", "degraded-input"], "seed": [0, 0], "profile": ["p", "p"]})
    assert seed_note(rows, "sr", 0).startswith("Training variance unmeasured")


def test_over_seeds_gives_mean_sd_and_range_per_cell():
    from bench.reports.seeds import over_seeds

    rows = pd.DataFrame({"profile": "p", "model": ["a", "a", "a", "b"], "task": "sr", "dataset": "d", "level": 2.0, "metric": "psnr",
                         "metric_spec": "y", "seed": [2, 0, 1, 0], "value": [30.0, 31.0, 32.0, 29.0]})
    cells = over_seeds(rows).set_index("model")
    assert cells.value["a"] == 31.0 and cells.value_sd["a"] == 1.0 and (cells.value_min["a"], cells.value_max["a"]) == (30.0, 32.0)
    assert cells.seeds["a"] == "0,1,2" and cells.n_seeds["b"] == 1 and math.isnan(cells.value_sd["b"])


def test_a_per_task_seeds_typo_names_the_task(tmp_path):
    with pytest.raises(HyperbenchError) as err:
        _profile(tmp_path, models={"hyperres": {"seeds": {"denoise": [0, 1], "srr": [0]}}})
    assert "srr" in str(err.value) and "lists per task" in str(err.value)


def test_tables_show_only_the_seeds_the_profile_trains(two_seeds, tmp_path):
    """A seed dropped from `seeds:` keeps its rows in results.csv (their key holds the seed) but leaves the tables."""
    from bench.reports.tables import write_reports

    profile, paths = two_seeds
    one = _profile(tmp_path, models={"hyperres": {"seeds": [0]}})
    entries = [e for e in expand(one, ["sr"]) if e.model in ("hyperres", "perlevel")]
    out = Paths(runs=paths.runs, results=paths.results, tables=tmp_path / "tables")
    write_reports(one, out, entries)
    table = pd.read_csv(out.tables_dir(one.name) / "table3_sr.csv")
    assert "seed" not in table.columns and "ours_sd" not in table.columns  # one seed: the layout it always had
    rows = pd.read_csv(paths.results_file(profile.name))
    seed0 = rows[(rows.model == "hyperres") & (rows.metric == "psnr") & (rows.level == 2.0) & (rows.seed == 0)].value.iloc[0]
    cell = table[(table.model == "hyperres") & (table.metric == "psnr") & (table.level.astype(str) == "2")].ours.iloc[0]
    assert cell == pytest.approx(seed0, abs=1e-4)
