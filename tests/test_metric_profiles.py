"""`metrics:` in a profile, without pyiqa: parsing, the install error before any work, tables and the gate reading
pyiqa rows by their spec key (the rest, with pyiqa, in tests/test_iqa.py: the `iqa` lane)."""

import sys

import pandas as pd
import pytest
import yaml

from bench.apps.cli_common import with_metrics
from bench.apps.reproduce import Paths, reproduce
from bench.common.errors import HyperbenchError
from bench.evaluation.evaluate import INPUT
from bench.evaluation.results import write_rows
from bench.metrics.iqa import IqaSpec, direction_of
from bench.metrics.regress import compare, parse_tolerances
from bench.training.profiles import expand, load_profile

NLPD = "pyiqa:nlpd|rgb|crop0|channels=1|test_y_channel=True|lower"
MS_SSIM = "pyiqa:ms_ssim|rgb|crop0|downsample=False|is_prod=True|test_y_channel=True|higher"


def _profile(tmp_path, metrics, name="metrics"):
    raw = yaml.safe_load(load_profile("smoke").source.read_text())
    raw |= {"name": name, "metrics": metrics}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_profile(str(path))


def test_metrics_list_names_and_options_and_psnr_ssim_are_always_scored(tmp_path):
    profile = _profile(tmp_path, ["psnr", "ssim", "ms_ssim", {"lpips": {"net": "vgg"}}])
    assert profile.metrics == [{"name": "ms_ssim", "options": {}}, {"name": "lpips", "options": {"net": "vgg"}}]
    assert load_profile("smoke").metrics == []  # default: PSNR and SSIM only, today's behaviour
    assert [m["name"] for m in load_profile("quick").metrics] == ["ms_ssim", "nlpd"]
    smoke = {(e.model, e.task): [r.run_id for r in e.runs] for e in expand(load_profile("smoke"))}
    assert all(smoke[(e.model, e.task)] == [r.run_id for r in e.runs] for e in expand(profile))  # metrics retrain nothing


@pytest.mark.parametrize("metrics,message", [
    ("ms_ssim", "metrics must be a list"),
    ([["ms_ssim"]], "neither a name nor one name mapped to its options"),
    (["ms_ssim", "ms_ssim"], "names 'ms_ssim' twice"),
    ([{"psnr": {"colour": "y"}}], "psnr takes no options here"),
])
def test_bad_metrics_lists_are_refused_with_the_fix(tmp_path, metrics, message):
    with pytest.raises(HyperbenchError) as err:
        _profile(tmp_path, metrics)
    assert message in str(err.value) and "fix:" in str(err.value)


def test_a_pyiqa_metric_without_pyiqa_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # as where the iqa extra is not installed
    profile = _profile(tmp_path, ["psnr", "ssim", "ms_ssim"])
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables")
    with pytest.raises(HyperbenchError) as err:
        reproduce(profile, paths, tasks=["denoise"], models=["hyperres"])
    assert 'pip install -e ".[iqa]"' in str(err.value) and "PolyForm Noncommercial" in str(err.value)
    assert not paths.runs.exists() and not paths.results.exists()  # nothing trained, nothing written


def test_the_metrics_option_keeps_psnr_ssim_and_names_a_typo(tmp_path):
    profile = _profile(tmp_path, ["psnr", "ssim", "ms_ssim", "nlpd"])
    assert with_metrics(profile, "psnr,ssim").metrics == [] and with_metrics(profile, None) is profile
    assert [m["name"] for m in with_metrics(profile, "psnr,nlpd").metrics] == ["nlpd"]
    with pytest.raises(HyperbenchError) as err:
        with_metrics(profile, "psnr,ms-ssim")
    assert "did you mean 'ms_ssim'" in str(err.value)


def test_spec_keys_carry_the_direction_and_describe_themselves_without_pyiqa():
    assert direction_of(NLPD) is False and direction_of(MS_SSIM) is True and direction_of("rgb|crop0|ssim11g1.5|mean") is None
    spec = IqaSpec.from_key(MS_SSIM)
    assert spec.key() == MS_SSIM and not spec.lower_better and ("test_y_channel", "True") in spec.options
    assert "higher is better" in spec.describe() and "test_y_channel=True" in spec.describe()
    gray = IqaSpec.from_key(NLPD.replace("|rgb|", "|gray-x3|"))
    assert gray.gray and "repeated to 3 channels" in gray.describe()
    with pytest.raises(ValueError):
        IqaSpec.from_key("pyiqa:nlpd|rgb")


