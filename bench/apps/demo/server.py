"""Real-time level control: a local web page with a restoration-level slider (`hyperbench demo`).

The page shows a degraded image next to its restoration by a trained adaptive model. One control sets
the true degradation, a slider sets the input level the model is given (`model(x, level)`), so one can
watch what a wrong level does. The server is the standard library's ThreadingHTTPServer on 127.0.0.1.
Restorations run one at a time, and a request still waiting when a newer one arrives from the same page
for the same model is dropped; the page keeps at most one request in flight and sends only the latest
slider value when it returns. Together these keep the output from lagging behind the slider.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from bench.apps.demo.images import (
    FORMATS,
    MAX_SIDE,
    MAX_UPLOAD_BYTES,
    WORK_SIDE,
    DemoImage,
    data_url,
    decode_image,
    image_file,
    sample_images,
)
from bench.apps.demo.models import Choice, checkpoint_choice, trained_choices
from bench.common.errors import HyperbenchError, did_you_mean
from bench.data.images import to_tensor, to_uint8
from bench.evaluation.evaluate import input_level
from bench.metrics.quality import psnr
from bench.models.catalog import count_params, create_model, model_cfg
from bench.tasks.degradations import seeded_rng
from bench.tasks.task import get_task
from bench.training.profiles import load_profile

PAGE = Path(__file__).with_name("page.html")
MAX_UPLOADS = 8  # uploaded images kept on the server (oldest dropped first)
MAX_JSON_BYTES = 64 * 2**10


class LatestOnly:
    """Runs jobs one at a time. A job still waiting when a newer one arrives under the same key is
    dropped (`run` returns None), so a burst of slider moves costs one restoration, not one per move."""

    def __init__(self):
        self._busy = threading.Lock()
        self._guard = threading.Lock()
        self._latest: dict = {}

    def run(self, key, job: Callable):
        return self.run_registered(key, self.register(key), job)

    def register(self, key) -> object:
        """Make a request the latest of its key; its token is what `run_registered` checks."""
        token = object()
        with self._guard:
            self._latest[key] = token
        return token

    def run_registered(self, key, token, job: Callable):
        """Wait for the previous job, then run `job` unless a newer request of the key arrived meanwhile."""
        with self._busy:
            with self._guard:
                if self._latest.get(key) is not token:
                    return None
                del self._latest[key]
            return job()


@dataclass
class DegradedInput:
    key: str
    x: torch.Tensor
    url: str
    psnr: float | None


def _json_psnr(value):
    if value is None:
        return None
    return value if math.isfinite(value) else "inf"


class Demo:
    """Models, images and the restore operation behind the page."""

    def __init__(self, choices: list[Choice], images: list[DemoImage], initial: Choice | None = None, channels_last: bool = True):
        if not choices or not images:
            raise ValueError("a demo needs at least one model and one image")
        self.choices = {c.id: c for c in choices}
        self.images: OrderedDict[str, DemoImage] = OrderedDict((im.id, im) for im in images)
        self.initial_model = (initial or choices[0]).id
        self.initial_image = images[0].id
        self.channels_last = channels_last  # faster CPU convolutions for narrow networks (`hyperbench demo --benchmark`)
        self.runner = LatestOnly()
        self._models: OrderedDict[str, torch.nn.Module] = OrderedDict()
        self._inputs: OrderedDict[str, DegradedInput] = OrderedDict()
        self._lock = threading.Lock()  # guards images; restorations are serialised by the runner
        self._uploads = 0

    def state(self) -> dict:
        with self._lock:
            images = [im.info() for im in self.images.values()]
        return {
            "models": [c.info() for c in self.choices.values()], "initial_model": self.initial_model,
            "images": images, "initial_image": self.initial_image, "torch_threads": torch.get_num_threads(),
            "limits": {"max_bytes": MAX_UPLOAD_BYTES, "max_mb": MAX_UPLOAD_BYTES // 2**20, "max_side": MAX_SIDE,
                       "work_side": WORK_SIDE, "formats": list(FORMATS)},
        }

    def add_image(self, data: bytes, name: str) -> dict:
        rgb, notes = decode_image(data, name)
        with self._lock:
            self._uploads += 1
            image = DemoImage(f"upload-{self._uploads}", name, rgb, notes)
            self.images[image.id] = image
            uploads = [k for k in self.images if k.startswith("upload-")]
            for old in uploads[:-MAX_UPLOADS]:
                del self.images[old]
        return image.info()

    def model_for(self, choice: Choice) -> torch.nn.Module:
        if choice.id not in self._models:
            net = choice.load().eval()
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
            self._models[choice.id] = net
            while len(self._models) > 3:
                self._models.popitem(last=False)
        self._models.move_to_end(choice.id)
        return self._models[choice.id]

    def restore(self, request: dict) -> dict:
        """One page update: {client, model, image, level (None: the image as it is), input_level,
        have_input, seq} -> output image, PSNRs and timings (or {"superseded": true})."""
        choice = self.choices.get(str(request.get("model")))
        if choice is None:
            raise HyperbenchError(f"unknown model {request.get('model')!r}", "reload the page")
        with self._lock:
            image = self.images.get(str(request.get("image")))
        if image is None:
            raise HyperbenchError(f"image {request.get('image')!r} is no longer on the server", "upload it again or reload the page")
        task = get_task(choice.task)
        level = None if request.get("level") is None else task.check_level(request["level"])
        requested = task.check_level(request.get("input_level"), label="input level", integer=False)
        key = (str(request.get("client", "")), choice.id)
        result = self.runner.run(key, lambda: self._restore(choice, image, task, level, requested, request.get("have_input")))
        return {**(result or {"superseded": True}), "seq": request.get("seq")}

    def _degraded(self, image: DemoImage, task, level, options: dict) -> DegradedInput:
        text = json.dumps([image.id, task.name, level, options], sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        if key not in self._inputs:
            clean = image.clean(task.channels)
            if level is None:
                pixels, quality = clean, None
            else:  # noise seeded by (image, level): moving the input slider never redraws it
                pixels = to_uint8(to_tensor(task.degrade(clean, level, seeded_rng(image.id, f"{level:g}", 0), options)))
                quality = psnr(pixels, clean, task.metric)
            x = to_tensor(pixels)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self._inputs[key] = DegradedInput(key, x, data_url(pixels), quality)
            while len(self._inputs) > 16:
                self._inputs.popitem(last=False)
        self._inputs.move_to_end(key)
        return self._inputs[key]

    @torch.inference_mode()
    def _restore(self, choice: Choice, image: DemoImage, task, level, requested: float, have_input) -> dict:
        t0 = time.perf_counter()
        degraded = self._degraded(image, task, level, choice.options)
        model = self.model_for(choice)
        given = input_level(model, requested)  # a bank answers with its nearest trained level
        t1 = time.perf_counter()
        y = model(degraded.x, given)
        forward_ms = (time.perf_counter() - t1) * 1000
        out = to_uint8(y)
        quality = None if level is None else psnr(out, image.clean(task.channels), task.metric)
        reply = {
            "model": choice.id, "image": image.id, "task": task.name, "level": level, "input_level": requested,
            "model_level": given, "input_key": degraded.key, "output_png": data_url(out),
            "psnr_input": _json_psnr(degraded.psnr), "psnr_output": _json_psnr(quality), "forward_ms": forward_ms,
        }
        if have_input != degraded.key:
            reply["input_png"] = degraded.url
        reply["total_ms"] = (time.perf_counter() - t0) * 1000
        return reply


def build_demo(runs_dir: Path = Path("results/runs"), model: str | None = None, run: str | None = None, checkpoint: Path | None = None,
               task: str | None = None, kwargs: dict | None = None, image: Path | None = None) -> Demo:
    """The demo for the CLI's options; raises HyperbenchError when there is nothing trained to show."""
    if run and checkpoint:
        raise HyperbenchError("--run and --checkpoint were both given", "pass one of them")
    if model:
        model_cfg(model)  # unknown name -> did you mean
    if task:
        get_task(task)
    runs_dir = Path(runs_dir)
    choices = [c for c in trained_choices(runs_dir) if model is None or c.model == model]
    initial = None
    if checkpoint is not None:
        initial = checkpoint_choice(checkpoint, model, task, kwargs)
        choices = [initial] + choices
    elif run:
        matches = [c for c in choices if run in c.run_ids]
        if not matches:
            known = [r for c in choices for r in c.run_ids]
            hint = did_you_mean(run, known) if known else "train it first (`hyperbench reproduce`)"
            raise HyperbenchError(f"no finished adaptive run {run!r} in {runs_dir}" + (f" for {model}" if model else ""), hint)
        initial = matches[0]
    if not choices:
        raise HyperbenchError(
            f"no trained adaptive model{' ' + model if model else ''} in {runs_dir}",
            "train one first: `hyperbench reproduce --profile smoke` (tiny models, a minute on a CPU) or `--profile quick`; "
            "or pass --runs-dir DIR where your runs are, or --checkpoint PATH",
        )
    images = ([image_file(image)] if image else []) + sample_images()
    demo = Demo(choices, images, initial)
    demo.model_for(demo.choices[demo.initial_model])  # load now: a broken checkpoint fails here, not on the page
    return demo


