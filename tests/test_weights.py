"""Official checkpoints in and out (`hyperbench weights`): HyperRes in its official container, the real
official noise estimator and FFDNet files, DNI's two networks, and every bad file's error."""

import json

import pytest
import torch
from typer.testing import CliRunner

from bench.apps.cli import app
from bench.common.errors import HyperbenchError
from bench.evaluation.evaluate import load_trained
from bench.models.catalog import create_model
from bench.weights.exporting import export_run
from bench.weights.importing import import_weights
from tests.conftest import SHARED

WEIGHTS = SHARED / "reference" / "weights"


def official_hyperres(blocks=2, channels=3, prefix="", seed=0):
    """A checkpoint named as ifryed/HyperRes train_main.py saves it, written from the official naming
    (models/HyperRes.py), not from the suite's mapping: ModuleParallel convs, an identity at
    res_blocks_meta.0, Linear(1, 64*(64*9+1)) generators."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"conv1.module.weight": (64, channels, 3, 3), "conv1.module.bias": (64,)}
    for i in range(1, blocks + 1):
        for conv in ("hy_conv1", "hy_conv2"):
            shapes[f"res_blocks_meta.{i}.{conv}.fc.weight"] = (64 * (64 * 9 + 1), 1)
            shapes[f"res_blocks_meta.{i}.{conv}.fc.bias"] = (64 * (64 * 9 + 1),)
    for name, cout, cin in (("conv2", 64, 64), ("conv3", 256, 64), ("conv4", 64, 64), ("conv5", channels, 64)):
        shapes[f"{name}.module.weight"], shapes[f"{name}.module.bias"] = (cout, cin, 3, 3), (cout,)
    state = {prefix + k: torch.randn(s, generator=g) * 0.01 for k, s in shapes.items()}
    return {"epoch": 7, "arch": "HyperRes", "state_dict": state, "best_prec1": 30.0, "optimizer": {"state": {}, "param_groups": []},
            "sigmas": [15, 35, 55, 75]}


def test_hyperres_import_places_every_official_tensor(tmp_path):
    ckpt = official_hyperres()
    torch.save(ckpt, tmp_path / "noise_4.pth")
    rundir = import_weights("hyperres", [tmp_path / "noise_4.pth"], "denoise", tmp_path / "runs")
    config = json.loads(rundir.config.read_text())
    assert config["levels"] == [15, 35, 55, 75]  # from the file's `sigmas`
    assert config["model_kwargs"] == {"meta_blocks": 2, "width": 64, "in_channels": 3}
    assert config["imported"]["files"][0]["name"] == "noise_4.pth" and len(config["imported"]["files"][0]["sha256"]) == 64
    assert "github.com/ifryed/HyperRes" in config["imported"]["source"]
    model = load_trained(rundir)
    official = ckpt["state_dict"]
    assert torch.equal(model.head.conv1.weight, official["conv1.module.weight"])
    assert torch.equal(model.blocks[0].conv1.generator.weight, official["res_blocks_meta.1.hy_conv1.fc.weight"])
    assert torch.equal(model.blocks[1].conv2.generator.bias, official["res_blocks_meta.2.hy_conv2.fc.bias"])
    assert torch.equal(model.tail.conv5.bias, official["conv5.module.bias"])
    # The generated conv at a level is the official one: fc(level / 255), weights first, then biases.
    fc = official["res_blocks_meta.1.hy_conv1.fc.weight"][:, 0] * (35 / 255) + official["res_blocks_meta.1.hy_conv1.fc.bias"]
    w, b = model.blocks[0].conv1.weights(35 / 255)
    assert torch.allclose(w, fc[: 64 * 64 * 9].reshape(64, 64, 3, 3)) and torch.allclose(b, fc[64 * 64 * 9 :])


def test_hyperres_gray_blocks_and_dataparallel_prefix_inferred(tmp_path):
    torch.save(official_hyperres(blocks=1, channels=1, prefix="module."), tmp_path / "gray.pth")
    rundir = import_weights("hyperres", [tmp_path / "gray.pth"], "dejpeg", tmp_path / "runs", levels=[10, 30, 50, 80])
    assert rundir.run.config["model_kwargs"] == {"meta_blocks": 1, "width": 64, "in_channels": 1}
    assert load_trained(rundir)(torch.rand(1, 1, 8, 8), 30).shape == (1, 1, 8, 8)


def test_hyperres_round_trip_gives_identical_outputs(tmp_path):
    torch.save(official_hyperres(), tmp_path / "a.pth")
    first = import_weights("hyperres", [tmp_path / "a.pth"], "denoise", tmp_path / "runs")
    (written,) = export_run(first.path, tmp_path / "exported.pth")
    back = torch.load(written, map_location="cpu", weights_only=True)
    assert back["sigmas"] == [15, 35, 55, 75] and set(back["state_dict"]) == set(official_hyperres()["state_dict"])
    assert all(torch.equal(back["state_dict"][k], v) for k, v in official_hyperres()["state_dict"].items())
    second = import_weights("hyperres", [written], "denoise", tmp_path / "runs2")
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(load_trained(first)(x, 40), load_trained(second)(x, 40))


def test_export_refuses_a_width_the_official_code_cannot_build(tmp_path):
    from bench.common.checkpoint import save_tensors
    from bench.training.runs import Run, RunDir

    model = create_model("hyperres", meta_blocks=1, width=16)
    rundir = RunDir(tmp_path, Run({"model": "hyperres", "model_kwargs": {"meta_blocks": 1, "width": 16, "in_channels": 3}, "task": "denoise", "levels": [15.0, 75.0]}))
    rundir.create()
    save_tensors(rundir.model_file, model.state_dict())
    rundir.mark_done({})
    with pytest.raises(HyperbenchError, match="width 16: models/HyperRes.py hard-codes 64"):
        export_run(rundir.path, tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.update({"res_blocks_meta.1.hy_conv3.fc.weight": torch.zeros(3, 1)}), "unknown keys \\(res_blocks_meta.1.hy_conv3.fc.weight"),
    (lambda s: s.pop("conv4.module.bias"), "missing keys \\(conv4.module.bias"),
    (lambda s: s.update({"conv3.module.weight": torch.zeros(128, 64, 3, 3)}), "conv3.module.weight: \\(128, 64, 3, 3\\), expected \\(256, 64, 3, 3\\)"),
    (lambda s: s.pop("conv1.module.weight"), "lacks 'conv1.module.weight'"),
])
def test_bad_hyperres_files_name_the_offending_keys(tmp_path, damage, message):
    ckpt = official_hyperres()
    damage(ckpt["state_dict"])
    torch.save(ckpt, tmp_path / "bad.pth")
    with pytest.raises(HyperbenchError, match=message):
        import_weights("hyperres", [tmp_path / "bad.pth"], "denoise", tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_pickled_code_missing_file_and_wrong_use_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran code",))

    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(HyperbenchError, match="not a plain tensor file"):
        import_weights("hyperres", [tmp_path / "evil.pth"], "denoise", tmp_path / "runs")
    with pytest.raises(HyperbenchError, match="not found"):
        import_weights("hyperres", [tmp_path / "absent.pth"], "denoise", tmp_path / "runs")
    torch.save(official_hyperres(), tmp_path / "ok.pth")
    with pytest.raises(HyperbenchError, match="did you mean 'hyperres'"):
        import_weights("hyperress", [tmp_path / "ok.pth"], "denoise", tmp_path / "runs")
    with pytest.raises(HyperbenchError, match="not an entry of task 'sr'"):
        import_weights("ffdnet", [tmp_path / "ok.pth"], "sr", tmp_path / "runs")
    with pytest.raises(HyperbenchError, match="two files"):
        import_weights("dni", [tmp_path / "ok.pth"], "denoise", tmp_path / "runs")
    ckpt = official_hyperres()
    del ckpt["sigmas"]
    torch.save(ckpt, tmp_path / "mine.pth")
    with pytest.raises(HyperbenchError, match="--levels"):
        import_weights("hyperres", [tmp_path / "mine.pth"], "denoise", tmp_path / "runs")


def test_dni_imports_two_basic_networks_and_exports_them_again(tmp_path):
    from bench.weights.importing import get_format
    from bench.weights.official import to_official

    plain = get_format("plain")
    nets = [create_model("plain", blocks=2, width=8) for _ in range(2)]
    for i, net in enumerate(nets):
        torch.save(to_official(plain, net.state_dict(), {"blocks": 2, "width": 8, "in_channels": 3}), tmp_path / f"net{i}.pth")
    rundir = import_weights("dni", [tmp_path / "net0.pth", tmp_path / "net1.pth"], "denoise", tmp_path / "runs", levels=[15, 75])
    dni = load_trained(rundir)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():  # alpha 1 at the start level: the first network; alpha 0 at the end level: the second
        assert torch.allclose(dni(x, 15), nets[0](x), atol=1e-6) and torch.allclose(dni(x, 75), nets[1](x), atol=1e-6)
    files = export_run(rundir.path, tmp_path / "dni.pth")
    assert [f.name for f in files] == ["dni_a_15.pth", "dni_b_75.pth"]
    again = import_weights("dni", files, "denoise", tmp_path / "runs2", levels=[15, 75])
    with torch.no_grad():
        assert torch.equal(load_trained(again)(x, 40), dni(x, 40))


@pytest.fixture
def official_weights():
    if not (WEIGHTS / "hyperres_noise_detect.pth").is_file():
        pytest.skip("../shared/reference/weights is not on this machine")
    return WEIGHTS


def test_the_official_noise_estimator_goes_in_and_out_unchanged(tmp_path, official_weights):
    from bench.models.noisenet_official import load_official

    source = official_weights / "hyperres_noise_detect.pth"
    result = CliRunner().invoke(app, ["weights", "import", "noisenet", str(source), "--task", "denoise", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    (rundir,) = (tmp_path / "runs").iterdir()
    config = json.loads((rundir / "config.json").read_text())
    assert config["imported"]["files"][0]["sha256"] == "f763ea7c76708c0785b458ddaed5e13c42bbd42bc64bd3183785146087914219"
    from bench.common.checkpoint import load_tensors

    stored = load_tensors(rundir / "model.safetensors")[0]
    original = torch.load(source, map_location="cpu", weights_only=True)  # bit for bit, subnormals included
    assert set(stored) == set(original) and all(torch.equal(stored[k], original[k]) for k in original)
    imported, reference = create_model("noisenet"), load_official(source)  # load_official flushes the subnormals
    imported.load_state_dict(stored)
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(imported.eval().forward_crops(x), reference.forward_crops(x))
    result = CliRunner().invoke(app, ["weights", "export", str(rundir), "-o", str(tmp_path / "noise_detect.pth")])
    assert result.exit_code == 0, result.output
    exported = torch.load(tmp_path / "noise_detect.pth", weights_only=True)
    assert set(exported) == set(original) and all(torch.equal(exported[k], original[k]) for k in original)


def test_official_ffdnet_mat_becomes_a_run(tmp_path, official_weights):
    from baselines.ffdnet import load_official_ffdnet

    source = official_weights / "ffdnet_FFDNet_gray.mat"
    rundir = import_weights("ffdnet", [source], "denoise", tmp_path / "runs")
    assert rundir.run.config["levels"] == [0.0, 75.0]  # matched by sha256 (the file here carries a prefix)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(load_trained(rundir)(x, 25), load_official_ffdnet(source)(x, 25))


def test_cli_lists_the_released_files_and_reports_bad_input():
    result = CliRunner().invoke(app, ["weights", "list"])
    assert result.exit_code == 0 and "noise_4.pth" in result.output and "github.com/ifryed/HyperRes" in result.output


OFFICIAL_TEST_PROFILE = """
name: official-test
seed: 0
train: {}
models:
  hyperres: {weights: {denoise: noise_4.pth}}
  adafm: {weights: {denoise: noise15to75.pth}}
