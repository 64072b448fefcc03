"""The efficiency table (`hyperbench perf --efficiency`): what each figure counts, not how fast anything is.
No timing is asserted; the smoke profile's tiny networks keep it to seconds."""

import sys

import pandas as pd
import pytest
import torch

from bench.apps import efficiency
from bench.apps.cli import main
from bench.apps.efficiency import count_macs, measure_profile, serve
from bench.apps.forward_memory import cpu_peak, model_from_spec, tensor_bytes
from bench.apps.perf import conv_flops, hyperres_forward_flops
from bench.common.checkpoint import save_tensors
from bench.models.hyperres import HyperRes
from bench.reports.efficiency import efficiency_file, read_efficiency, store_efficiency, write_efficiency_tables
from bench.training.profiles import expand, load_profile

CPU = torch.device("cpu")


def _entry(model, task="denoise"):
    return next(e for e in expand(load_profile("smoke"), [task], [model]) if e.primary)


def test_macs_are_half_the_counted_flops_of_every_conv(one_thread):
    torch.manual_seed(0)
    model = HyperRes(meta_blocks=2, width=8).eval()
    x = torch.rand(1, 3, 64, 64)
    assert count_macs(lambda x: model(x, 25.0), x) == hyperres_forward_flops(model, 1, 64, 64) // 2
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 3, 3, padding=1))
    assert count_macs(plain, x) == (conv_flops(1, 3, 16, 64, 64) + conv_flops(1, 16, 3, 64, 64)) // 2


def test_the_bank_switch_loads_the_next_network_from_disk(tmp_path, one_thread):
    served = serve(_entry("perlevel"), tmp_path, CPU)
    assert served.bank and len(served.files) == len(served.switch_levels) == 2  # smoke bank: 25 and 65 serve 5..85
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        level = served.switch_levels[1]
        before = served.answer(x, level)
        state = {k: v * 1.5 for k, v in served.net.state_dict().items()}  # another network in that level's file
        save_tensors(served.files[1], state)
        served.answer(x, served.switch_levels[0])
        after = served.answer(x, level)
        fresh = model_from_spec({**served.spec, "kwargs": {**served.spec["kwargs"], "levels": [level]}})
        member = next(iter(fresh.members.values()))
        member.load_state_dict(state)
        assert not torch.equal(before, after)
        assert torch.equal(after, member(x))
    assert "from disk" in served.mechanism


def test_the_hyperres_switch_is_the_forward_at_the_new_level(tmp_path, one_thread):
    served = serve(_entry("hyperres"), tmp_path, CPU)
    assert "regenerates" in served.mechanism and served.step is not None and len(served.files) == 1
    x = torch.rand(1, 3, 32, 32)
    fresh = model_from_spec(served.spec)
    with torch.inference_mode():
        served.answer(x, 5.0)
        assert torch.equal(served.answer(x, 85.0), fresh(x, 85.0))


def test_every_entry_says_how_it_switches(tmp_path):
    words = {}
    for model in ("dni", "adafm", "cfsnet", "cresmd", "ffdnet", "hinet"):
        words[model] = serve(_entry(model), tmp_path, CPU).mechanism
    assert "interpolation" in words["dni"] and "λ" in words["adafm"] and "α" in words["cfsnet"]
    assert "residual" in words["cresmd"] and "noise map" in words["ffdnet"] and words["hinet"].startswith("none")


def test_cpu_peak_memory_counts_weights_input_and_activations(one_thread):
    spec = {"arch": "hyperres", "kwargs": {"meta_blocks": 1, "width": 8, "in_channels": 3}, "channels": 3, "size": 64, "level": 25.0, "threads": 1}
    resident = tensor_bytes(model_from_spec(spec), torch.rand(1, 3, 64, 64))
    assert cpu_peak(spec) > resident  # the feature maps come on top


def test_stored_figures_become_the_table_with_their_machine(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(efficiency, "cpu_peak", lambda spec: 12345678)  # the fresh-process figure has its own test
    profile = load_profile("smoke")
    path = measure_profile(profile, tmp_path, repeats=2, tasks=["denoise"], models=["hyperres", "perlevel"], log=lambda *_: None)
    assert path == efficiency_file(tmp_path, "smoke")
    rows = read_efficiency(path).set_index("model")
    assert list(rows.index) == ["hyperres", "perlevel"] and (rows.device == "cpu").all()
    assert rows.storage_files["perlevel"] == 2 and rows.storage_files["hyperres"] == 1
    assert rows.params["perlevel"] < rows.params["hyperres"]  # one member network resident
    assert not list(tmp_path.rglob("*.safetensors"))  # scratch files gone

    cuda = read_efficiency(path).assign(device="cuda", device_name="Some GPU", memory_method="CUDA: torch.cuda.max_memory_allocated")
    store_efficiency(path, cuda.to_dict("records"))  # another device adds rows
    store_efficiency(path, cuda.assign(latency_256_ms=1.0).to_dict("records"))  # the same machine replaces its own
    stored = read_efficiency(path)
    assert len(stored) == 4 and (stored[stored.device == "cuda"].latency_256_ms == 1.0).all()

    out = tmp_path / "tables"
    out.mkdir()
    files, md = write_efficiency_tables("smoke", tmp_path, out)
    text = (out / "efficiency.md").read_text()
    assert text.splitlines() == md[:-1] and {f.name for f in files} == {"efficiency.md", "efficiency.csv", "efficiency.tex"}
    assert "Measured on CPU" in text and "Measured on Some GPU" in text and "torch " + torch.__version__ in text
    assert "halved" in text and "regenerates" in text and "from disk" in text
    assert pd.read_csv(out / "efficiency.csv").shape == stored.shape
    assert r"\begin{tabular}" in (out / "efficiency.tex").read_text()
    assert write_efficiency_tables("quick", tmp_path, out) == ([], [])  # nothing stored: nothing written


@pytest.mark.parametrize("args,message", [(["-p", "smok"], "did you mean 'smoke'"), (["--repeats", "3"], "at least 20"),
                                          (["-m", "hyperess"], "did you mean 'hyperres'")])
def test_bad_efficiency_input_gives_one_clear_message(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["hyperbench", "perf", "--efficiency", *args, "--results-dir", "results"])
    with pytest.raises(SystemExit) as exc:
        main()
    text = " ".join(capsys.readouterr().out.split())
    assert exc.value.code == 2 and message in text and "fix:" in text
    assert not (tmp_path / "results").exists()