# ----------------------------------------------------------------------------------------- server

class _Handler(BaseHTTPRequestHandler):
    demo: Demo  # set on the subclass made for each server
    protocol_version = "HTTP/1.1"  # keep-alive: the page's updates reuse one connection
    server_version = "hyperbench-demo"

    def log_message(self, format, *args):  # one line per request would drown the terminal
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _body(self, limit: int, what: str) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise HyperbenchError("the request has no valid Content-Length", "send the body with fetch() or curl --data-binary") from None
        if length > limit:
            if length <= 8 * limit:  # read it anyway so the browser gets the answer, not a reset connection
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(2**20, left))
                    if not chunk:
                        break
                    left -= len(chunk)
            else:
                self.close_connection = True
            raise HyperbenchError(f"{what} is {length / 2**20:.1f} MB; the limit is {limit / 2**20:g} MB", "send a smaller file")
        return self.rfile.read(length)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif path == "/api/state":
            self._json(200, self.demo.state())
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._json(404, {"error": f"no page {path}", "fix": "open /"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path == "/api/restore":
                try:
                    request = json.loads(self._body(MAX_JSON_BYTES, "the request"))
                except ValueError:
                    request = None
                if not isinstance(request, dict):
                    raise HyperbenchError("the request is not a JSON object", "reload the page")
                self._json(200, self.demo.restore(request))
            elif url.path == "/api/upload":
                name = Path(urllib.parse.parse_qs(url.query).get("name", ["upload"])[0]).name[:120] or "upload"
                self._json(200, self.demo.add_image(self._body(MAX_UPLOAD_BYTES, name), name))
            else:
                self._body(MAX_JSON_BYTES, "the request")
                self._json(404, {"error": f"no endpoint {url.path}", "fix": "use /api/restore or /api/upload"})
        except HyperbenchError as exc:
            self._json(400, {"error": exc.problem, "fix": exc.fix})
        except Exception as exc:  # a bug must not take the server down: report it and keep serving
            traceback.print_exc(file=sys.stderr)
            self._json(500, {"error": f"internal error: {type(exc).__name__}: {exc}", "fix": "see the terminal running `hyperbench demo`"})


def make_server(demo: Demo, port: int = 0) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1 only (port 0: the OS picks a free one)."""
    handler = type("DemoHandler", (_Handler,), {"demo": demo})
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise HyperbenchError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})", "pass another --port (0 picks a free one)") from None


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


def start_in_thread(demo: Demo, port: int = 0) -> ThreadingHTTPServer:
    """Serve in a daemon thread (tests, benchmark); stop with server.shutdown(); server.server_close()."""
    server = make_server(demo, port)
    threading.Thread(target=server.serve_forever, name="hyperbench-demo", daemon=True).start()
    return server


def serve_forever(demo: Demo, port: int, log=print) -> None:
    server = make_server(demo, port)
    log(f"hyperbench demo on {url_of(server)}  (Ctrl-C to stop)")
    log(f"  {len(demo.choices)} model(s); first: {demo.choices[demo.initial_model].describe()}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -------------------------------------------------------------------------------------- benchmark

def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())


def benchmark(profiles=("smoke", "quick"), updates: int = 6, log=print) -> list[dict]:
    """Per-update time for a 512x512 RGB image (denoising) with HyperRes at each profile's size, in
    both memory layouts, measured through the HTTP server. Untrained weights: time does not depend on them."""
    image = sample_images()[0]  # astronaut, 512x512
    h, w = image.rgb.shape[:2]
    log(f"demo per-update time, {w}x{h} RGB, denoise, CPU with {torch.get_num_threads()} torch threads, median of {updates} updates")
    log(f"{'profile':8} {'size':24} {'params':>9} {'layout':15} {'forward ms':>10} {'server ms':>10} {'round trip ms':>14} {'updates/s':>10}")
    rows = []
    for name in profiles:
        kwargs = {**(load_profile(name).models.get("hyperres") or {}), "in_channels": 3}
        net = create_model("hyperres", **kwargs)
        choice = Choice(id=name, model="hyperres", task="denoise", kwargs=kwargs, trained_levels=[], options=get_task("denoise").default_options,
                        source=f"untrained, {name} size", load=lambda net=net: net)
        for channels_last in (False, True):
            server = start_in_thread(Demo([choice], [image], choice, channels_last=channels_last))
            times, have = [], None
            try:
                for i in range(updates + 1):  # the first update (model load, degradation, warm-up) is not counted
                    t0 = time.perf_counter()
                    reply = post_json(url_of(server) + "api/restore", {
                        "client": "bench", "model": name, "image": image.id, "level": 25, "input_level": 15 + 10 * (i % 5), "have_input": have})
                    round_trip = (time.perf_counter() - t0) * 1000
                    have = reply["input_key"]
                    if i:
                        times.append((reply["forward_ms"], reply["total_ms"], round_trip))
            finally:
                server.shutdown()
                server.server_close()
            forward, total, trip = (statistics.median(t[k] for t in times) for k in range(3))
            size = " ".join(f"{k}={v}" for k, v in kwargs.items() if k != "in_channels")
            layout = "channels_last" if channels_last else "contiguous"
            row = {"profile": name, "kwargs": kwargs, "params": count_params(net), "layout": layout,
                   "forward_ms": forward, "server_ms": total, "round_trip_ms": trip, "updates_per_s": 1000 / trip}
            rows.append(row)
            log(f"{name:8} {size:24} {row['params']:>9,} {layout:15} {forward:>10.0f} {total:>10.0f} {trip:>14.0f} {row['updates_per_s']:>10.1f}")
    log("the demo serves with channels_last; forward = model(x, level), server = degrade (cached) + forward + PSNR + encode")
    return rows
