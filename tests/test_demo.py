"""The level-slider demo: finding trained runs, restoring, coalescing, upload checks, HTTP server, CLI."""

import base64
import io
import json
import shutil
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from bench.apps.demo import images as demo_images
from bench.apps.demo import models as demo_models
from bench.apps.demo import server as d
from bench.apps.reproduce import Paths, train_all
from bench.common.checkpoint import save_tensors
from bench.common.errors import HyperbenchError
from bench.data.images import to_uint8
from bench.models.catalog import create_model, list_models, model_cfg
from bench.tasks.task import get_task
from bench.training.profiles import expand, load_profile
from bench.training.runs import Run


def train_smoke_runs(runs_dir, tasks, models):
    """Real runs of the smoke profile, cut to 2 steps: the demo only needs finished runs, not good ones."""
    profile = load_profile("smoke")
    profile.train = {**profile.train, "steps": 2, "lr_milestones": [], "checkpoint_every": 2}
    train_all(expand(profile, tasks, models), Paths(runs=runs_dir), None, log=lambda *a: None)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    train_smoke_runs(runs, ["denoise"], ["hyperres", "perlevel"])
    train_smoke_runs(runs, ["dejpeg"], ["hyperres"])
    return runs


@pytest.fixture(scope="module")
def demo(runs_dir):
    return d.build_demo(runs_dir)


def _choice(demo, model, task):
    return next(c for c in demo.choices.values() if c.model == model and c.task == task)


def _pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/bmp;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        return np.asarray(im)


def _encode(image: Image.Image, fmt="PNG", **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return buf.getvalue()


# --------------------------------------------------------------------------- finding trained models

def test_trained_choices_group_banks_and_skip_fixed_or_broken_runs(runs_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(runs_dir, runs)
    # a finished run of a fixed model (its output ignores the level) and a folder with a broken config
    fixed = Run({"model": "plain", "model_kwargs": {"blocks": 1, "width": 8, "in_channels": 3}, "task": "denoise", "levels": [25.0]})
    folder = runs / fixed.run_id
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(fixed.config))
    save_tensors(folder / "model.safetensors", create_model("plain", blocks=1, width=8).state_dict())
    (folder / "done").write_text("{}")
    broken = runs / "0123456789ab"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "done").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"")

    choices = demo_models.trained_choices(runs)
    summary = sorted((c.model, c.task, tuple(c.trained_levels)) for c in choices)
    assert summary == [
        ("hyperres", "dejpeg", (10.0, 30.0, 50.0, 80.0)), ("hyperres", "denoise", (15.0, 35.0, 55.0, 75.0)),
        ("perlevel", "denoise", (25.0, 65.0)),
    ]
    assert choices[0].model == "hyperres" and choices[0].task == "denoise"  # HyperRes first; equal training: denoise first
    assert all("no built-in profile, 2 steps" in c.describe() for c in choices)  # smoke cut to 2 steps: no profile makes these
    smoke_run = expand(load_profile("smoke"))[0].runs[0]
    assert demo_models.profiles_of_runs()[smoke_run.run_id] == "smoke"  # a profile's own run is named by it
    hyperres = [c for c in choices if c.model == "hyperres"]
    assert [c.task for c in hyperres] == ["denoise", "dejpeg"]
    longer = next(c for c in choices if c.model == "hyperres" and c.task == "dejpeg")  # the same run, trained 10x longer
    source = runs / longer.run_ids[0]
    config = json.loads((source / "config.json").read_text())
    run = Run({**config, "train": {**config["train"], "steps": 400}})
    shutil.copytree(source, runs / run.run_id)
    (runs / run.run_id / "config.json").write_text(json.dumps(run.config))
    first = demo_models.trained_choices(runs)[0]
    assert (first.model, first.task, first.run_ids) == ("hyperres", "dejpeg", [run.run_id])  # the most trained HyperRes opens the page
    assert "no built-in profile, 400 steps" in first.describe()
    bank = next(c for c in choices if c.model == "perlevel" and c.task == "denoise")
    assert bank.bank and len(bank.run_ids) == 2 and "bank of 2 networks" in bank.describe()


