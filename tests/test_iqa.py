"""pyiqa metrics through the suite (the `iqa` lane: pyiqa with a matching torch/torchvision, .ci/run's second
environment): every weight-free metric on real images through the evaluation path, adding a metric retrains
nothing, the cross-check against the suite's own PSNR/SSIM, missing weight files, a learned metric loading files
the test writes, and direction-aware gating."""

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.apps.reproduce import Paths, evaluate_task, reproduce, tidy_rows, train_all
from bench.common.errors import HyperbenchError
from bench.evaluation.results import per_image_file, write_rows
from bench.metrics import iqa
from bench.metrics.regress import compare, parse_tolerances
from bench.tasks.task import get_task
from bench.training.profiles import expand, load_profile
from tests.conftest import require_module

pytestmark = pytest.mark.iqa  # deselected by default (-m 'not iqa'); .ci/run's iqa lane runs them with pyiqa installed

WEIGHT_FREE = ["ms_ssim", "cw_ssim", "fsim", "vif", "gmsd", "nlpd", "vsi", "mad", "psnry", "ssimc"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Nothing is downloaded (the machines have no internet), weight files come from a TORCH_HOME of the test's own,
    and no metric built by another test is reused."""
    require_module("pyiqa", 'pip install -e ".[iqa]"')
    monkeypatch.setenv(iqa.OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(iqa, "_BUILT", {})


def _profile(folder: Path, name: str, metrics=None) -> object:
    raw = yaml.safe_load(load_profile("smoke").source.read_text())
    raw["name"] = name
    raw["tasks"]["denoise"]["eval_levels"] = [25]  # one level: mad takes seconds per image
    if metrics is not None:
        raw["metrics"] = metrics
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_profile(str(path))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Smoke's HyperRes trained for denoising and evaluated with PSNR/SSIM only, as before any metric was added."""
    folder = tmp_path_factory.mktemp("iqa")
    profile = _profile(folder, "scored")  # the same profile before its metrics: line was added
    paths = Paths(runs=folder / "runs", results=folder / "results", tables=folder / "tables")
    entries = [e for e in expand(profile, ["denoise"]) if e.model == "hyperres"]
    train_all(entries, paths, log=lambda *_: None)
    frame = evaluate_task(profile, "denoise", entries, paths, log=lambda *_: None)
    write_rows(paths.results_file("scored"), tidy_rows(profile, "denoise", entries, frame))
    return folder, paths, entries


def test_every_weight_free_metric_scores_real_images_through_the_evaluation_path_and_retrains_nothing(trained):
    folder, paths, plain_entries = trained
    base = per_image_file(paths.eval_dir(), _profile(folder, "scored"), "denoise", plain_entries[0])
    stored = base.read_bytes()
    before = pd.read_csv(paths.results_file("scored"))
    profile = _profile(folder, "scored", ["psnr", "ssim", *WEIGHT_FREE])
    entries = [e for e in expand(profile, ["denoise"]) if e.model == "hyperres"]
    assert [r.run_id for r in entries[0].runs] == [r.run_id for r in plain_entries[0].runs]  # the same trained run
    iqa.check_profile_metrics(profile)
    frame = evaluate_task(profile, "denoise", entries, paths, log=lambda *_: None)
    write_rows(paths.results_file("scored"), tidy_rows(profile, "denoise", entries, frame))
    assert base.read_bytes() == stored  # the stored PSNR/SSIM file is left as it was
    assert set(WEIGHT_FREE) <= set(frame.columns) and len(frame) == 2 * 3  # HyperRes and the input, 3 images
    assert all(math.isfinite(v) for name in WEIGHT_FREE for v in frame[name])
    after = pd.read_csv(paths.results_file("scored"))
    for metric in ("psnr", "ssim"):  # PSNR/SSIM rows and their run ids stay as they were
        old, new = (t[t.metric == metric].sort_values(["model", "level"]).reset_index(drop=True) for t in (before, after))
        assert old[["run_id", "model", "value", "metric_spec"]].equals(new[["run_id", "model", "value", "metric_spec"]])
    extra = after[after.metric.isin(WEIGHT_FREE)]
    assert len(extra) == 2 * len(WEIGHT_FREE) and extra.versions.str.contains(f"pyiqa {iqa.pyiqa_version()}").all()
    assert not after[after.metric.isin(["psnr", "ssim"])].versions.str.contains("pyiqa").any()
    assert extra.metric_spec.str.startswith("pyiqa:").all() and "pyiqa" not in "".join(extra.metric_spec.str.split("|").str[1:].sum())
    lower = {m for m, s in zip(extra.metric, extra.metric_spec) if s.endswith("|lower")}
    assert lower == {m for m in WEIGHT_FREE if iqa.lower_is_better(m)} == {"gmsd", "nlpd", "mad"}


def test_the_gate_follows_pyiqas_direction_on_real_rows(trained):
    _, paths, _ = trained
    ref = pd.read_csv(paths.results_file("scored"))
    if "nlpd" not in set(ref.metric):
        pytest.fail("run with the evaluation test before it (module order)")
    nlpd = ref.metric == "nlpd"
    worse, better = ref.copy(), ref.copy()
    worse.loc[nlpd, "value"] += 0.05
    better.loc[nlpd, "value"] -= 0.05
    tol = parse_tolerances(["mad=1", "cw_ssim=0.01", "fsim=0.01", "vif=0.01", "gmsd=0.01", "vsi=0.01", "psnry=0.05", "ssimc=0.01"],
                           set(ref.metric))
    assert len(compare(worse, ref, tol).regressions) == nlpd.sum()  # NLPD is lower-better in pyiqa: up is a regression
    cmp = compare(better, ref, tol)
    assert cmp.passed and len(cmp.improvements) == nlpd.sum()


def test_ssim_like_metrics_on_gray_images_repeat_the_channel_and_say_so():
    spec = iqa.spec_for({"name": "ms_ssim", "options": {}}, get_task("dejpeg"))
    assert spec.gray and spec.key().startswith("pyiqa:ms_ssim|gray-x3|crop0|") and "repeated to 3 channels" in spec.describe()
    rgb = iqa.spec_for({"name": "ms_ssim", "options": {"colour": "y"}}, get_task("sr"))
    assert rgb.colour == "y" and "|y|" in rgb.key()


def test_pyiqa_agrees_with_our_metrics_where_the_conventions_are_the_same_and_the_docs_state_the_rest():
    from bench.metrics.crosscheck import COMPARISONS, cross_check, skimage_pairs

    rows = cross_check(skimage_pairs())
    same = [r for r in rows if r["same convention"]]
    assert len(same) == 3 and all(r["largest |difference|"] < 1e-6 for r in same), same
    differ = {r["comparison"]: r for r in rows if not r["same convention"]}
    assert differ["psnry"]["largest |difference|"] > 0.5  # full-range Y against studio range: a dB apart
    docs = DOCS.read_text()
    assert all(name in docs for name, *_ in COMPARISONS)


def test_unknown_and_no_reference_metrics_are_refused_by_name(tmp_path):
    with pytest.raises(HyperbenchError) as err:
        iqa.check_name("ms-ssim")
    assert "did you mean 'ms_ssim'" in str(err.value)
    with pytest.raises(HyperbenchError) as err:
        iqa.check_name("niqe")
    assert "no-reference" in str(err.value)


def test_a_learned_metric_without_its_weights_fails_before_any_work(tmp_path):
    profile = _profile(tmp_path, "learned", ["psnr", "ssim", "lpips"])
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables")
    with pytest.raises(HyperbenchError) as err:
        reproduce(profile, paths, tasks=["denoise"], models=["hyperres"])
    text = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in text and str(tmp_path / "torch-home") in text and "machine with internet" in text
    assert "hyperbench metrics --fetch lpips" in text
    assert not paths.runs.exists() and not paths.results.exists()  # nothing trained, nothing evaluated


def _write_random_lpips_weights(torch_home: Path) -> list[Path]:
    """LPIPS' two files (torchvision's AlexNet and pyiqa's linear layers) with random values, where pyiqa looks."""
    import torch
    import torchvision
    from pyiqa.archs.lpips_arch import LPIPS

    torch.manual_seed(0)
    backbone = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    linear = torch_home / "hub" / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth"
    for path in (backbone, linear):
        path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), backbone)
    torch.save(LPIPS(pretrained=False, pnet_rand=True, net="alex", version="0.1").state_dict(), linear)
    return [backbone, linear]


def test_a_learned_metric_loads_the_weight_files_in_torch_home(tmp_path, trained):
    import numpy as np

    written = _write_random_lpips_weights(tmp_path / "torch-home")
    found = iqa.probe("lpips")
    assert found["weights"] == "needed" and all(p.name in found["present"] for p in written), found  # both files were loaded
    spec = iqa.spec_for({"name": "lpips", "options": {}}, get_task("denoise"))
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    score = iqa.IqaReference(clean, spec).score(np.clip(clean.astype(int) + 10, 0, 255).astype(np.uint8))
    assert math.isfinite(score)  # a random network's value means nothing: only that the loaded network scores