tasks:
  denoise: {eval_dataset: skimage-eval, eval_levels: [25, 50], options: {clip: true, quantise: floor}}
"""


def test_official_profile_imports_present_weights_and_lists_absent_ones(tmp_path):
    """reproduce with `weights:` entries: the HyperRes file found in the weights folder becomes a run whose
    rows are marked official weights and carry the published values; AdaFM's absent file is listed with
    where to get it; nothing is trained."""
    from bench.apps.reproduce import Paths, reproduce
    from bench.training.profiles import load_profile

    (tmp_path / "profile.yaml").write_text(OFFICIAL_TEST_PROFILE)
    (tmp_path / "weights").mkdir()
    torch.save(official_hyperres(blocks=1), tmp_path / "weights" / "noise_4.pth")
    paths = Paths(runs=tmp_path / "runs", results=tmp_path / "results", tables=tmp_path / "tables", weights=tmp_path / "weights")
    lines = []
    out = reproduce(load_profile(str(tmp_path / "profile.yaml")), paths, log=lines.append)
    assert any("absent: adafm (denoise): noise15to75.pth not in" in str(line) for line in lines)
    (run,) = (tmp_path / "runs").iterdir()  # the imported one: nothing trained
    assert json.loads((run / "config.json").read_text())["imported"]["files"][0]["name"] == "noise_4.pth"
    md = (tmp_path / "tables" / "official-test" / "table2_denoise.md").read_text()
    assert "HyperRes (official weights)" in md and "imported, not trained here" in md
    assert "adafm: absent — noise15to75.pth not in" in md and "github.com/hejingwenhejingwen/AdaFM" in md
    import pandas as pd

    results = pd.read_csv(out["results"])
    assert set(results.model) == {"hyperres", "degraded-input"} and set(results.level) == {25.0, 50.0}


def test_demo_offers_an_imported_run_and_opens_on_it(tmp_path):
    """Official weights are the paper's whole training: the demo names their file and opens on them."""
    from bench.apps.demo.models import trained_choices

    torch.save(official_hyperres(blocks=1), tmp_path / "noise_4.pth")
    import_weights("hyperres", [tmp_path / "noise_4.pth"], "denoise", tmp_path / "runs")
    (choice,) = trained_choices(tmp_path / "runs")
    assert choice.source.startswith("official weights noise_4.pth") and choice.trained_levels == [15, 35, 55, 75]
    assert choice.load()(torch.rand(1, 3, 8, 8), 25).shape == (1, 3, 8, 8)