def test_no_trained_model_tells_how_to_train(tmp_path):
    with pytest.raises(HyperbenchError) as err:
        d.build_demo(tmp_path)
    assert "no trained adaptive model" in err.value.problem
    assert "hyperbench reproduce" in err.value.fix and "--checkpoint" in err.value.fix


def test_bad_selection_options_are_named(runs_dir):
    run_id = _choice(d.build_demo(runs_dir), "hyperres", "denoise").run_ids[0]
    with pytest.raises(HyperbenchError, match="did you mean 'hyperres'"):
        d.build_demo(runs_dir, model="hyperess")
    with pytest.raises(HyperbenchError) as err:
        d.build_demo(runs_dir, run=run_id[:-1] + "z")
    assert run_id in err.value.fix
    with pytest.raises(HyperbenchError, match="both given"):
        d.build_demo(runs_dir, run=run_id, checkpoint=runs_dir / run_id / "model.safetensors")
    chosen = d.build_demo(runs_dir, run=run_id)
    assert chosen.initial_model == run_id
    assert {c.model for c in d.build_demo(runs_dir, model="perlevel").choices.values()} == {"perlevel"}


def test_checkpoint_from_a_run_folder_or_described_by_options(runs_dir, tmp_path):
    run_id = _choice(d.build_demo(runs_dir), "hyperres", "denoise").run_ids[0]
    in_run = d.build_demo(runs_dir, checkpoint=runs_dir / run_id / "model.safetensors")
    assert in_run.choices[in_run.initial_model].trained_levels == [15.0, 35.0, 55.0, 75.0]

    bare = tmp_path / "weights.safetensors"
    shutil.copy(runs_dir / run_id / "model.safetensors", bare)
    with pytest.raises(HyperbenchError, match="no run config next to it"):
        d.build_demo(runs_dir, checkpoint=bare)
    with pytest.raises(HyperbenchError, match="does not fit this model"):
        d.build_demo(runs_dir, checkpoint=bare, model="hyperres", task="denoise")  # default 16 x 64 size
    kwargs = demo_models.parse_kwargs('{"meta_blocks": 1, "width": 8}')
    described = d.build_demo(tmp_path / "no-runs", checkpoint=bare, model="hyperres", task="denoise", kwargs=kwargs)
    assert list(described.choices) == [f"file:{bare}"]
    with pytest.raises(HyperbenchError, match="not an adaptive model"):
        d.build_demo(runs_dir, checkpoint=bare, model="plain", task="denoise")
    with pytest.raises(HyperbenchError, match="does not exist"):
        d.build_demo(runs_dir, checkpoint=tmp_path / "missing.safetensors")
    with pytest.raises(HyperbenchError, match="not a JSON object"):
        demo_models.parse_kwargs("meta_blocks=1")


# ------------------------------------------------------------------------------------- restoring

def test_output_follows_the_input_level_and_matches_the_model(demo):
    choice = _choice(demo, "hyperres", "denoise")
    base = {"client": "t", "model": choice.id, "image": "sample-chelsea", "level": 35}
    low = demo.restore({**base, "input_level": 15})
    high = demo.restore({**base, "input_level": 75, "have_input": low["input_key"]})
    assert low["input_key"] == high["input_key"] and "input_png" in low and "input_png" not in high
    assert low["psnr_input"] == high["psnr_input"] and np.isfinite(low["psnr_input"])
    assert not np.array_equal(_pixels(low["output_png"]), _pixels(high["output_png"]))
    assert high["model_level"] == 75 and high["forward_ms"] > 0 and high["total_ms"] >= high["forward_ms"]

    noisy = torch.from_numpy(_pixels(low["input_png"]).astype(np.float32) / 255).permute(2, 0, 1)[None]
    model = choice.load().eval()
    with torch.no_grad():
        expected = to_uint8(model(noisy, 75.0))
    diff = np.abs(_pixels(high["output_png"]).astype(int) - expected.astype(int))
    assert diff.max() <= 1  # channels_last changes float summation order only


