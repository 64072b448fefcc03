"""`hyperbench regress RESULTS --against REFERENCE`: the metric regression gate."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bench.metrics.regress
from bench.apps.cli import main
from bench.common.errors import HyperbenchError
from bench.evaluation.results import write_rows
from bench.metrics.regress import MATCH_KEY, compare, read_table
from bench.training.profiles import expand, load_profile

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "smoke.csv"


def rows(override=None, profile="smoke"):
    """A small tidy results table: two models x two levels x PSNR/SSIM."""
    out = []
    for model, base in (("hyperres", 30.0), ("perlevel", 29.0)):
        for level in (25.0, 50.0):
            for metric, value in (("psnr", base - level / 25), ("ssim", 0.8 - level / 1000)):
                out.append({"run_id": "abc", "profile": profile, "model": model, "task": "denoise", "dataset": "skimage-eval", "level": level,
                            "metric": metric, "value": (override or {}).get((model, level, metric), value), "metric_spec": "rgb|crop0|ssim11g1.5|mean",
                            "seed": 0, "versions": "torch x", "torch_threads": 2})
    return out


@pytest.fixture
def reference(tmp_path):
    path = tmp_path / "reference.csv"
    write_rows(path, rows())
    return path


def gate(capsys, monkeypatch, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["hyperbench", "regress", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    return exc.value.code, " ".join((captured.out + captured.err).split())


def results_file(tmp_path, table) -> Path:
    path = tmp_path / "results.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    return path


def test_identical_results_pass_in_a_real_process(reference, tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.apps.cli", "regress", str(reference), "--against", str(reference)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS: 8 rows compared" in " ".join(out.stdout.split())

    worse = results_file(tmp_path, rows({("hyperres", 25.0, "psnr"): 28.0}))
    out = subprocess.run([sys.executable, "-m", "bench.apps.cli", "regress", str(worse), "--against", str(reference)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "FAIL" in out.stdout


@pytest.mark.parametrize("change,tol,code,shown", [
    ({("hyperres", 25.0, "psnr"): 29.0 - 0.04}, [], 0, "0 regressions"),                        # inside the default 0.05 dB
    ({("hyperres", 25.0, "psnr"): 29.0 - 0.06}, [], 1, "Regressions"),                          # outside it
    ({("hyperres", 25.0, "psnr"): 29.0 - 0.06}, ["--tol", "psnr=0.1"], 0, "0 regressions"),     # a looser gate
    ({("perlevel", 50.0, "ssim"): 0.75 - 0.003}, [], 1, "perlevel denoise 50 ssim 0.7500 0.7470 -0.0030"),
    ({("perlevel", 50.0, "ssim"): 0.75 - 0.003}, ["--tol", "ssim=0.005"], 0, "0 regressions"),
    ({("hyperres", 50.0, "psnr"): 28.5}, [], 0, "Improvements"),                                # better by 0.5 dB passes
])
def test_tolerances_and_directions(change, tol, code, shown, reference, tmp_path, capsys, monkeypatch):
    got, text = gate(capsys, monkeypatch, results_file(tmp_path, rows(change)), "--against", reference, *tol)
    assert got == code and shown in text, text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, None])
@pytest.mark.parametrize("side", ["results", "reference"])
def test_non_finite_values_are_rejected_naming_the_rows(value, side, reference, tmp_path, capsys, monkeypatch):
    """An all-inf results file would pass as improvements, a NaN reference would accept anything: both are errors."""
    table = [{**r, "value": value} if r["model"] == "hyperres" and r["metric"] == "psnr" else r for r in rows()]
    broken = results_file(tmp_path, table)
    args = (broken, "--against", reference) if side == "results" else (reference, "--against", broken)
    code, text = gate(capsys, monkeypatch, *args)
    assert code != 0 and "2 rows that are not finite numbers" in text and "hyperres denoise level 25 psnr" in text, text
    assert (side if side == "reference" else "results") in text


def test_missing_rows_fail_and_new_rows_pass(reference, tmp_path, capsys, monkeypatch):
    code, text = gate(capsys, monkeypatch, results_file(tmp_path, rows()[1:]), "--against", reference)
    assert code == 1 and "Missing rows (in the reference, not in the results): 1" in text and "1 missing" in text

    extra = rows() + [{**rows()[0], "model": "newnet"}]
    code, text = gate(capsys, monkeypatch, results_file(tmp_path, extra), "--against", reference)
    assert code == 0 and "1 result rows have no reference row" in text and "1 new" in text


def test_profile_and_seed_are_part_of_the_key(reference, tmp_path, capsys, monkeypatch):
    code, text = gate(capsys, monkeypatch, results_file(tmp_path, rows(profile="quick")), "--against", reference)
    assert code == 1 and "8 missing" in text and "8 new" in text  # another profile is another experiment


def test_environment_differences_are_reported_not_failed(reference, tmp_path, capsys, monkeypatch):
    table = [{**r, "torch_threads": 4} for r in rows()]
    code, text = gate(capsys, monkeypatch, results_file(tmp_path, table), "--against", reference)
    assert code == 0 and "environment differs, torch_threads: reference 2; results 4" in text


def test_changed_degraded_inputs_are_pointed_out(tmp_path, capsys, monkeypatch):
    ref, ours = tmp_path / "ref.csv", tmp_path / "ours.csv"
    write_rows(ref, [{**r, "inputs_sha256": "aaa"} for r in rows()])
    write_rows(ours, [{**r, "inputs_sha256": "bbb" if r["level"] == 50.0 else "aaa"} for r in rows()])
    code, text = gate(capsys, monkeypatch, ours, "--against", ref)
    assert code == 0 and "degraded inputs (inputs_sha256) differ in 4 rows" in text


def test_lower_is_better_metrics_regress_upwards(monkeypatch):
    monkeypatch.setitem(bench.metrics.regress.METRICS, "lpips", {"higher_better": False})
    ref = pd.DataFrame([{**rows()[0], "metric": "lpips", "value": 0.20}])
    worse, better = ref.assign(value=0.25), ref.assign(value=0.10)
    assert len(compare(worse, ref, {"lpips": 0.01}).regressions) == 1
    cmp = compare(better, ref, {"lpips": 0.01})
    assert cmp.passed and len(cmp.improvements) == 1
    with pytest.raises(HyperbenchError, match="no tolerance for the metrics"):
        compare(worse, ref, {"psnr": 0.05})


@pytest.mark.parametrize("tol,message", [
    ("psnr", "bad --tol 'psnr'"), ("lpips=0.1", "bad --tol 'lpips=0.1'"),
    ("psnr=-1", "is not a number >= 0"), ("psnr=abc", "'abc' is not a number"), ("ssim=nan", "is not a number >= 0"),
])
def test_bad_tolerance(tol, message, reference, capsys, monkeypatch):
    code, text = gate(capsys, monkeypatch, reference, "--against", reference, "--tol", tol)
    assert code == 2 and message in text and "fix:" in text


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    ("", "is not a readable CSV"),
    ('profile,model\n"smoke,hyperres\n', "is not a readable CSV"),
    ("a,b\n1,2\n", "lacks the columns"),
    ("bad level", "column 'level' holds 'x2'"),
    ("repeated row", "rows with a repeated key"),
    ("unknown metric", "has metrics ['niqe'] with no known direction"),
])
def test_malformed_results_file(content, message, reference, tmp_path, capsys, monkeypatch):
    path = tmp_path / "broken.csv"
    if content == "bad level":
        pd.DataFrame([{**r, "level": "x2"} for r in rows()]).to_csv(path, index=False)
    elif content == "repeated row":
        pd.DataFrame(rows() + rows()[:1]).to_csv(path, index=False)
    elif content == "unknown metric":
        pd.DataFrame(rows() + [{**rows()[0], "metric": "niqe"}]).to_csv(path, index=False)
    elif content is not None:
        path.write_text(content)
    code, text = gate(capsys, monkeypatch, path, "--against", reference)
    assert code == 2 and message in text and "fix:" in text, text
    code, text = gate(capsys, monkeypatch, reference, "--against", path)  # the same checks for the reference
    assert code == 2 and "reference file" in text


def test_committed_smoke_reference_covers_the_smoke_profile():
    ref = read_table(REFERENCE, "reference")
    assert set(ref.profile) == {"smoke"}
    profile = load_profile("smoke")
    expected = {(e.model, e.task, level, metric) for e in expand(profile) for level in profile.task_cfg(e.task)["eval_levels"]
                for metric in ("psnr", "ssim")}
    expected |= {("degraded-input", task, level, metric) for task in profile.tasks
                 for level in profile.task_cfg(task)["eval_levels"] for metric in ("psnr", "ssim")}
    have = set(zip(ref.model, ref.task, ref.level, ref.metric))
    assert have == expected, (
        "results/reference/smoke.csv is out of date with bench/profiles/smoke.yaml; regenerate it: hyperbench reproduce --profile smoke "
        "--runs-dir /tmp/ref/runs --results-dir /tmp/ref/results --tables-dir /tmp/ref/tables && cp /tmp/ref/results/smoke/results.csv results/reference/smoke.csv"
    )
    assert ref.value.notna().all() and not ref.duplicated(subset=MATCH_KEY).any()
    assert {"versions", "torch_threads", "interop_threads", "deterministic", "cpu"} <= set(ref.columns)