def _rows(profile, nlpd_shift=0.0):
    """Tidy rows of HyperRes and the input on smoke's denoise levels, PSNR/SSIM and NLPD (lower is better)."""
    out = []
    for model, psnr, nlpd in (("hyperres", 30.0, 0.10), (INPUT, 25.0, 0.30)):
        for level in profile.task_cfg("denoise")["eval_levels"]:
            for metric, value, spec in (("psnr", psnr, "rgb|crop0|ssim11g1.5|mean"), ("ssim", 0.8, "rgb|crop0|ssim11g1.5|mean"),
                                        ("nlpd", nlpd + (nlpd_shift if model != INPUT else 0), NLPD)):
                out.append({"run_id": "r", "profile": profile.name, "model": model, "task": "denoise", "dataset": "skimage-eval",
                            "level": float(level), "input_level": float(level), "metric": metric, "value": value, "metric_spec": spec,
                            "seed": 0, "n_images": 3, "data_source": "skimage", "versions": "hyperbench; pyiqa 0.1.16" if metric == "nlpd" else "hyperbench",
                            "torch_threads": 2, "interop_threads": 2, "deterministic": "on", "cpu": "x86_64", "device": "cpu", "inputs_sha256": ""})
    return out


def test_tables_give_each_pyiqa_metric_a_block_with_its_spec_and_direction(tmp_path):
    from bench.reports.tables import write_reports

    profile = _profile(tmp_path, ["psnr", "ssim", "nlpd"])
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables")
    write_rows(paths.results_file(profile.name), _rows(profile))
    entries = [e for e in expand(profile, ["denoise"]) if e.model == "hyperres"]
    write_reports(profile, paths, entries)
    md = (paths.tables_dir(profile.name) / "table2_denoise.md").read_text()
    assert "NLPD ↓" in md and f"key `{NLPD}`" in md and "The paper printed no NLPD values" in md
    lines = md.splitlines()
    nlpd_rows = [i for i, line in enumerate(lines) if "NLPD ↓" in line and "| ours " in line]
    input_ssim = next(i for i, line in enumerate(lines) if "Degraded input" in line and "SSIM" in line)
    assert len(nlpd_rows) == 2 and nlpd_rows[0] > input_ssim  # a block after PSNR/SSIM: HyperRes, then the input
    csv = pd.read_csv(paths.tables_dir(profile.name) / "table2_denoise.csv")
    nlpd = csv[csv.metric == "nlpd"]
    hyperres = nlpd[(nlpd.model == "hyperres") & (nlpd.level == "mean")]
    assert hyperres.vs_input.iloc[0] == pytest.approx(-0.2)  # ours − input: 0.10 − 0.30, lower is better
    assert set(nlpd.metric_spec) == {NLPD} and nlpd.published.isna().all() and set(csv[csv.metric == "psnr"].metric_spec) == {"rgb|crop0|ssim11g1.5|mean"}
    assert "NLPD" in (paths.tables_dir(profile.name) / "table2_denoise.tex").read_text()


def test_the_gate_follows_a_pyiqa_metrics_direction_from_its_spec_key(tmp_path):
    profile = _profile(tmp_path, ["psnr", "ssim", "nlpd"])
    ref = pd.DataFrame(_rows(profile))
    worse, better = pd.DataFrame(_rows(profile, +0.05)), pd.DataFrame(_rows(profile, -0.05))
    tol = parse_tolerances(["nlpd=0.01"], {"nlpd"})
    assert len(compare(worse, ref, tol).regressions) == 5  # NLPD up: worse at every level
    cmp = compare(better, ref, tol)
    assert cmp.passed and len(cmp.improvements) == 5
    assert compare(worse, ref, parse_tolerances(["nlpd=0.1"], {"nlpd"})).passed
    with pytest.raises(HyperbenchError) as err:
        parse_tolerances(["nlpdd=0.1"], {"nlpd"})
    assert "did you mean 'nlpd'" in str(err.value)