def test_bank_runs_its_nearest_network(demo):
    bank = _choice(demo, "perlevel", "denoise")
    reply = demo.restore({"model": bank.id, "image": "sample-astronaut", "level": 30, "input_level": 60})
    assert reply["model_level"] == 65.0 and reply["input_level"] == 60.0


def test_dejpeg_is_luma_and_image_as_given_has_no_psnr(demo):
    choice = _choice(demo, "hyperres", "dejpeg")
    reply = demo.restore({"model": choice.id, "image": "sample-coffee", "level": None, "input_level": 30})
    assert reply["psnr_input"] is None and reply["psnr_output"] is None
    shown = _pixels(reply["input_png"])
    assert shown.ndim == 2 and np.array_equal(shown, demo.images["sample-coffee"].clean("luma"))
    assert _pixels(reply["output_png"]).shape == shown.shape


LEVEL_CONTROLLED = [n for n in list_models() if model_cfg(n).adaptive or model_cfg(n).protocol == "bank"]


@pytest.fixture(scope="module")
def crop():
    return demo_images.DemoImage("crop", "crop", np.ascontiguousarray(demo_images.sample_images()[0].rgb[200:248, 200:248]))


@pytest.mark.parametrize("name", LEVEL_CONTROLLED)
def test_every_level_controlled_entry_runs_in_the_demo(name, crop):
    """Any adaptive zoo entry (and any bank) works through model(x, level), untrained, at its test size."""
    cfg = model_cfg(name)
    task = get_task(cfg.tasks[0])
    kwargs = {**cfg.test_kwargs, "in_channels": task.in_channels}
    net = create_model(name, **kwargs)
    choice = demo_models.Choice(id=name, model=name, task=task.name, kwargs=kwargs, trained_levels=[], options=task.default_options,
                      source="untrained", load=lambda: net)
    demo = d.Demo([choice], [crop], choice)
    level = demo_models.DEFAULT_LEVEL[task.name]
    replies = [demo.restore({"model": name, "image": "crop", "level": level, "input_level": level + step}) for step in (0, 1)]
    for reply in replies:
        out = _pixels(reply["output_png"])
        assert out.shape[:2] == (48, 48) and np.isfinite(reply["psnr_output"])


@pytest.mark.parametrize("change,message", [
    ({"model": "nope"}, "unknown model"),
    ({"image": "upload-99"}, "no longer on the server"),
    ({"level": 300}, "outside the valid range"),
    ({"input_level": "high"}, "not a number"),
    ({"input_level": -5}, "outside the valid range"),
])
def test_bad_requests_are_named(demo, change, message):
    request = {"model": _choice(demo, "hyperres", "denoise").id, "image": "sample-astronaut", "level": 25, "input_level": 25, **change}
    with pytest.raises(HyperbenchError, match=message):
        demo.restore(request)


def test_waiting_requests_are_coalesced_to_the_latest():
    """Job 0 runs and holds the runner (it says so through an event); requests 1-3 of key "a" and 4 of key
    "b" are registered in this thread, in order, while it waits; then it is released. No polling: each step
    follows an event, so the outcome does not depend on the machine's load."""
    runner = d.LatestOnly()
    running, release, ran, results = threading.Event(), threading.Event(), [], {}

    def job(i):
        if i == 0:
            running.set()
            release.wait(10)
        ran.append(i)
        return i

    first = threading.Thread(target=lambda: results.__setitem__(0, runner.run("a", lambda: job(0))))
    first.start()
    assert running.wait(10)  # job 0 holds the runner
    threads = [first]
    for i, key in ((1, "a"), (2, "a"), (3, "a"), (4, "b")):
        token = runner.register(key)
        threads.append(threading.Thread(target=lambda i=i, key=key, token=token: results.__setitem__(i, runner.run_registered(key, token, lambda: job(i)))))
        threads[-1].start()
    release.set()
    for t in threads:
        t.join(10)
    assert results == {0: 0, 1: None, 2: None, 3: 3, 4: 4}  # 1 and 2 were superseded by 3 while they waited
    assert sorted(ran) == [0, 3, 4]


