"""End to end: the demo page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Skips when Chromium or Playwright is absent; .ci/run installs both. The screenshot goes to
$HYPERBENCH_ARTIFACTS (or the test's tmp folder) and its path is printed.
"""

import hashlib
import io
import os
from pathlib import Path

import pytest
from PIL import Image

from bench.apps.demo import server as d
from bench.apps.reproduce import Paths, train_all
from bench.training.profiles import expand, load_profile
from tests.conftest import require, require_module

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 90_000  # a loaded 2-core CI machine can take seconds per update

playwright = require_module("playwright.sync_api", "pip install playwright; .ci/run installs it", module_level=True)
require(CHROMIUM.is_file(), "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)", module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    profile = load_profile("smoke")
    profile.train = {**profile.train, "steps": 2, "lr_milestones": [], "checkpoint_every": 2}  # finished runs, fast
    train_all(expand(profile, ["denoise"], ["hyperres", "perlevel"]), Paths(runs=runs), None, log=lambda *a: None)
    demo = d.build_demo(runs)
    srv = d.start_in_thread(demo)
    yield d.url_of(srv), demo
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def page(tmp_path):
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def _src_hash(page, selector):
    return hashlib.sha256(page.get_attribute(selector, "src").encode()).hexdigest()


def _wait_until_output_matches_slider(page):
    page.wait_for_function(
        "!document.getElementById('busy').classList.contains('on') && "
        "Number(document.body.dataset.shownInputLevel) === Number(document.getElementById('input-level').value)",
        timeout=WAIT_MS,
    )


def test_slider_drives_the_restoration_without_reloading(server, page, tmp_path):
    url, demo = server
    in_flight, most, restores = [0], [0], []

    def started(request):
        if request.url.endswith("/api/restore"):
            restores.append(request)
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])

    def ended(request):
        if request.url.endswith("/api/restore"):
            in_flight[0] -= 1

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)
    page.goto(url)
    _wait_until_output_matches_slider(page)
    assert page.input_value("#model") == next(c.id for c in demo.choices.values() if c.model == "hyperres")
    assert page.text_content("#input-level-value") == "σ 25" and page.text_content("#output-caption") == "input level σ 25"
    assert "PSNR" in page.text_content("#psnr-in") and "dB" in page.text_content("#psnr-out")
    before_out, before_in = _src_hash(page, "#output-img"), _src_hash(page, "#input-img")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    # a burst of key presses on the input-level slider: the value shown follows at once, the output catches up
    page.focus("#input-level")
    presses = 20
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
    assert page.text_content("#input-level-value") == "σ 45"
    _wait_until_output_matches_slider(page)
    assert page.text_content("#output-caption") == "input level σ 45"
    assert _src_hash(page, "#output-img") != before_out and _src_hash(page, "#input-img") == before_in
    assert most[0] == 1  # never more than one request in flight
    print(f"\n{presses} slider moves -> {len(restores) - 1} restore requests")

    # the true degradation is a separate control: the input image changes, the input level does not
    page.focus("#level")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("document.getElementById('input-caption').textContent === 'degraded at σ 35'", timeout=WAIT_MS)
    _wait_until_output_matches_slider(page)
    assert _src_hash(page, "#input-img") != before_in and page.text_content("#input-level-value") == "σ 45"

    # the bank entry answers with its nearest trained network
    bank = next(c for c in demo.choices.values() if c.model == "perlevel")
    nearest = demo.model_for(bank).nearest_level(45)
    page.select_option("#model", bank.id)
    expected = f"input level σ 45 (bank network for σ {nearest:g})"
    page.wait_for_function(f"document.getElementById('output-caption').textContent === {expected!r}", timeout=WAIT_MS)
    assert navigations == []  # everything above happened without reloading the page

    artifacts = Path(os.environ.get("HYPERBENCH_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "demo_slider.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_uploads_show_a_message_or_the_new_image(server, page, tmp_path):
    url, _ = server
    page.goto(url)
    _wait_until_output_matches_slider(page)
    page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not really a PNG"}])
    page.wait_for_selector("#message:not([hidden])", timeout=WAIT_MS)
    assert "notes.png is not an image" in page.text_content("#message") and "fix:" in page.text_content("#message")

    buf = io.BytesIO()
    Image.new("RGB", (900, 601), (40, 120, 200)).save(buf, format="PNG")
    before = page.get_attribute("#output-img", "src")
    page.set_input_files("#upload", files=[{"name": "mine.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    page.wait_for_function("document.getElementById('image').value.startsWith('upload-')", timeout=WAIT_MS)
    page.wait_for_function(f"document.getElementById('output-img').src !== {before!r}", timeout=WAIT_MS)
    assert page.is_hidden("#message")
    notes = page.text_content("#notes")
    assert "downscaled from 900x601 to 512x342" in notes and "mine.png, 512×342" in notes
    artifacts = Path(os.environ.get("HYPERBENCH_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "demo_upload.png"), full_page=True)
    print(f"\nscreenshot: {artifacts / 'demo_upload.png'}")