# --------------------------------------------------------------------------------------- uploads

def _with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with another size in its header (a decompression bomb's trick)."""
    header = struct.pack(">II", width, height) + png[24:29]
    chunk = b"IHDR" + header
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def _rejects(data, message, name="mine.png"):
    with pytest.raises(HyperbenchError) as err:
        demo_images.decode_image(data, name)
    assert message in err.value.problem and err.value.fix
    return err.value


def test_bad_uploads_are_refused_with_a_reason():
    rgb = np.full((64, 64, 3), 120, np.uint8)
    _rejects(b"", "is empty")
    _rejects(b"GIF89a is not what this is", "is not an image")
    _rejects(b"\0" * (demo_images.MAX_UPLOAD_BYTES + 1), "limited to 8 MB")
    _rejects(_encode(Image.fromarray(rgb), "GIF"), "is a GIF file")
    _rejects(_encode(Image.new("L", (2100, 40))), "the limit is 2048x2048")
    _rejects(_encode(Image.fromarray(rgb))[:-40], "cannot be decoded")
    _rejects(_encode(Image.new("RGB", (20, 20))), "too small: 20x20 pixels;")
    _rejects(_encode(Image.new("RGB", (2000, 40))), "too small: 512x10 pixels once fitted into 512x512")
    _rejects(_with_declared_size(_encode(Image.new("L", (8, 8))), 40000, 40000), "claims an enormous size")
    with pytest.raises(HyperbenchError, match="pixel mode F"):
        demo_images._to_rgb8(Image.new("F", (40, 40)), "x")
    with pytest.raises(HyperbenchError, match="32-bit integer"):
        demo_images._to_rgb8(Image.new("I", (40, 40), 70000), "x")


def test_uploads_in_other_modes_are_converted_and_noted():
    gray16 = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    rgb, notes = demo_images.decode_image(_encode(Image.fromarray(gray16)), "g16.png")
    assert rgb.shape == (64, 64, 3) and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and "16-bit" in notes[0]

    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[:20, :, 3], rgba[20:, :, 3] = 200, 255, 0
    rgb, notes = demo_images.decode_image(_encode(Image.fromarray(rgba)), "alpha.png")
    assert tuple(rgb[0, 0]) == (200, 0, 0) and tuple(rgb[-1, -1]) == (255, 255, 255) and "flattened onto white" in notes[0]
    rgba[..., 3] = 255
    assert demo_images.decode_image(_encode(Image.fromarray(rgba)), "opaque.png")[1] == ["opaque alpha channel dropped"]

    rgb, notes = demo_images.decode_image(_encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG", quality=95), "print.jpg")
    assert rgb.shape == (40, 40, 3) and rgb[20, 20, 0] > 200 and rgb[20, 20, 1] < 60 and "CMYK" in notes[0]

    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([10, 20, 30] * 256)
    assert tuple(demo_images.decode_image(_encode(palette), "p.png")[0][0, 0]) == (10, 20, 30)
    gray, notes = demo_images.decode_image(_encode(Image.new("L", (40, 40), 77), "JPEG", quality=100), "g.jpg")
    assert gray.shape == (40, 40, 3) and notes == []


def test_large_or_odd_uploads_are_fitted():
    rgb, notes = demo_images.decode_image(_encode(Image.new("RGB", (1000, 701), (9, 99, 199))), "big.png")
    assert rgb.shape == (358, 512, 3) and "downscaled from 1000x701 to 512x359" in notes[0] and "cropped to 512x358" in notes[1]
    rgb, notes = demo_images.decode_image(_encode(Image.new("RGB", (101, 75))), "odd.png")
    assert rgb.shape == (74, 100, 3) and notes == ["cropped to 100x74 (the models need even sides)"]


# ---------------------------------------------------------------------------------------- server

def _http(url, data=None, content_type="application/json"):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def server(demo):
    srv = d.start_in_thread(demo)
    yield d.url_of(srv)
    srv.shutdown()
    srv.server_close()


def test_server_serves_page_state_and_restorations(server, demo):
    assert server.startswith("http://127.0.0.1:")
    status, page = _http(server)
    assert status == 200 and b'id="input-level"' in page and b'id="output-img"' in page
    state = json.loads(_http(server + "api/state")[1])
    assert state["initial_model"] in {m["id"] for m in state["models"]} and state["limits"]["max_side"] == 2048
    model = _choice(demo, "hyperres", "denoise").id
    status, body = _http(server + "api/restore", json.dumps({"model": model, "image": "sample-astronaut", "level": 25, "input_level": 40, "seq": 7}).encode())
    reply = json.loads(body)
    assert status == 200 and reply["seq"] == 7 and reply["input_level"] == 40 and reply["output_png"].startswith("data:image/bmp")


def test_server_answers_bad_input_and_keeps_running(server, demo):
    model = _choice(demo, "hyperres", "denoise").id
    for path, data, message in [
        ("api/restore", b"{oops", "not a JSON object"),
        ("api/restore", json.dumps({"model": model, "image": "sample-astronaut", "level": 900, "input_level": 1}).encode(), "outside the valid range"),
        ("api/upload?name=notes.txt", b"just text", "notes.txt is not an image"),
        ("api/upload?name=huge.png", b"\0" * (demo_images.MAX_UPLOAD_BYTES + 10), "the limit is 8 MB"),
    ]:
        status, body = _http(server + path, data, "application/octet-stream")
        reply = json.loads(body)
        assert status == 400 and message in reply["error"] and reply["fix"], (path, reply)
    assert _http(server + "nothing-here")[0] == 404

    status, body = _http(server + "api/upload?name=../../mine.png", _encode(Image.new("RGB", (640, 480), (30, 60, 90))), "image/png")
    info = json.loads(body)
    assert status == 200 and info["name"] == "mine.png" and (info["width"], info["height"]) == (512, 384) and "downscaled" in info["notes"][0]
    status, body = _http(server + "api/restore", json.dumps({"model": model, "image": info["id"], "level": 25, "input_level": 25}).encode())
    assert status == 200 and _pixels(json.loads(body)["output_png"]).shape == (384, 512, 3)


def test_a_busy_port_is_a_clear_error(server, demo):
    port = int(server.rsplit(":", 1)[1].strip("/"))
    with pytest.raises(HyperbenchError, match=f"cannot listen on 127.0.0.1:{port}") as err:
        d.make_server(demo, port)
    assert "--port" in err.value.fix


def test_uploads_kept_on_the_server_are_bounded(demo):
    small = _encode(Image.new("RGB", (40, 40)))
    for _ in range(d.MAX_UPLOADS + 3):
        demo.add_image(small, "s.png")
    uploads = [k for k in demo.images if k.startswith("upload-")]
    assert len(uploads) == d.MAX_UPLOADS and all(k in demo.images for k in ("sample-astronaut", "sample-chelsea"))


# ------------------------------------------------------------------------------------------- CLI

def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bench.apps.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_demo_without_runs_gives_one_clear_message(tmp_path):
    out = _cli("demo", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 2 and "no trained adaptive model" in text and "hyperbench reproduce" in text
    assert "Traceback" not in out.stderr and not any(tmp_path.iterdir())


def test_benchmark_reports_per_update_times():
    lines = []
    rows = d.benchmark(("smoke",), updates=2, log=lines.append)
    assert [r["layout"] for r in rows] == ["contiguous", "channels_last"]
    assert rows[0]["kwargs"] == {**load_profile("smoke").models["hyperres"], "in_channels": 3}
    assert all(0 < r["forward_ms"] <= r["server_ms"] <= r["round_trip_ms"] for r in rows)
    assert "512x512 RGB" in lines[0] and sum(line.startswith("smoke") for line in lines) == 2
